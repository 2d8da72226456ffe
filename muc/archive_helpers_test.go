package muc_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"xmppd.dev/xmppd/auth"
	"xmppd.dev/xmppd/c2s"
	"xmppd.dev/xmppd/certs"
	"xmppd.dev/xmppd/internal/xmpptest"
	"xmppd.dev/xmppd/muc"
	"xmppd.dev/xmppd/ping"
	"xmppd.dev/xmppd/router"
	"xmppd.dev/xmppd/storage"
	"xmppd.dev/xmppd/storage/storagetest"
)

// appended is one call of Archive.Append.
type appended struct {
	room, nick, msg, id string
}

// queried is one call of Archive.Query.
type queried struct {
	room, from, typ string
	payload         xml.Name
}

// recordArchive is a muc.Archive that records what the rooms ask of it.
// Append hands out arch-1, arch-2, …; Query sends one fixed result
// message to the requester and returns <fin complete='true'/> (a query
// with queryid 'refuse' or 'fail' gets a stanza error or a plain error);
// Forget records the room.
type recordArchive struct {
	r *router.Router // set before the service starts

	mu      sync.Mutex
	n       int // ids handed out
	appends []appended
	queries []queried
	forgot  []string
}

var _ muc.Archive = (*recordArchive)(nil)

func (a *recordArchive) Append(room jid.JID, nick string, msg []byte) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	id := fmt.Sprintf("arch-%d", a.n)
	a.appends = append(a.appends, appended{room: room.String(), nick: nick, msg: string(msg), id: id})
	return id
}

func (a *recordArchive) Query(ctx context.Context, room jid.JID, iq *router.Stanza) (xml.TokenReader, error) {
	var q struct {
		Query struct {
			ID string `xml:"queryid,attr"`
		} `xml:",any"`
	}
	if err := iq.Decoder().Decode(&q); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.queries = append(a.queries, queried{room: room.String(), from: iq.From.String(), typ: iq.Type, payload: iq.Payload})
	a.mu.Unlock()
	switch q.Query.ID {
	case "refuse":
		return nil, fmt.Errorf("mam: %w", router.ErrorText(stanza.Cancel, stanza.ItemNotFound, "no such message"))
	case "fail":
		return nil, errors.New("mam: the disk is on fire")
	}
	msg := fmt.Sprintf("<message from='%s' to='%s'><result xmlns='urn:xmpp:mam:2' queryid='%s' id='arch-1'>"+
		"<forwarded xmlns='urn:xmpp:forward:0'><message type='groupchat' from='%s/Old'><body>old</body></message></forwarded>"+
		"</result></message>", room, iq.From, q.Query.ID, room)
	a.r.Route(ctx, &router.Stanza{Kind: router.KindMessage, From: room, To: iq.From, Raw: []byte(msg)})
	return xml.NewDecoder(strings.NewReader("<fin xmlns='urn:xmpp:mam:2' complete='true'/>")), nil
}

func (a *recordArchive) Forget(ctx context.Context, room jid.JID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forgot = append(a.forgot, room.String())
}

// take returns what was recorded since the last take.
func (a *recordArchive) take() (appends []appended, queries []queried, forgot []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	appends, queries, forgot = a.appends, a.queries, a.forgot
	a.appends, a.queries, a.forgot = nil, nil, nil
	return appends, queries, forgot
}

// archServer is xmppd's router, c2s and storage with a muc service whose
// Archive is a recordArchive: package server wires the real archive,
// which tests of the rooms' side do not want. Clients log in through
// xmpptest over real sockets.
type archServer struct {
	*xmpptest.Server // Login; its Addr changes on restart
	archive          *recordArchive
	engine           storagetest.Engine
	certDir          string

	// Set by start, cleared by stop.
	db    *storage.DB
	auth  *auth.Service
	c2s   *c2s.Server
	svc   *muc.Service
	serve chan error
}

// startArchived starts an archServer on the engine e (storagetest) and
// stops it when the test ends.
func startArchived(t *testing.T, e storagetest.Engine) *archServer {
	t.Helper()
	e.Require(t)
	a := &archServer{archive: &recordArchive{}, engine: e, certDir: t.TempDir()}
	a.start(t)
	t.Cleanup(func() { a.stop(t) })
	return a
}

// start starts the server on the engine's database, which it migrates,
// loading the persistent rooms there.
func (a *archServer) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.Open(ctx, a.engine.Driver, a.engine.DSN)
	if err != nil {
		t.Fatal(err)
	}
	a.db = db
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a.auth = auth.New(db.Accounts(), auth.MinIterations)
	r := router.New(jid.MustParse("localhost"), a.auth, log)
	ping.Register(r.Registry())
	a.archive.r = r
	a.svc, err = muc.New(r, db.MUC(), muc.Options{
		Domain: service, MaxRoomsPerUser: 10, MaxOccupants: 100, HistoryLength: 20, MaxHistoryLength: 100,
		Archive: a.archive,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Load(ctx); err != nil {
		t.Fatal(err)
	}
	a.svc.Register(r.Registry())
	cert, _, err := certs.Load("", "", a.certDir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	a.c2s = &c2s.Server{Router: r, Store: a.auth, TLS: certs.ServerConfig(cert), Log: log, SCRAMIterations: auth.MinIterations}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.serve = make(chan error, 1)
	go func() { a.serve <- a.c2s.Serve(ln) }()
	a.Server = xmpptest.At(ln.Addr().String(), "localhost")
}

// stop shuts the server down, as package server does: the rooms first,
// then the streams, then storage.
func (a *archServer) stop(t *testing.T) {
	t.Helper()
	if a.db == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.svc.Shutdown(ctx)
	if err := a.c2s.Shutdown(ctx); err != nil {
		t.Errorf("c2s shutdown: %v", err)
	}
	if err := <-a.serve; !errors.Is(err, c2s.ErrServerClosed) {
		t.Errorf("c2s Serve = %v, want ErrServerClosed", err)
	}
	if err := a.db.Close(); err != nil {
		t.Errorf("close storage: %v", err)
	}
	a.db = nil
}

// restart stops the server and starts it again on the same database.
func (a *archServer) restart(t *testing.T) {
	t.Helper()
	a.stop(t)
	a.start(t)
}

// login creates the account name and logs it in as login does.
func (a *archServer) login(t *testing.T, name string) *user {
	t.Helper()
	if err := a.auth.Create(t.Context(), jid.MustParse(name+"@localhost"), "pw-"+name); err != nil {
		t.Fatal(err)
	}
	return relogin(t, a.Server, name)
}

// logWriter sends the server's log to the test's.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// stanzaIDs returns the XEP-0359 <stanza-id/>s among the children of the
// stanza raw, as "by id".
func stanzaIDs(t *testing.T, raw string) []string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	d.DefaultSpace = stanza.NSClient
	var ids []string
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return ids
		}
		if err != nil {
			t.Fatalf("stanza ids of %q: %v", raw, err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && tk.Name.Space == muc.NSSID && tk.Name.Local == "stanza-id" {
				var by, id string
				for _, at := range tk.Attr {
					switch at.Name.Local {
					case "by":
						by = at.Value
					case "id":
						id = at.Value
					}
				}
				ids = append(ids, by+" "+id)
			}
		case xml.EndElement:
			depth--
		}
	}
}
