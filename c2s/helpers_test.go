package c2s_test

import (
	"encoding/base64"
	"testing"

	"mellium.im/xmpp/jid"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func mustJID(t *testing.T, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
