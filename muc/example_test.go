package muc_test

import (
	"context"
	"fmt"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/router"
)

// A server registers the service on its router; with a Store (package
// storage's MUC repository) it first loads the persistent rooms.
func ExampleService_Register() {
	r := router.New(jid.MustParse("example.org"), nil, nil)
	svc, err := muc.New(r, nil, muc.Options{
		Domain: "conference.example.org", MaxRoomsPerUser: 100, MaxOccupants: 200,
		HistoryLength: 20, MaxHistoryLength: 100, MessagesPerSecond: 5, MessageBurst: 10,
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := svc.Load(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	svc.Register(r.Registry())
	fmt.Println(r.Registry().Items())
	// Output: [{conference.example.org Chatrooms}]
}
