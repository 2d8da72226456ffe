package push_test

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/push"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
)

// The push service is created with its store, learns at Start which
// accounts have registrations, and registers its IQs and hooks.
func Example() {
	ctx := context.Background()
	r := router.New(jid.MustParse("example.org"), nil, nil)
	store := &memStore{regs: map[string][]storage.PushRegistration{}}
	p := push.New(store, r, push.Options{IncludeBody: false, MaxRegistrations: 5}, nil)
	if err := p.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	p.Register(r.Registry())
	fmt.Println(r.Registry().AccountFeatures())
	// Output: [urn:xmpp:push:0]
}
