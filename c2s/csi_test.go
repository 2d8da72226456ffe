package c2s

import (
	"bytes"
	"strings"
	"testing"
)

func TestCSIClassify(t *testing.T) {
	const (
		urgent   = csiUrgent
		presence = csiPresence
		wait     = csiMayWait
	)
	cases := map[string]struct {
		xml  string
		want csiKind
	}{
		// Presence: updates wait, everything else is urgent.
		"presence available":    {`<presence from='bob@localhost/a'><show>away</show></presence>`, presence},
		"presence unavailable":  {`<presence type='unavailable' from='bob@localhost/a'/>`, presence},
		"presence dquote":       {`<presence type="unavailable" from="bob@localhost/a"/>`, presence},
		"presence no from":      {`<presence/>`, presence},
		"presence spaced attr":  {`<presence type = 'unavailable' from ='bob@localhost/a' />`, presence},
		"presence muc":          {`<presence from='room@conference.localhost/nick'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/></x></presence>`, presence},
		"presence subscribe":    {`<presence type='subscribe' from='bob@localhost'/>`, urgent},
		"presence subscribed":   {`<presence type='subscribed' from='bob@localhost'/>`, urgent},
		"presence unsubscribe":  {`<presence type='unsubscribe' from='bob@localhost'/>`, urgent},
		"presence unsubscribed": {`<presence type='unsubscribed' from='bob@localhost'/>`, urgent},
		"presence error":        {`<presence type='error' from='bob@localhost'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>`, urgent},
		"presence probe":        {`<presence type='probe' from='bob@localhost'/>`, urgent},
		"presence empty type":   {`<presence type='' from='bob@localhost/a'/>`, urgent},

		// IQ: always urgent.
		"iq get":    {`<iq type='get' id='1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, urgent},
		"iq set":    {`<iq type='set' id='2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>`, urgent},
		"iq result": {`<iq type='result' id='3'/>`, urgent},
		"iq error":  {`<iq type='error' id='4'/>`, urgent},

		// Messages that may wait.
		"chat state":      {`<message from='bob@localhost/a' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, wait},
		"chat state gone": {`<message from="bob@localhost/a" type="chat"><gone xmlns="http://jabber.org/protocol/chatstates"/><thread>t1</thread></message>`, wait},
		"chat state decorated": {`<message from='bob@localhost/a' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/>` +
			`<no-store xmlns='urn:xmpp:hints'/><origin-id xmlns='urn:xmpp:sid:0' id='x'/><stanza-id xmlns='urn:xmpp:sid:0' id='y' by='alice@localhost'/>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>`, wait},
		"receipt":         {`<message from='bob@localhost/a' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>`, wait},
		"marker":          {`<message from='bob@localhost/a' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`, wait},
		"marker acked":    {`<message from='bob@localhost/a'><acknowledged xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>`, wait},
		"empty message":   {`<message from='bob@localhost/a'/>`, wait},
		"no children":     {`<message from='bob@localhost/a'></message>`, wait},
		"pep":             {`<message from='bob@localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:avatar:metadata'><item id='h'><metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='12' id='h' type='image/png'/></metadata></item></items></event></message>`, wait},
		"gt in attribute": {`<message from='bob@localhost/a' id='a>b'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, wait},
		"carbon received chat state": {`<message from='alice@localhost' type='chat'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a' to='alice@localhost/phone' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>` +
			`</forwarded></received></message>`, wait},
		"carbon received marker with delay": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/><message xmlns='jabber:client' from='bob@localhost/a'><displayed xmlns='urn:xmpp:chat-markers:0' id='m'/></message>` +
			`</forwarded></received></message>`, wait},

		// Messages that are urgent.
		"body":             {`<message from='bob@localhost/a' type='chat'><body>hi</body></message>`, urgent},
		"body dquote":      {`<message from="bob@localhost/a" type="chat"><body>hi</body><active xmlns="http://jabber.org/protocol/chatstates"/></message>`, urgent},
		"empty body":       {`<message from='bob@localhost/a'><body/></message>`, urgent},
		"headline body":    {`<message from='localhost' type='headline'><body>The server restarts at noon</body></message>`, urgent},
		"error":            {`<message from='bob@localhost/a' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`, urgent},
		"error chat state": {`<message from='bob@localhost/a' type='error'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, urgent},
		"subject":          {`<message from='room@conference.localhost' type='groupchat'><subject>Topic</subject></message>`, urgent},
		"omemo": {`<message from='bob@localhost/a' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'><key rid='2'>a2V5</key><iv>aXY=</iv></header></encrypted>` +
			`<store xmlns='urn:xmpp:hints'/></message>`, urgent},
		"omemo 2":          {`<message from='bob@localhost/a' type='chat'><encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'/></encrypted></message>`, urgent},
		"eme":              {`<message from='bob@localhost/a'><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:openpgp:0'/><openpgp xmlns='urn:xmpp:openpgp:0'>eA==</openpgp></message>`, urgent},
		"jingle message":   {`<message from='bob@localhost/a' type='chat'><propose xmlns='urn:xmpp:jingle-message:0' id='c'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose></message>`, urgent},
		"jingle message 1": {`<message from='bob@localhost/a' type='chat'><retract xmlns='urn:xmpp:jingle-message:1' id='c'/></message>`, urgent},
		"muc invite":       {`<message from='room@conference.localhost'><x xmlns='http://jabber.org/protocol/muc#user'><invite from='bob@localhost'><reason>join us</reason></invite></x></message>`, urgent},
		"direct invite":    {`<message from='bob@localhost/a'><x xmlns='jabber:x:conference' jid='room@conference.localhost'/></message>`, urgent},
		"muc status":       {`<message from='room@conference.localhost' type='groupchat'><x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x></message>`, urgent},
		"carbon sent":      {`<message from='alice@localhost'><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='bob@localhost'><displayed xmlns='urn:xmpp:chat-markers:0' id='m'/></message></forwarded></sent></message>`, urgent},
		"carbon received body": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a' type='chat'><body>hi</body></message></forwarded></received></message>`, urgent},
		"carbon received error": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a' type='error'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, urgent},
		"carbon received empty error": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a' type='error'/></forwarded></received></message>`, urgent},
		"carbon received empty": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a'/></forwarded></received></message>`, wait},
		"carbon received invite": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a'><x xmlns='jabber:x:conference' jid='room@conference.localhost'/></message></forwarded></received></message>`, urgent},
		"carbon without jabber:client": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message from='bob@localhost/a'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, urgent},
		"nested carbon": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>` +
			`<received xmlns='urn:xmpp:carbons:2'/></message></forwarded></received></message>`, urgent},
		"pep in carbon": {`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>` +
			`<event xmlns='http://jabber.org/protocol/pubsub#event'/></message></forwarded></received></message>`, urgent},
		"receipt request":         {`<message from='bob@localhost/a'><request xmlns='urn:xmpp:receipts'/></message>`, urgent},
		"markable":                {`<message from='bob@localhost/a'><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, urgent},
		"unknown payload":         {`<message from='bob@localhost/a'><x xmlns='urn:example:new'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, urgent},
		"chat state unknown name": {`<message from='bob@localhost/a'><thinking xmlns='http://jabber.org/protocol/chatstates'/></message>`, urgent},
		"jabber:client child":     {`<message from='bob@localhost/a'><html/></message>`, urgent},
		"xhtml-im body":           {`<message from='bob@localhost/a'><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>hi</body></html></message>`, urgent},
		"body in chat state":      {`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'><body>x</body></composing></message>`, urgent},
		"escaped body text":       {`<message from='bob@localhost/a'><thread>&lt;body&gt;</thread></message>`, wait},
		"prefixed child":          {`<message from='bob@localhost/a'><cs:active xmlns:cs='http://jabber.org/protocol/chatstates'/></message>`, urgent},
		"comment":                 {`<message from='bob@localhost/a'><!-- x --></message>`, urgent},
		"cut short":               {`<message from='bob@localhost/a'><active xmlns='http://jabber.org/protocol/chatstates'/>`, urgent},

		// Not a stanza, or not one this can read.
		"nonza":             {`<r xmlns='urn:xmpp:sm:3'/>`, urgent},
		"stream error":      {`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`, urgent},
		"other namespace":   {`<message xmlns='jabber:server' from='bob@localhost/a'/>`, urgent},
		"jabber:client top": {`<message xmlns='jabber:client' from='bob@localhost/a'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, wait},
		"empty":             {``, urgent},
		"whitespace":        {` `, urgent},
		"unquoted":          {`<presence from=bob/>`, urgent},
		"unterminated":      {`<presence from='bob`, urgent},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, from := csiClassify([]byte(tc.xml))
			if got != tc.want {
				t.Errorf("csiClassify(%s) = %d, want %d", tc.xml, got, tc.want)
			}
			if got == csiPresence && from.end > from.start {
				if f := tc.xml[from.start:from.end]; !strings.HasPrefix(f, "bob@") && !strings.HasPrefix(f, "room@") {
					t.Errorf("from = %q", f)
				}
			}
		})
	}
}

// heldBytes lists what take returned, as strings.
func heldBytes(items []outItem) []string {
	var s []string
	for _, it := range items {
		s = append(s, string(it.b))
	}
	return s
}

func TestCSIBufferOrderAndDedupe(t *testing.T) {
	type step struct {
		xml  string
		held bool
	}
	cases := map[string]struct {
		steps []step
		want  []string // take, in order
	}{
		"order kept": {
			steps: []step{
				{`<presence from='bob@localhost/a'/>`, true},
				{`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
				{`<presence from='carol@localhost/b'/>`, true},
			},
			want: []string{
				`<presence from='bob@localhost/a'/>`,
				`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
				`<presence from='carol@localhost/b'/>`,
			},
		},
		"latest presence per from, moved last": {
			steps: []step{
				{`<presence from='bob@localhost/a'><show>away</show></presence>`, true},
				{`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
				{`<presence from='carol@localhost/b'/>`, true},
				{`<presence type='unavailable' from='bob@localhost/a'/>`, true},
			},
			want: []string{
				`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
				`<presence from='carol@localhost/b'/>`,
				`<presence type='unavailable' from='bob@localhost/a'/>`,
			},
		},
		"quote styles": {
			steps: []step{
				{`<presence from="bob@localhost/a"><show>xa</show></presence>`, true},
				{`<presence from='bob@localhost/a'><show>dnd</show></presence>`, true},
				{`<presence type="unavailable" from="bob@localhost/a"/>`, true},
			},
			want: []string{`<presence type="unavailable" from="bob@localhost/a"/>`},
		},
		"full JIDs differ": {
			steps: []step{
				{`<presence from='bob@localhost/a'/>`, true},
				{`<presence from='bob@localhost/b'/>`, true},
				{`<presence from='bob@localhost'/>`, true},
			},
			want: []string{`<presence from='bob@localhost/a'/>`, `<presence from='bob@localhost/b'/>`, `<presence from='bob@localhost'/>`},
		},
		"no from": {
			steps: []step{
				{`<presence><show>away</show></presence>`, true},
				{`<presence from='bob@localhost/a'/>`, true},
				{`<presence/>`, true},
			},
			want: []string{`<presence from='bob@localhost/a'/>`, `<presence/>`},
		},
		"urgent changes nothing": {
			steps: []step{
				{`<presence from='bob@localhost/a'/>`, true},
				{`<message from='bob@localhost/a'><body>hi</body></message>`, false},
				{`<presence type='subscribe' from='bob@localhost'/>`, false},
				{`<iq type='get' id='1'/>`, false},
			},
			want: []string{`<presence from='bob@localhost/a'/>`},
		},
		"messages are not deduplicated": {
			steps: []step{
				{`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
				{`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, true},
			},
			want: []string{
				`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
				`<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var c csiBuffer
			size := 0
			for i, s := range tc.steps {
				if got := c.offer(outItem{b: []byte(s.xml)}); got != s.held {
					t.Fatalf("step %d: offer(%s) = %v, want %v", i, s.xml, got, s.held)
				}
			}
			for _, w := range tc.want {
				size += len(w)
			}
			if c.len() != len(tc.want) || c.bytes() != size {
				t.Errorf("len, bytes = %d, %d; want %d, %d", c.len(), c.bytes(), len(tc.want), size)
			}
			got := heldBytes(c.take())
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("take:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if c.len() != 0 || c.bytes() != 0 || c.take() != nil {
				t.Errorf("after take: len %d, bytes %d, take not nil", c.len(), c.bytes())
			}
		})
	}
}

// TestCSIBufferOwned: a presence with a done callback is never dropped
// (its owner waits for it to be written), nor is a callback called.
func TestCSIBufferOwned(t *testing.T) {
	var c csiBuffer
	called := false
	done := func(bool) { called = true }
	owned := `<presence from='bob@localhost/a'><show>away</show></presence>`
	c.offer(outItem{b: []byte(`<presence from='bob@localhost/a'/>`)})
	if !c.offer(outItem{b: []byte(owned), done: done}) {
		t.Fatal("owned presence not held")
	}
	if !c.offer(outItem{b: []byte(`<presence type='unavailable' from='bob@localhost/a'/>`)}) {
		t.Fatal("presence not held")
	}
	if !c.offer(outItem{b: []byte(`<presence from='bob@localhost/a'/>`)}) {
		t.Fatal("presence not held")
	}
	items := c.take()
	want := []string{owned, `<presence from='bob@localhost/a'/>`}
	if got := heldBytes(items); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("take:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if items[0].done == nil {
		t.Error("the owned presence lost its callback")
	}
	if called {
		t.Error("offer called a done callback")
	}
}

func TestCSIBufferBounds(t *testing.T) {
	t.Run("stanzas", func(t *testing.T) {
		var c csiBuffer
		for i := range csiMaxHeld {
			p := []byte("<presence from='bob" + strings.Repeat("x", i) + "@localhost'/>")
			if !c.offer(outItem{b: p}) {
				t.Fatalf("presence %d not held", i)
			}
		}
		before := c.bytes()
		if c.offer(outItem{b: []byte(`<presence from='carol@localhost'/>`)}) {
			t.Fatalf("held %d stanzas", c.len())
		}
		if c.len() != csiMaxHeld || c.bytes() != before {
			t.Errorf("a refused offer changed the buffer: len %d, bytes %d", c.len(), c.bytes())
		}
		// A presence that supersedes one held still fits.
		if !c.offer(outItem{b: []byte(`<presence type='unavailable' from='bob@localhost'/>`)}) {
			t.Error("superseding presence refused at the bound")
		}
		if c.len() != csiMaxHeld {
			t.Errorf("len = %d", c.len())
		}
	})
	t.Run("bytes", func(t *testing.T) {
		var c csiBuffer
		pad := strings.Repeat("x", 1000)
		st := []byte(`<message from='bob@localhost/a'><thread>` + pad + `</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
		n := 0
		for c.offer(outItem{b: st}) {
			n++
		}
		if want := csiMaxBytes / len(st); n != want {
			t.Errorf("held %d of %d bytes, want %d", n, len(st), want)
		}
		if c.bytes() > csiMaxBytes || c.bytes() != n*len(st) {
			t.Errorf("bytes = %d", c.bytes())
		}
		if len(c.take()) != n {
			t.Error("take lost stanzas")
		}
		big := []byte(`<presence from='bob@localhost/a'><status>` + strings.Repeat("x", csiMaxBytes) + `</status></presence>`)
		if c.offer(outItem{b: big}) {
			t.Error("a stanza over csiMaxBytes was held")
		}
	})
}

// TestCSIClassifyAllocs: the classification allocates nothing, nor does
// a presence that replaces one held.
func TestCSIClassifyAllocs(t *testing.T) {
	stanzas := [][]byte{
		[]byte(`<presence type='unavailable' from='bob@localhost/a'/>`),
		[]byte(`<message from='bob@localhost/a' type='chat'><body>hi</body></message>`),
		[]byte(`<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<message xmlns='jabber:client' from='bob@localhost/a'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`),
		[]byte(`<message from='bob@localhost' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'/></event></message>`),
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, b := range stanzas {
			csiClassify(b)
		}
	}); n > 0 {
		t.Errorf("csiClassify allocs = %v, want 0", n)
	}
	var c csiBuffer
	p := outItem{b: stanzas[0]}
	c.offer(p)
	if n := testing.AllocsPerRun(100, func() { c.offer(p) }); n > 0 {
		t.Errorf("offer of a superseding presence allocs = %v, want 0", n)
	}
}

// FuzzCSIOffer offers the stanzas of data (split at NUL bytes; every third
// one with a done callback) and checks that offer never panics nor calls a
// callback, stays within its bounds, and that take returns exactly what a
// simple model says was held, in order.
func FuzzCSIOffer(f *testing.F) {
	for _, s := range []string{
		"<presence from='bob@localhost/a'/>\x00<message from='bob@localhost/a'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>\x00<presence type=\"unavailable\" from=\"bob@localhost/a\"/>",
		"<presence from='a'/>\x00<presence from='a'/>\x00<presence from='a'/>\x00<presence from='a'/>",
		"<message from='alice@localhost'><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><active xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>",
		"<message><event xmlns='http://jabber.org/protocol/pubsub#event'><items><item><x/></item></items></event></message>\x00<iq type='get'/>",
		"<message type='chat'><body>hi</body></message>\x00<presence/>",
		"<presence type = 'unavailable' from ='x' />\x00<presence from=\"x\">",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type model struct {
			b     []byte
			owned bool
		}
		var (
			c      csiBuffer
			held   []model
			called bool
		)
		done := func(bool) { called = true }
		for i, b := range bytes.Split(data, []byte{0}) {
			it := outItem{b: b}
			if i%3 == 2 {
				it.done = done
			}
			before := c.len()
			if !c.offer(it) {
				if c.len() != before {
					t.Fatalf("refused offer %q changed the buffer", b)
				}
				continue
			}
			kind, from := csiClassify(b)
			if kind == csiUrgent {
				t.Fatalf("held urgent %q", b)
			}
			if kind == csiPresence {
				for j, m := range held {
					k, f := csiClassify(m.b)
					if k == csiPresence && !m.owned && bytes.Equal(m.b[f.start:f.end], b[from.start:from.end]) {
						held = append(held[:j], held[j+1:]...)
						break
					}
				}
			}
			held = append(held, model{b, it.done != nil})
			if c.len() > csiMaxHeld || c.bytes() > csiMaxBytes {
				t.Fatalf("over bounds: %d stanzas, %d bytes", c.len(), c.bytes())
			}
		}
		size := 0
		for _, m := range held {
			size += len(m.b)
		}
		if c.len() != len(held) || c.bytes() != size {
			t.Fatalf("len, bytes = %d, %d; model %d, %d", c.len(), c.bytes(), len(held), size)
		}
		got := c.take()
		if len(got) != len(held) {
			t.Fatalf("take returned %d stanzas, model %d", len(got), len(held))
		}
		for i, it := range got {
			if !bytes.Equal(it.b, held[i].b) || (it.done != nil) != held[i].owned {
				t.Fatalf("take[%d] = %q (owned %v), model %q (owned %v)", i, it.b, it.done != nil, held[i].b, held[i].owned)
			}
		}
		if called {
			t.Fatal("offer called a done callback")
		}
		if c.len() != 0 || c.bytes() != 0 {
			t.Fatal("take left stanzas")
		}
	})
}
