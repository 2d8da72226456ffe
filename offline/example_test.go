package offline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/offline"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// A feature registers in a few lines; the server starts the sweep and
// stops the service after its sessions have ended.
func ExampleService_Register() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offline-example")
	defer os.RemoveAll(dir)
	db, err := storage.Open(ctx, storage.DriverSQLite, filepath.Join(dir, "xmppd.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		panic(err)
	}

	r := router.New(jid.MustParse("example.org"), nil, nil)
	svc := offline.New(db.Offline(), r, r.Domain(), offline.Limits{
		MaxMessages:   1000,
		MaxAge:        30 * 24 * time.Hour,
		SweepInterval: time.Hour,
	}, nil)
	svc.Register(r.Registry())
	svc.Start()
	defer svc.Stop(ctx)

	fmt.Println(r.Registry().Features())
	// Output: [msgoffline]
}
