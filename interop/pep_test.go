package interop

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// pepExtra is what testdata/slixmpp_pepcommon.py records for an account.
type pepExtra struct {
	Events            []pepEvent `json:"events"`
	ServerCapsQueries []struct {
		From string `json:"from"`
		Node string `json:"node"`
	} `json:"server_caps_queries"`
	OwnCaps *struct {
		Node   string   `json:"node"`
		Ver    string   `json:"ver"`
		Notify []string `json:"notify"`
	} `json:"own_caps"`
	ServerCaps *struct {
		Ver      *string `json:"ver"`
		Verified bool    `json:"verified"`
	} `json:"server_caps"`
	Presences []struct {
		From  string  `json:"from"`
		Photo *string `json:"photo"` // nil: no vcard-temp:x:update photo
	} `json:"presences"`
	Fetches map[string]fetch `json:"fetches"`
}

type pepEvent struct {
	From    string  `json:"from"`
	Type    string  `json:"type"`
	Node    string  `json:"node"`
	ID      string  `json:"id"`
	Retract string  `json:"retract"`
	Payload payload `json:"payload"`
}

// payload is slixmpp_pepcommon.summarise's reading of an item's payload.
type payload struct {
	Tag  string `json:"tag"`
	Info []struct {
		ID    string `json:"id"`
		Bytes string `json:"bytes"`
		Type  string `json:"type"`
	} `json:"info"`
	SHA1           string   `json:"sha1"`
	Nick           *string  `json:"nick"`
	Devices        []string `json:"devices"`
	SignedPreKeyID string   `json:"signed_pre_key_id"`
	PreKeys        int      `json:"pre_keys"`
	XML            string   `json:"xml"`
}

// fetch is a request's outcome: type "result" with items, or "error"
// with the condition and the pubsub#errors condition.
type fetch struct {
	Type      string `json:"type"`       // "result" or "error"
	ErrorType string `json:"error_type"` // cancel, auth, ...
	Condition string `json:"condition"`
	App       string `json:"app"`
	Timeout   bool   `json:"timeout"`
	Items     []struct {
		ID      string  `json:"id"`
		Payload payload `json:"payload"`
	} `json:"items"`
	// Whatever else a scenario records of a request.
	Extra map[string]any `json:"extra"`
}

func (res result) pep(t *testing.T, name string) pepExtra {
	t.Helper()
	a := res.get(t, name)
	var x pepExtra
	if err := json.Unmarshal(a.Extra, &x); err != nil {
		t.Fatalf("%s: extra %s: %v", name, a.Extra, err)
	}
	return x
}

// checkCaps asserts that each client sent caps with the +notify features
// of wantNotify and that slixmpp verified the caps the server announces in
// its stream features; and that the server asked disco#info of each ver
// the clients announced (node#ver), once: it caches what it verified.
func checkCaps(t *testing.T, clients map[string]pepExtra, wantNotify ...string) {
	t.Helper()
	vers := map[string]int{} // node#ver: times asked
	for name, x := range clients {
		if x.OwnCaps == nil || x.OwnCaps.Ver == "" {
			t.Errorf("%s: sent no caps", name)
			continue
		}
		for _, n := range wantNotify {
			if !contains(x.OwnCaps.Notify, n+"+notify") {
				t.Errorf("%s: its caps list %q, not %s+notify", name, x.OwnCaps.Notify, n)
			}
		}
		vers[x.OwnCaps.Node+"#"+x.OwnCaps.Ver] += 0
		if x.ServerCaps == nil || !x.ServerCaps.Verified {
			t.Errorf("%s: slixmpp did not verify the server's stream caps: %+v", name, x.ServerCaps)
		}
	}
	for name, x := range clients {
		for _, q := range x.ServerCapsQueries {
			if _, ok := vers[q.Node]; !ok {
				t.Errorf("%s: the server asked disco#info of node %q, which no client announced", name, q.Node)
			}
			vers[q.Node]++
		}
	}
	for node, n := range vers {
		if n != 1 {
			t.Errorf("the server asked disco#info of %s %d times, want once", node, n)
		}
	}
}

func (f fetch) isError(cond, app string) bool {
	return f.Type == "error" && f.Condition == cond && f.App == app
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// the avatar and nickname of testdata/slixmpp_pep_avatar.py.
func avatarBytes() []byte {
	var b []byte
	for range 3 {
		for i := range 256 {
			b = append(b, byte(i))
		}
	}
	return append(b, "\x89PNG avatar of alice"...)
}

const (
	nsAvatarMeta = "urn:xmpp:avatar:metadata"
	nsNick       = "http://jabber.org/protocol/nick"
)

// TestSlixmppPEPAvatar: slixmpp's XEP-0084 and XEP-0172 plugins publish
// an avatar (open) and a nickname (presence); the contact, whose caps say
// +notify, receives both events and so does the publisher; a stranger
// receives none, may fetch the open avatar but not the nickname
// (not-authorized, presence-subscription-required); a resource coming
// online later gets the last items; a retraction with notify reaches them
// all (testdata/slixmpp_pep_avatar.py).
func TestSlixmppPEPAvatar(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	args := []string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		j := srv.AddUser(t, u, u+"-pw")
		args = append(args, "--"+u+"-jid", j.String(), "--"+u+"-password", u+"-pw")
	}
	res := runSlixmpp(t, srv, "slixmpp_pep_avatar.py", args...)
	alice, bob, carol, bob2 := res.pep(t, "alice"), res.pep(t, "bob"), res.pep(t, "carol"), res.pep(t, "bob2")
	aliceJID := "alice@" + srv.Domain
	sha := sha1Hex(avatarBytes())
	const nick = "Alice in Wonderland ✓"

	checkCaps(t, map[string]pepExtra{"alice": alice, "bob": bob, "carol": carol, "bob2": bob2}, nsAvatarMeta, nsNick)
	// The events of alice's publishes, as the contact, a second resource
	// and alice see them: one each, headline, from her bare JID.
	for name, x := range map[string]pepExtra{"alice": alice, "bob": bob, "bob2": bob2} {
		var meta, nicks []pepEvent
		var retracts []string
		for _, e := range x.Events {
			switch {
			case e.From != aliceJID:
				t.Errorf("%s: an event from %s: %+v", name, e.From, e)
			case e.Retract != "":
				retracts = append(retracts, e.Node+" "+e.Retract)
			case e.Node == nsAvatarMeta:
				meta = append(meta, e)
			case e.Node == nsNick:
				nicks = append(nicks, e)
			default:
				t.Errorf("%s: an event of node %s: %+v", name, e.Node, e)
			}
		}
		if len(meta) != 1 || meta[0].ID != sha || len(meta[0].Payload.Info) != 1 ||
			meta[0].Payload.Info[0].ID != sha || meta[0].Payload.Info[0].Bytes != "788" || meta[0].Payload.Info[0].Type != "image/png" {
			t.Errorf("%s: avatar metadata events %+v, want one, item %s", name, meta, sha)
		}
		if len(nicks) != 1 || nicks[0].ID != "current" || nicks[0].Payload.Nick == nil || *nicks[0].Payload.Nick != nick {
			t.Errorf("%s: nickname events %+v, want one: %q", name, nicks, nick)
		}
		// alice's retraction (XEP-0060 §7.2.2.1, notify='true'), to
		// everyone who receives the node's events.
		if !slices.Equal(retracts, []string{nsNick + " current"}) {
			t.Errorf("%s: retractions %q, want [%s current]", name, retracts, nsNick)
		}
		for _, e := range x.Events {
			if e.Type != "headline" {
				t.Errorf("%s: event of type %q, want headline", name, e.Type)
			}
		}
	}
	if len(carol.Events) != 0 {
		t.Errorf("carol (a stranger) received events: %+v", carol.Events)
	}

	f := carol.Fetches
	if m := f["metadata"]; m.Type != "result" || len(m.Items) != 1 || m.Items[0].ID != sha || len(m.Items[0].Payload.Info) != 1 {
		t.Errorf("carol's fetch of the open metadata node: %+v", m)
	}
	if d := f["data"]; d.Type != "result" || len(d.Items) != 1 || d.Items[0].ID != sha || d.Items[0].Payload.SHA1 != sha {
		t.Errorf("carol's fetch of the avatar data %s: %+v", sha, d)
	}
	if n := f["nick"]; !n.isError("not-authorized", "presence-subscription-required") {
		t.Errorf("carol's fetch of the nickname (presence model): %+v, want not-authorized + presence-subscription-required", n)
	}
	if r := alice.Fetches["retract"]; r.Type != "result" {
		t.Errorf("alice: retracting her nickname: %+v", r)
	}
	if n := bob.Fetches["nick_after_retract"]; n.Type != "result" || len(n.Items) != 0 {
		t.Errorf("bob: the nickname node after the retraction: %+v, want no items", n)
	}
	// XEP-0398: the PEP avatar became alice's vCard photo, and her
	// presence says so (XEP-0153).
	if p := lastPhoto(bob, aliceJID); p != sha {
		t.Errorf("bob: alice's presence says photo %q, want the avatar's %s", p, sha)
	}
	if n := bob.Fetches["nick"]; n.Type != "result" || len(n.Items) != 1 || n.Items[0].Payload.Nick == nil || *n.Items[0].Payload.Nick != nick {
		t.Errorf("bob's fetch of the nickname: %+v", n)
	}
}

// lastPhoto is the XEP-0153 photo hash of the last available presence x
// received from a resource of owner ("<none>": no vcard-temp:x:update
// photo; "<no presence>").
func lastPhoto(x pepExtra, owner string) string {
	p := "<no presence>"
	for _, pr := range x.Presences {
		if bare(pr.From) != owner {
			continue
		}
		if pr.Photo == nil {
			p = "<none>"
		} else {
			p = *pr.Photo
		}
	}
	return p
}

// TestSlixmppPEPOmemo: an OMEMO client's publishes through slixmpp's
// XEP-0060 publish with publish-options (access_model=open): the device
// list, a bundle and the OMEMO 2 device list are created, the contact
// receives the device list event, a stranger none; the stranger finds
// PEP and publish-options in the account's disco#info and fetches all
// three; a publish whose options conflict with the node is refused with
// conflict + precondition-not-met, as slixmpp raises it, and changes
// nothing (testdata/slixmpp_pep_omemo.py).
func TestSlixmppPEPOmemo(t *testing.T) {
	requireSlixmpp(t)
	srv := xmpptest.Start(t)
	args := []string{}
	for _, u := range []string{"alice", "bob", "carol"} {
		j := srv.AddUser(t, u, u+"-pw")
		args = append(args, "--"+u+"-jid", j.String(), "--"+u+"-password", u+"-pw")
	}
	res := runSlixmpp(t, srv, "slixmpp_pep_omemo.py", args...)
	alice, bob, carol := res.pep(t, "alice"), res.pep(t, "bob"), res.pep(t, "carol")
	aliceJID := "alice@" + srv.Domain
	const devicelist = "eu.siacs.conversations.axolotl.devicelist"
	checkCaps(t, map[string]pepExtra{"alice": alice, "bob": bob, "carol": carol}, devicelist)

	for _, k := range []string{"publish_devicelist", "publish_bundle", "publish_omemo2"} {
		if f := alice.Fetches[k]; f.Type != "result" {
			t.Errorf("alice: %s with access_model=open: %+v", k, f)
		}
	}
	for name, x := range map[string]pepExtra{"alice": alice, "bob": bob} {
		var got [][]string
		for _, e := range x.Events {
			if e.Node != devicelist || e.From != aliceJID || e.ID != "current" {
				t.Errorf("%s: unexpected event %+v", name, e)
				continue
			}
			got = append(got, e.Payload.Devices)
		}
		if len(got) != 1 || !slices.Equal(got[0], []string{"1234"}) {
			t.Errorf("%s: device list events %q, want one with device 1234", name, got)
		}
	}
	if len(carol.Events) != 0 {
		t.Errorf("carol (a stranger) received events: %+v", carol.Events)
	}

	f := carol.Fetches
	disco := f["disco"]
	if disco.Type != "result" {
		t.Errorf("carol: disco#info of alice's account: %+v", disco)
	} else {
		ids, _ := disco.Extra["identities"].([]any)
		feats, _ := disco.Extra["features"].([]any)
		if !slices.Contains(ids, any("pubsub/pep")) {
			t.Errorf("alice's account identities %v, want pubsub/pep", ids)
		}
		for _, want := range []string{"http://jabber.org/protocol/pubsub#publish-options", "http://jabber.org/protocol/pubsub#publish"} {
			if !slices.Contains(feats, any(want)) {
				t.Errorf("alice's account features %v lack %s", feats, want)
			}
		}
	}
	for _, k := range []string{"devicelist", "devicelist_after"} {
		if d := f[k]; d.Type != "result" || len(d.Items) != 1 || d.Items[0].ID != "current" || !slices.Equal(d.Items[0].Payload.Devices, []string{"1234"}) {
			t.Errorf("carol: %s fetched %+v, want item current with device 1234", k, d)
		}
	}
	if b := f["bundle"]; b.Type != "result" || len(b.Items) != 1 || b.Items[0].Payload.SignedPreKeyID != "1" || b.Items[0].Payload.PreKeys != 100 {
		t.Errorf("carol: bundle fetched %+v, want signed pre-key 1 and 100 pre-keys", b)
	}
	if d := f["omemo2"]; d.Type != "result" || len(d.Items) != 1 || !slices.Equal(d.Items[0].Payload.Devices, []string{"1234"}) {
		t.Errorf("carol: OMEMO 2 device list fetched %+v", d)
	}
	if c := alice.Fetches["conflicting"]; !c.isError("conflict", "precondition-not-met") || c.ErrorType != "cancel" {
		t.Errorf("alice: publish with conflicting options: %+v, want cancel/conflict + precondition-not-met", c)
	}
}
