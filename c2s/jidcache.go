package c2s

import (
	"sync"

	"mellium.im/xmpp/jid"

	"xmppd.dev/xmppd/internal/xmlenc"
)

// jidCache remembers, for the whole server, the to addresses clients have
// written and their parsed forms. Each session keeps its last one (see
// addrCache), but on a busy server a client writes to many peers in turn,
// and a miss there cost a PRECIS parse (about 6 % of the server's CPU at
// 15,000 messages/s among 10,000 clients). Parsing is a pure function of
// the attribute, so the entries never go stale; a shard that fills up is
// emptied, and addresses longer than jidCacheMaxLen (a JID may have 3,071
// bytes in each part) are parsed every time, which bounds the memory at
// about 15 MB whatever clients write (about 150 bytes per ordinary entry).
type jidCache struct {
	shards [jidShards]jidShard
}

const (
	jidShards       = 16
	jidShardEntries = 1024
	jidCacheMaxLen  = 256
)

type jidShard struct {
	mu sync.RWMutex
	m  map[string]*parsedJID // guarded by mu
}

// parsedJID is one cached address. It is never written once shared.
type parsedJID struct {
	raw  string // as the client wrote it: the key
	j    jid.JID
	str  string // canonical
	attr []byte // ` to='…'`, escaped
}

// get returns the parsed form of raw, parsing it on a miss.
func (c *jidCache) get(raw []byte) (*parsedJID, error) {
	if len(raw) > jidCacheMaxLen {
		return parseJID(raw)
	}
	// FNV-1a: raw is short, and the map hashes it again anyway.
	h := uint32(2166136261)
	for _, b := range raw {
		h = (h ^ uint32(b)) * 16777619
	}
	sh := &c.shards[h%jidShards]
	sh.mu.RLock()
	p := sh.m[string(raw)] // no allocation for the lookup
	sh.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	p, err := parseJID(raw)
	if err != nil {
		return nil, err // not cached: bad input is rare and may be hostile
	}
	sh.mu.Lock()
	if sh.m == nil || len(sh.m) >= jidShardEntries {
		sh.m = make(map[string]*parsedJID)
	}
	sh.m[p.raw] = p
	sh.mu.Unlock()
	return p, nil
}

func parseJID(raw []byte) (*parsedJID, error) {
	j, err := jid.Parse(string(raw))
	if err != nil {
		return nil, err
	}
	s := j.String()
	return &parsedJID{raw: string(raw), j: j, str: s, attr: xmlenc.AppendAttr(nil, "to", s)}, nil
}
