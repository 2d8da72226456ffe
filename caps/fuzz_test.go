package caps

import (
	"encoding/xml"
	"strings"
	"testing"
)

// FuzzParseInfo: whatever a client answers to the server's disco#info
// query, ParseInfo and Ver return a value or an error, and an answer
// that verifies verifies again once its Info is taken apart and put back
// in another order (the string does not depend on the order of the
// answer's children).
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		"<identity category='client' type='pc' name='Exodus 0.9.1'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/>",
		"<identity category='client' type='pc' xml:lang='en' name='Psi'/><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field><field var='os'><value>Mac</value></field></x>",
		"<feature var='a'/><feature var='a'/>",
		"<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>a</value><value>b</value></field></x>",
		"<identity category='a&lt;b' type='c'/>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, inner string) {
		d := xml.NewDecoder(strings.NewReader("<query xmlns='http://jabber.org/protocol/disco#info'>" + inner + "</query>"))
		info, err := ParseInfo(d)
		if err != nil {
			return
		}
		v1, err := Ver("sha-1", info)
		if err != nil {
			return
		}
		// Reverse the lists: the verification string sorts them.
		rev := info
		rev.Features = append([]string(nil), info.Features...)
		for i, j := 0, len(rev.Features)-1; i < j; i, j = i+1, j-1 {
			rev.Features[i], rev.Features[j] = rev.Features[j], rev.Features[i]
		}
		v2, err := Ver("sha-1", rev)
		if err != nil || v2 != v1 {
			t.Fatalf("ver %q, then %q (%v) with the features reversed", v1, v2, err)
		}
	})
}
