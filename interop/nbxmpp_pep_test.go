package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// nbxmppPEP is the JSON line testdata/nbxmpp_pep.py prints.
type nbxmppPEP struct {
	Error    *string `json:"error"`
	Accounts map[string]struct {
		JID    string `json:"jid"`
		Events []struct {
			From       string       `json:"from"`
			Node       string       `json:"node"`
			ID         string       `json:"id"`
			Type       string       `json:"type"`
			Nick       *string      `json:"nick"`
			AvatarSHAs []string     `json:"avatar_shas"`
			Bookmark   *nbxBookmark `json:"bookmark"`
			Devices    []int        `json:"devices"`
		} `json:"events"`
		CapsQueries []struct{ From, Node string } `json:"caps_queries"`
		Caps        *struct{ Node, Ver string }   `json:"caps"`
	} `json:"accounts"`
	Results struct {
		PublicNick      map[string]any `json:"public_nick"`
		NickAccessModel string         `json:"nick_access_model"`
		Avatar          struct {
			SHA        string `json:"sha"`
			FetchedSHA string `json:"fetched_sha"`
			SameBytes  bool   `json:"same_bytes"`
		} `json:"avatar"`
		AccountFeatures    []string        `json:"account_features"`
		ReadPrivate        json.RawMessage `json:"read_PrivateBookmarks"`
		ReadPEP            json.RawMessage `json:"read_PEPBookmarks"`
		ReadNative         json.RawMessage `json:"read_NativeBookmarks"`
		NativeAfterPrivate []nbxBookmark   `json:"native_after_private"`
		CarolDevicelist    json.RawMessage `json:"carol_devicelist"`
		CarolBundle        json.RawMessage `json:"carol_bundle"`
	} `json:"results"`
}

type nbxBookmark struct {
	JID      string  `json:"jid"`
	Name     *string `json:"name"`
	Nick     *string `json:"nick"`
	Autojoin bool    `json:"autojoin"`
}

func strp(s string) *string { return &s }

// TestNbxmppPEPBookmarks: Gajim's library announces its caps through its
// EntityCaps module (the server asks and verifies them), sets a nickname
// (private, then public: nbxmpp meets precondition-not-met, reconfigures
// the node and publishes again) and an avatar that the contact receives
// as events and fetches; stores a bookmark through XEP-0402 (the account
// advertises #compat) that a second session reads through private XML
// (XEP-0049), XEP-0048's PEP node and XEP-0402; and a bookmark stored
// through private XML reaches the first session as a XEP-0402 event
// nbxmpp's OMEMO module publishes a device list and a bundle (open) that
// the contact receives and a stranger fetches (testdata/nbxmpp_pep.py).
func TestNbxmppPEPBookmarks(t *testing.T) {
	requireNbxmpp(t)
	srv := xmpptest.Start(t)
	const pw = "pw gajim"
	alice := srv.AddUser(t, "alice", pw)
	bob := srv.AddUser(t, "bob", pw)
	srv.AddUser(t, "carol", pw)
	befriend(t, srv, alice, pw, bob, pw)
	room := "room@conference." + srv.Domain
	room2 := "second@conference." + srv.Domain

	host, port, _ := strings.Cut(srv.Addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/nbxmpp_pep.py", "--host", host, "--port", port,
		"--domain", srv.Domain, "--password", pw, "--room", room, "--room2", room2)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	outB, err := cmd.Output()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("INTEROP_DEBUG") != "" {
			t.Logf("nbxmpp_pep.py standard error (nbxmpp's log):\n%s", stderr.String())
		}
	})
	lines := strings.Split(strings.TrimSpace(string(outB)), "\n")
	var res nbxmppPEP
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		t.Fatalf("nbxmpp_pep.py (%v) printed no result: %q (%v)", err, outB, jerr)
	}
	t.Logf("nbxmpp_pep.py: %s", lines[len(lines)-1])
	if res.Error != nil {
		t.Errorf("nbxmpp_pep.py did not run to its end: %s", *res.Error)
	} else if err != nil {
		t.Errorf("nbxmpp_pep.py: %v", err)
	}
	a, b, a2 := res.Accounts["alice"], res.Accounts["bob"], res.Accounts["alice2"]
	aliceJID := alice.String()

	// Caps: asked once for the ver both sessions announced (the second
	// session of alice has the same: known, not asked again).
	queries := append(append(a.CapsQueries, b.CapsQueries...), a2.CapsQueries...)
	if a.Caps == nil || len(queries) != 1 || queries[0].Node != a.Caps.Node+"#"+a.Caps.Ver ||
		(queries[0].From != srv.Domain && queries[0].From != "") {
		t.Errorf("the server's disco#info queries %+v, want one of node %+v", queries, a.Caps)
	}

	// Nickname: two events at bob, the second after nbxmpp's reconfigure.
	var nicks []string
	var metas [][]string
	var devices [][]int
	for _, e := range b.Events {
		if e.From != aliceJID || e.Type != "headline" {
			t.Errorf("bob: event %+v, want headlines from %s", e, aliceJID)
		}
		switch e.Node {
		case nsNick:
			if e.Nick != nil {
				nicks = append(nicks, *e.Nick)
			}
		case nsAvatarMeta:
			metas = append(metas, e.AvatarSHAs)
		case "eu.siacs.conversations.axolotl.devicelist":
			devices = append(devices, e.Devices)
		default:
			t.Errorf("bob: event of node %s: %+v", e.Node, e) // not bookmarks: whitelist
		}
	}
	if !reflect.DeepEqual(nicks, []string{"Alice (Gajim)", "Alice ✓"}) {
		t.Errorf("bob: nickname events %q", nicks)
	}
	if res.Results.PublicNick["type"] != "result" || res.Results.NickAccessModel != "open" {
		t.Errorf("making the nickname public: %v, access model then %q, want result and open",
			res.Results.PublicNick, res.Results.NickAccessModel)
	}
	av := res.Results.Avatar
	if len(metas) != 1 || !reflect.DeepEqual(metas[0], []string{av.SHA}) || av.SHA == "" {
		t.Errorf("bob: avatar metadata events %q, want one with %s", metas, av.SHA)
	}
	if av.FetchedSHA != av.SHA || !av.SameBytes {
		t.Errorf("bob fetched the avatar data: %+v", av)
	}

	checkNbxmppOmemo(t, res, devices)

	// Bookmarks.
	for _, f := range []string{"urn:xmpp:bookmarks:1#compat", "urn:xmpp:bookmarks:1#compat-pep", "http://jabber.org/protocol/pubsub#publish-options"} {
		if !contains(res.Results.AccountFeatures, f) {
			t.Errorf("alice's account features %q lack %s", res.Results.AccountFeatures, f)
		}
	}
	want := nbxBookmark{JID: room, Name: strp("The Room"), Nick: strp("Al"), Autojoin: true}
	var first []nbxBookmark
	for _, e := range a.Events {
		if e.Node == "urn:xmpp:bookmarks:1" && e.Bookmark != nil {
			first = append(first, *e.Bookmark)
			if e.From != aliceJID || e.ID != e.Bookmark.JID {
				t.Errorf("alice: bookmark event %+v, want from %s with the room as item id", e, aliceJID)
			}
		}
	}
	if len(first) == 0 || !reflect.DeepEqual(first[0], want) {
		t.Errorf("alice: bookmark events %+v, want first %+v", first, want)
	}
	for name, raw := range map[string]json.RawMessage{"PrivateBookmarks": res.Results.ReadPrivate, "PEPBookmarks": res.Results.ReadPEP, "NativeBookmarks": res.Results.ReadNative} {
		var got []nbxBookmark
		if err := json.Unmarshal(raw, &got); err != nil || !reflect.DeepEqual(got, []nbxBookmark{want}) {
			t.Errorf("second session: %s read %s, want [%+v]", name, raw, want)
		}
	}
	want2 := nbxBookmark{JID: room2, Name: strp("Second Room")}
	if got := res.Results.NativeAfterPrivate; !reflect.DeepEqual(got, []nbxBookmark{want2, want}) && !reflect.DeepEqual(got, []nbxBookmark{want, want2}) {
		t.Errorf("XEP-0402 bookmarks after a private XML store: %+v, want %+v and %+v", got, want, want2)
	}
}

func checkNbxmppOmemo(t *testing.T, res nbxmppPEP, devices [][]int) {
	t.Helper()
	if !reflect.DeepEqual(devices, [][]int{{1234}}) {
		t.Errorf("bob: device list events %v, want one with 1234", devices)
	}
	if string(res.Results.CarolDevicelist) != "[1234]" {
		t.Errorf("carol (a stranger) fetched the device list: %s, want [1234]", res.Results.CarolDevicelist)
	}
	if want := `{"ik": "identity key", "prekeys": 100, "spk_id": 1}`; string(res.Results.CarolBundle) != want {
		t.Errorf("carol (a stranger) fetched the bundle: %s, want %s", res.Results.CarolBundle, want)
	}
}
