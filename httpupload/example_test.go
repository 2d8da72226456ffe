package httpupload_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/httpupload"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// The service registers its domain with the router in one call and
// serves HTTP under PathPrefix; the server starts its sweep and stops it
// after the HTTP listeners have shut down.
func ExampleService_Register() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "httpupload-example")
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
	svc, err := httpupload.New(r, db.HTTPUploads(), httpupload.Options{
		Domain:        "upload.example.org",
		ServerDomain:  "example.org",
		Dir:           filepath.Join(dir, "uploads"),
		SecretFile:    filepath.Join(dir, "httpupload.secret"),
		PublicURL:     "https://example.org:5443",
		MaxFileSize:   100 << 20,
		Quota:         1 << 30,
		SlotTimeout:   5 * time.Minute,
		MaxAge:        720 * time.Hour,
		SweepInterval: time.Hour,
	}, nil)
	if err != nil {
		panic(err)
	}
	svc.Register(r.Registry())
	mux := http.NewServeMux()
	mux.Handle(httpupload.PathPrefix, svc)
	svc.Start()
	defer svc.Stop(ctx)

	fmt.Println(r.Registry().Items())
	// Output: [{upload.example.org HTTP File Upload}]
}
