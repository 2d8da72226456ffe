package auth_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/storage"
)

// Example shows the account lifecycle as `xmppd user add` and the SASL PLAIN
// check in c2s use it.
func Example() {
	dir, err := os.MkdirTemp("", "xmppd-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ctx := context.Background()
	db, err := storage.Open(ctx, storage.DriverSQLite, filepath.Join(dir, "xmppd.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		fmt.Println(err)
		return
	}

	accounts := auth.New(db.Accounts(), auth.MinIterations)
	alice, err := auth.NormalizeJID("Alice@Example.ORG")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := accounts.Create(ctx, alice, "correct horse battery staple"); err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println(alice)
	fmt.Println(accounts.VerifyPlain(ctx, alice, "correct horse battery staple"))
	fmt.Println(errors.Is(accounts.VerifyPlain(ctx, alice, "wrong"), auth.ErrNotAuthorized))
	_, err = auth.NormalizeJID("al ice@example.org")
	fmt.Println(err)
	// Output:
	// alice@example.org
	// <nil>
	// true
	// auth: invalid JID "al ice@example.org": precis: disallowed rune encountered
}
