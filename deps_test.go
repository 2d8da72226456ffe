package xmppd_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedImports names, for every package of the module, the module's
// packages it may import (its non-test imports; paths relative to the
// module). It encodes the one-way arrows of docs/architecture.md:
//
//	cmd → server → c2s → router ← feature packages → storage
//
// where the feature packages (disco, ping, version, roster, offline, muc,
// httpupload, carbons, blocking) hook into the router and never into c2s, server or one
// another; router imports no feature and no storage; storage, config and
// certs import nothing of xmppd. internal/xmlenc, which imports nothing of
// xmppd, may serve any layer.
//
// A package missing here fails the test, so that a new one is placed in
// the layers on purpose rather than skipped.
var allowedImports = map[string][]string{
	"": {}, // the module root: repository-wide tests only

	"cmd/xmppd": {"server", "config", "auth", "storage", "certs", "router", "disco", "ping", "version", "roster", "offline", "muc", "httpupload", "internal/xmlenc",
		"migration", "migration/xep0227", "migration/openfirexml", "migration/openfire", "sharedgroups"},
	"cmd/xmppbench":       {}, // a load generator: it speaks XMPP over sockets, to any server
	"bench/mkusers":       {"auth", "config", "storage"},
	"bench/importbench":   {"auth", "migration", "storage"}, // times migration.Write
	"bench/archivelayout": {},                               // SQLite alone: archive layouts and settings

	"server": {"c2s", "router", "blocking", "carbons", "caps", "auth", "storage", "config", "certs", "disco", "ping", "version", "roster", "offline", "muc", "mam", "httpupload", "pep", "vcard", "private", "internal/xmlenc",
		"contactinfo", "extdisco", "entitytime", "lastactivity", "component", "websocket", "webchat", "sharedgroups", "bosh", "push", "s2s"},

	// c2s uses auth's errors and storage's credential type for SASL.
	"c2s": {"router", "auth", "storage", "internal/xmlenc", "internal/proxyproto", "internal/burstlog", "internal/ratelimit"},

	// websocket (RFC 7395) is a transport beside c2s's listeners: it
	// hands c2s its connections and holds no session logic.
	"websocket": {"c2s", "internal/xmlsplit", "internal/origin"},
	// bosh (XEP-0124/0206) is the same kind of transport: HTTP requests
	// turned into c2s's byte stream.
	"bosh": {"c2s", "internal/xmlsplit", "internal/origin"},
	// webchat serves /chat (Converse.js, pointed at websocket's URL,
	// which server passes in).
	"webchat": {},

	"router": {"internal/xmlenc", "internal/burstlog"},

	"disco":   {"router", "internal/xmlenc"},
	"ping":    {"router", "internal/xmlenc"},
	"version": {"router", "internal/xmlenc"},
	"roster":  {"router", "storage", "internal/xmlenc", "internal/burstlog"},
	// sharedgroups holds the shared roster groups roster lays over its
	// items (through roster.SharedView, which its View implements).
	"sharedgroups": {"storage"},
	"offline":      {"router", "storage", "internal/xmlenc", "internal/burstlog"},
	"push":         {"router", "storage", "internal/burstlog"}, // XEP-0357
	"muc":          {"router", "storage", "internal/xmlenc"},
	"carbons":      {"router", "internal/xmlenc"},                                 // XEP-0280; stores nothing
	"caps":         {"router", "internal/xmlenc"},                                 // XEP-0115; in memory only
	"mam":          {"router", "storage", "internal/xmlenc", "internal/burstlog"}, // XEP-0313; muc reaches it through muc.Archive
	"blocking":     {"router", "internal/burstlog"},                               // XEP-0191; its Store is storage's Blocklists
	"httpupload":   {"router", "storage", "internal/xmlenc"},
	"pep":          {"router", "storage", "internal/xmlenc", "internal/burstlog"},            // XEP-0163; rosters through pep.Roster (roster implements it)
	"vcard":        {"router", "internal/xmlenc", "internal/burstlog", "internal/echoguard"}, // XEP-0054/0153/0398; its Store is storage's VCards
	"private":      {"router", "internal/xmlenc", "internal/echoguard"},                      // XEP-0049/0402 #compat; its Store is storage's PrivateXML

	// Issue 23's smaller pieces.
	"contactinfo":  {"router"},                      // XEP-0157; addresses from the config, converted by server
	"extdisco":     {"router"},                      // XEP-0215; services from the config, converted by server
	"entitytime":   {"router"},                      // XEP-0202
	"lastactivity": {"router", "internal/burstlog"}, // XEP-0012; its Store is storage's LastActivity
	"component":    {"router", "internal/xmlenc"},   // XEP-0114; components from the config, converted by server
	// s2s is federation, the router's first Remote: the stanzas it
	// carries enter and leave through the router alone.
	"s2s": {"router", "internal/xmlenc", "internal/ratelimit"},

	// migration is the portable form of imports and exports and its
	// writer into storage: auth derives the credentials, vcard parses
	// vCards as it stores them, mam names archived room messages.
	"migration": {"auth", "storage", "vcard", "mam"},
	// Readers and writers of export files; migration.SafeDecoder reads
	// them.
	"migration/xep0227":     {"migration", "storage", "internal/xmlenc"},
	"migration/openfirexml": {"migration", "storage"},
	"migration/openfire":    {"migration", "storage"},

	"auth":                {"storage"},
	"storage":             {},
	"storage/storagetest": {"storage"},
	"config":              {},
	"certs":               {},

	"internal/xmlenc":     {},
	"internal/ratelimit":  {}, // the read-side token bucket of c2s and s2s
	"internal/echoguard":  {}, // vcard's and private's guard against their own PEP writes
	"internal/burstlog":   {}, // one ERROR line per burst of storage failures
	"internal/proxyproto": {}, // the PROXY protocol header
	"internal/xmlsplit":   {}, // c2s output split into top-level elements (BOSH, WebSocket)
	"internal/origin":     {}, // [http] allowed_origins, for WebSocket and BOSH
	// xmpptest starts whole servers for other packages' tests.
	"internal/xmpptest": {"server", "config", "auth", "storage", "storage/storagetest", "internal/xmlenc"},
	"interop":           {}, // tests only
	"compliance":        {}, // tests only: XEP-0479 Advanced Server, row by row
}

// TestDependencyDirection enforces the one-way arrows of
// docs/architecture.md through allowedImports, for every package that
// `go list ./...` finds.
func TestDependencyDirection(t *testing.T) {
	const mod = "xmppd.dev/xmppd"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		pkg, ok := relative(mod, f[0])
		if !ok {
			t.Fatalf("go list: package %s is outside module %s", f[0], mod)
		}
		seen[pkg] = true
		allowed, known := allowedImports[pkg]
		if !known {
			t.Errorf("package %q is not in allowedImports: add it with the xmppd packages it may import, following docs/architecture.md", pkg)
			continue
		}
		for _, imp := range f[1:] {
			dep, ours := relative(mod, imp)
			if ours && !slices.Contains(allowed, dep) {
				t.Errorf("%s imports %s, against the dependency direction (allowed: %s)", name(pkg), name(dep), list(allowed))
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("go list found only %d packages: %q", len(seen), out)
	}
	for pkg := range allowedImports {
		if !seen[pkg] {
			t.Errorf("allowedImports names %q, which go list no longer finds: remove it", pkg)
		}
	}
}

// relative returns path relative to the module mod ("" for the root) and
// whether path is in it.
func relative(mod, path string) (string, bool) {
	if path == mod {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, mod+"/")
	return rest, ok
}

func name(pkg string) string {
	if pkg == "" {
		return "the module root"
	}
	return pkg
}

func list(pkgs []string) string {
	if len(pkgs) == 0 {
		return "none"
	}
	return strings.Join(pkgs, ", ")
}
