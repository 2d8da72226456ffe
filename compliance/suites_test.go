package compliance_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// requirement is one provider of one feature of a XEP-0479 suite at the
// Advanced Server level, and how xmppd shows it.
type requirement struct {
	Suite    string // Core, IM, Mobile, AV (A/V Calling), Web
	Feature  string // the feature as XEP-0479 names it
	Spec     string // the provider (XEP-0479's "Providers" column); the subtest's name
	Level    string // the lowest server level requiring it: "Server" (and so Advanced Server too) or "Advanced Server"
	Note     string // XEP-0479's footnote on the row, briefly, or which part of the provider the row covers
	Packages string // the xmppd packages that provide it
	// Gap, when not "", says why xmppd does not meet it; the row is
	// skipped with it. Not a pass: it stays listed until the check replaces it.
	Gap   string
	Opts  []xmpptest.Option // server options beyond newEnv's
	check func(t *testing.T, e *env)
}

// suites is XEP-0479 (XMPP Compliance Suites 2023, version 0.1.0 of
// 2023-05-04; xsf/xeps, xep-0479.xml, §2), every provider required at the
// Advanced Server level, in the XEP's order (the Web suite, out of issue
// 23's scope, last). Providers marked N/A for
// servers there (XEP-0245, XEP-0084, XEP-0184, XEP-0085, XEP-0308,
// XEP-0234/0261, XEP-0156; the A/V suite's client-side XEPs) are not
// listed. XEP-0479 asks for all comma-separated providers of a feature
// (§1), so each gets a row of its own. Issue 23 asks for the Core and IM
// suites; the Mobile suite (stream management, client state indication,
// push), the A/V suite's one server row and the Web suite are listed too,
// so that the whole of the Advanced Server column is accounted for.
var suites = []requirement{
	// §2.1 Core Compliance Suite.
	{Suite: "Core", Feature: "Core features", Spec: "RFC6120", Level: "Server",
		Note:     "RFC 6120 (RFC 7622 not listed); here the client-to-server part",
		Packages: "c2s, router, auth", check: checkRFC6120},
	{Suite: "Core", Feature: "Core features", Spec: "RFC6120-s2s", Level: "Server",
		Note:     "RFC 6120's server-to-server streams",
		Packages: "s2s, router", Opts: withS2S, check: checkRFC6120S2S},
	{Suite: "Core", Feature: "TLS", Spec: "RFC7590", Level: "Server",
		Packages: "c2s, certs", check: checkRFC7590},
	{Suite: "Core", Feature: "Direct TLS", Spec: "XEP-0368", Level: "Advanced Server",
		Note:     "the ability to accept direct TLS connections",
		Packages: "c2s", check: checkXEP0368},
	{Suite: "Core", Feature: "Feature discovery", Spec: "XEP-0030", Level: "Server",
		Packages: "disco, router", check: checkXEP0030},
	{Suite: "Core", Feature: "Feature broadcasts", Spec: "XEP-0115", Level: "Advanced Server",
		Packages: "caps, c2s, disco", check: checkXEP0115},
	{Suite: "Core", Feature: "Server Extensibility", Spec: "XEP-0114", Level: "Server",
		Note:     "external components over the [component] listener",
		Packages: "component, router", Opts: []xmpptest.Option{withComponent}, check: checkXEP0114},
	{Suite: "Core", Feature: "Event publishing", Spec: "XEP-0163", Level: "Advanced Server",
		Note:     "PEP need not offer all of XEP-0060 on account JIDs",
		Packages: "pep, caps", check: checkXEP0163},

	// §2.3 IM Compliance Suite.
	{Suite: "IM", Feature: "Core features", Spec: "RFC6121", Level: "Server",
		Packages: "roster, router", check: checkRFC6121},
	{Suite: "IM", Feature: "User Avatar Compatibility", Spec: "XEP-0398", Level: "Advanced Server",
		Packages: "vcard, pep", check: checkXEP0398},
	{Suite: "IM", Feature: "User Avatar Compatibility", Spec: "XEP-0153", Level: "Advanced Server",
		Packages: "vcard", check: checkXEP0153},
	{Suite: "IM", Feature: "vcard-temp", Spec: "XEP-0054", Level: "Server",
		Packages: "vcard", check: checkXEP0054},
	{Suite: "IM", Feature: "Outbound Message Synchronization", Spec: "XEP-0280", Level: "Server",
		Packages: "carbons", check: checkXEP0280},
	{Suite: "IM", Feature: "User Blocking", Spec: "XEP-0191", Level: "Advanced Server",
		Packages: "blocking", check: checkXEP0191},
	{Suite: "IM", Feature: "Group Chat", Spec: "XEP-0045", Level: "Server",
		Note:     "by a component or a server module",
		Packages: "muc", check: checkXEP0045},
	{Suite: "IM", Feature: "Group Chat", Spec: "XEP-0249", Level: "Server",
		Packages: "router (direct invitations are plain messages)", check: checkXEP0249},
	{Suite: "IM", Feature: "Advanced Group Chat", Spec: "XEP-0048", Level: "Advanced Server",
		Note:     "by a component or a server module",
		Packages: "private, pep", check: checkXEP0048},
	{Suite: "IM", Feature: "Advanced Group Chat", Spec: "XEP-0313-MUC", Level: "Advanced Server",
		Note:     "history requested from the room's archive, not the user's",
		Packages: "muc, mam", check: checkXEP0313MUC},
	{Suite: "IM", Feature: "Advanced Group Chat", Spec: "XEP-0402", Level: "Advanced Server",
		Note:     "clients use it when urn:xmpp:bookmarks:1#compat is advertised",
		Packages: "pep, private", check: checkXEP0402},
	{Suite: "IM", Feature: "Advanced Group Chat", Spec: "XEP-0410", Level: "Advanced Server",
		Packages: "muc", check: checkXEP0410},
	{Suite: "IM", Feature: "Persistent Storage of Private Data via PubSub", Spec: "XEP-0223", Level: "Advanced Server",
		Packages: "pep", check: checkXEP0223},
	{Suite: "IM", Feature: "Private XML Storage", Spec: "XEP-0049", Level: "Advanced Server",
		Note:     "only recommended for legacy bookmarks",
		Packages: "private", check: checkXEP0049},
	{Suite: "IM", Feature: "Stream Management", Spec: "XEP-0198", Level: "Advanced Server",
		Packages: "c2s", check: checkXEP0198},
	{Suite: "IM", Feature: "History Storage / Retrieval", Spec: "XEP-0313", Level: "Advanced Server",
		Packages: "mam", check: checkXEP0313},
	{Suite: "IM", Feature: "File Upload", Spec: "XEP-0363", Level: "Server",
		Note:     "by a component or a server module",
		Packages: "httpupload, server (the [http] listener)", check: checkXEP0363},

	// §2.4 Mobile Compliance Suite.
	{Suite: "Mobile", Feature: "Stream Management", Spec: "XEP-0198", Level: "Server",
		Packages: "c2s", check: checkXEP0198},
	{Suite: "Mobile", Feature: "Client State Indication", Spec: "XEP-0352", Level: "Server",
		Packages: "c2s", check: checkXEP0352},
	{Suite: "Mobile", Feature: "Third Party Push Notifications", Spec: "XEP-0357", Level: "Advanced Server",
		Note:     "by a component or a server module; the app server here is an external component",
		Packages: "push, router, c2s", Opts: []xmpptest.Option{withComponent}, check: checkXEP0357},

	// §2.5 A/V Calling Compliance Suite: its only server requirement.
	{Suite: "AV", Feature: "STUN/TURN server discovery", Spec: "XEP-0215", Level: "Server",
		Packages: "extdisco", Opts: []xmpptest.Option{withTURN}, check: checkXEP0215},

	// §2.2 Web Compliance Suite (issue 24).
	{Suite: "Web", Feature: "Web Connection Mechanisms", Spec: "RFC7395", Level: "Server",
		Note:     "by a component or a server module",
		Packages: "websocket, c2s", Opts: []xmpptest.Option{withHTTPS}, check: checkRFC7395},
	{Suite: "Web", Feature: "Web Connection Mechanisms", Spec: "XEP-0206", Level: "Server",
		Note:     "by a component or a server module",
		Packages: "bosh, c2s", Opts: []xmpptest.Option{withHTTPS}, check: checkXEP0206},
}

// TestAdvancedServer checks xmppd against every row of suites: each on a
// server of its own, with alice and bob logged in over real sockets, the
// feature's advertisement where its specification defines one, and the
// feature used. A gap is reported as a skip naming what is missing.
func TestAdvancedServer(t *testing.T) {
	for _, r := range suites {
		t.Run(r.Suite+"/"+r.Spec, func(t *testing.T) {
			if r.Gap != "" {
				t.Skip(r.Gap)
			}
			r.check(t, newEnv(t, r.Opts...))
		})
	}
}

// TestDocumented keeps docs/compliance.md in step with suites: every row's
// subtest is in its table, marked as a gap exactly when the row is one.
func TestDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for line := range strings.Lines(string(doc)) {
		if m := docRow.FindStringSubmatch(line); m != nil {
			rows[m[1]] = line
		}
	}
	for _, r := range suites {
		name := "TestAdvancedServer/" + r.Suite + "/" + r.Spec
		line, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("docs/compliance.md has no row for %s", name)
		case strings.Contains(line, "**gap**") != (r.Gap != ""):
			t.Errorf("docs/compliance.md: %s is a gap: %v; its row says %q", name, r.Gap != "", line)
		case !strings.Contains(line, "| "+r.Level+" |"):
			t.Errorf("docs/compliance.md: %s's level is %s; its row says %q", name, r.Level, line)
		}
		delete(rows, name)
	}
	for name := range rows {
		t.Errorf("docs/compliance.md lists %s, which suites does not", name)
	}
}

var docRow = regexp.MustCompile("^\\|.*`(TestAdvancedServer/[^`]+)`")
