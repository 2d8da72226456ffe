package mam

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"time"
)

// Stanza ids (XEP-0359) are 16 bytes: the archive sequence number (the
// microsecond the message was archived, big-endian) and 8 random bytes,
// in lower-case base32hex without padding (26 characters). The sequence
// makes ids sort by time and lets a query turn an id back into the row's
// key without an index of its own; the random half makes them
// unguessable, so knowing one id tells nothing of another.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

const idLen = 26

// clock hands out sequence numbers: the current time in microseconds,
// strictly increasing even when two messages are archived in the same
// microsecond or the wall clock steps back.
type clock struct {
	mu   sync.Mutex
	last int64
}

// start makes the clock continue after floor (the newest sequence already
// stored), so that ids stay unique and ordered across restarts.
func (c *clock) start(floor int64) {
	c.mu.Lock()
	c.last = max(c.last, floor)
	c.mu.Unlock()
}

func (c *clock) next() int64 {
	now := time.Now().UnixMicro()
	c.mu.Lock()
	if now <= c.last {
		now = c.last + 1
	}
	c.last = now
	c.mu.Unlock()
	return now
}

// newID returns the stanza id for seq.
func newID(seq int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seq))
	rand.Read(b[8:]) // never fails (crypto/rand)
	return idEncoding.EncodeToString(b[:])
}

// seqOf returns the sequence number an id carries; ok is false for
// anything that is not one of our ids. The id must still be checked
// against the stored row: its random half is what makes it ours.
func seqOf(id string) (seq int64, ok bool) {
	if len(id) != idLen {
		return 0, false
	}
	var b [16]byte
	if n, err := idEncoding.Decode(b[:], []byte(id)); err != nil || n != 16 {
		return 0, false
	}
	s := int64(binary.BigEndian.Uint64(b[:8]))
	return s, s > 0
}

// stampOf is when a sequence number was taken.
func stampOf(seq int64) time.Time { return time.UnixMicro(seq).UTC() }

// ImportID returns the stanza id of an archive row of seq written by an
// import (package migration) rather than by the archive itself: its
// second half is derived from key (the message's content) instead of
// drawn at random, so that an import run twice names a message alike.
// Such an id is as guessable as the content it derives from; the message
// was in the source server's log already.
func ImportID(seq int64, key []byte) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seq))
	h := sha256.Sum256(key)
	copy(b[8:], h[:8])
	return idEncoding.EncodeToString(b[:])
}
