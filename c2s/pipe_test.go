package c2s

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// TestPipeSession checks the fuzz harness itself: a ping through the
// in-memory session is answered, so the fuzz target reaches the read loop.
func TestPipeSession(t *testing.T) {
	srv := testServer()
	c, done := pipeSession(t, srv)
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, c); close(copied) }()
	c.Write([]byte(clientHeader + "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	c.Close()
	<-copied
	if !strings.Contains(out.String(), "<iq type='result' id='p' from='localhost' to='alice@localhost/r'>") {
		t.Fatalf("no ping result in %q", out.String())
	}
}
