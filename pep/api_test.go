package pep_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/router"
)

// TestGoAPI: another feature publishes, reads and retracts through the Go
// API; clients see the same items and events as for their own publishes,
// watchers hear of client and API changes alike, and a refusal is the
// stanza error a client would get.
func TestGoAPI(t *testing.T) {
	srv := xmpptest.Start(t)
	addUsers(t, srv, "alice", "bob")
	p := srv.PEP()
	var mu sync.Mutex
	var changes []string
	p.Watch("storage:bookmarks", func(ctx context.Context, owner jid.JID, id string, payload []byte) {
		mu.Lock()
		changes = append(changes, owner.String()+" "+id+" "+string(payload))
		mu.Unlock()
	})
	a := login(t, srv, "alice", "a").online("storage:bookmarks+notify")
	bob := login(t, srv, "bob", "b").online("storage:bookmarks+notify")
	subscribe(t, bob, a)
	ctx := t.Context()
	alice := jid.MustParse("alice@localhost")
	const node = "storage:bookmarks"
	payload := "<storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' autojoin='true'/></storage>"
	id, err := p.Publish(ctx, alice, node, "current", []byte(payload), map[string]string{"pubsub#access_model": "whitelist"})
	if err != nil || id != "current" {
		t.Fatalf("Publish = %q, %v", id, err)
	}
	a.expect("event of the API's publish", isEvent("alice@localhost", "room@conference.localhost"))
	noEvent(t, "of a whitelist node", bob)
	if got := a.ok("get", "", items(node, "")); !got.Contains("<item id='current'><storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' autojoin='true'></conference></storage></item>") {
		t.Fatalf("items after API publish: %s", got.Inner)
	}
	// A client's publish replaces it (max_items 1); the API reads it.
	other := "<storage xmlns='storage:bookmarks'><conference jid='other@conference.localhost'/></storage>"
	a.ok("set", "", publish(node, "other", other, "pubsub#access_model", "whitelist"))
	ids, payloads, err := p.Items(ctx, alice, node)
	if err != nil || !slices.Equal(ids, []string{"other"}) || len(payloads) != 1 ||
		string(payloads[0]) != "<storage xmlns='storage:bookmarks'><conference jid='other@conference.localhost'></conference></storage>" {
		t.Fatalf("Items = %q %q, %v", ids, payloads, err)
	}
	_, err = p.Publish(ctx, alice, node, "x", []byte("<storage xmlns='storage:bookmarks'/>"), map[string]string{"pubsub#access_model": "open"})
	var ae router.AppError
	if !errors.As(err, &ae) || ae.Err.Condition != stanza.Conflict || ae.App.Name.Local != "precondition-not-met" {
		t.Fatalf("Publish with differing options = %v", err)
	}
	if ids, _, err := p.Items(ctx, alice, "urn:none"); err != nil || ids != nil {
		t.Fatalf("Items of a missing node = %q, %v", ids, err)
	}
	if _, err := p.Publish(ctx, alice, node, "bad", []byte("<a/><b/>"), nil); err == nil {
		t.Fatal("Publish of two elements succeeded")
	}
	if err := p.Retract(ctx, alice, node, "other"); err != nil {
		t.Fatal(err)
	}
	a.expect("retract event", isEvent("alice@localhost", "<retract id='other'>"))
	if err := p.Retract(ctx, alice, node, "other"); err != nil {
		t.Fatalf("retracting what is gone = %v", err)
	}
	a.ok("set", "", owner("<delete node='"+node+"'/>"))
	mu.Lock()
	defer mu.Unlock()
	want := []string{"alice@localhost current <storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' autojoin='true'></conference></storage>",
		"alice@localhost other <storage xmlns='storage:bookmarks'><conference jid='other@conference.localhost'></conference></storage>",
		"alice@localhost other ", "alice@localhost  "}
	if strings.Join(changes, "|") != strings.Join(want, "|") {
		t.Fatalf("watched %q, want %q", changes, want)
	}
}
