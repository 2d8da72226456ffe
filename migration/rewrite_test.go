package migration

import (
	"errors"
	"strings"
	"testing"

	"xmppd.dev/xmppd/storage"
)

func TestRewriteDomain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice@old.example", "alice@new.example"},
		{"alice@OLD.example/phone", "alice@new.example/phone"},
		{"old.example", "new.example"},
		{"lounge@conference.old.example", "lounge@conference.new.example"},
		{"bob@notold.example", "bob@notold.example"},
		{"bob@other.example", "bob@other.example"},
		{"a/b@old.example", "a/b@old.example"}, // a resource holding @
	} {
		if got := rewriteJID(tc.in, "old.example", "new.example"); got != tc.want {
			t.Errorf("rewriteJID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	d := &Data{Domain: "old.example",
		Users: []User{{Username: "a", Roster: []storage.RosterItem{{Contact: "b@old.example"}}}},
		Rooms: []Room{{MUCRoom: storage.MUCRoom{JID: "r@conference.old.example", Service: "conference.old.example",
			Affiliations: []storage.MUCAffiliation{{JID: "a@old.example"}}}, Nicks: map[string]string{"b@old.example": "B"}}},
		SharedGroups: []SharedGroup{{Members: []string{"a@old.example"}}},
	}
	d.RewriteDomain("new.example")
	if d.Domain != "new.example" || d.Users[0].Roster[0].Contact != "b@new.example" || d.Rooms[0].JID != "r@conference.new.example" ||
		d.Rooms[0].Service != "conference.new.example" || d.Rooms[0].Affiliations[0].JID != "a@new.example" ||
		d.Rooms[0].Nicks["b@new.example"] != "B" || d.SharedGroups[0].Members[0] != "a@new.example" {
		t.Errorf("after RewriteDomain: %+v", d)
	}
}

// TestSafeDecoderRecordSize: a record (a user) larger than the limit is
// refused, though none of its texts is.
func TestSafeDecoderRecordSize(t *testing.T) {
	doc := "<a><b><c>"
	for range 100 {
		doc += "<d>0123456789</d>"
	}
	doc += "</c></b></a>"
	s := NewSafeDecoder(strings.NewReader(doc), "f.xml", XMLLimits{Element: 500, RecordDepth: 3})
	for {
		_, err := s.Token()
		if err != nil {
			if err.Error() == "EOF" {
				t.Fatal("a 1,700-byte record passed a 500-byte limit")
			}
			if !errors.Is(err, ErrUnsafeXML) {
				t.Fatalf("error %v does not wrap ErrUnsafeXML", err)
			}
			return
		}
	}
}
