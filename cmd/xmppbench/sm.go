package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
)

// nsSM is stream management (XEP-0198), version 3.
const nsSM = "urn:xmpp:sm:3"

// Stream management elements the client writes. An <r/> rides in the same
// write as the stanza that made it due.
const (
	smEnable  = "<enable xmlns='" + nsSM + "' resume='true'/>"
	smRequest = "<r xmlns='" + nsSM + "'/>"
	smAckHead = "<a xmlns='" + nsSM + "' h='"
)

// errNoSM is a server that does not offer urn:xmpp:sm:3 after bind.
var errNoSM = errors.New("sm: server offers no stream management (" + nsSM + ")")

// smCounters are an invocation's stream-management counts, for the result
// lines (each phase reports its own difference).
type smCounters struct {
	acksRecv, acksSent atomic.Int64 // <a/> from the server, <a/> to it
	reqsRecv, reqsSent atomic.Int64 // <r/> from the server, <r/> to it
	badH               atomic.Int64 // an <a/> acknowledging more than was sent, or less than before
}

// figures reads the counters.
func (s *smCounters) figures() SMFigures {
	return SMFigures{
		SM:       true,
		AcksRecv: s.acksRecv.Load(),
		AcksSent: s.acksSent.Load(),
		ReqsRecv: s.reqsRecv.Load(),
		ReqsSent: s.reqsSent.Load(),
		BadH:     s.badH.Load(),
	}
}

// smState is one client's stream management, nil when it is off. Like
// Conversations, the client acknowledges every -sm-ack-every stanzas it
// receives without being asked, asks for an acknowledgement every
// -sm-ack-every stanzas it sends, and answers the server's <r/>.
type smState struct {
	every uint32
	cnt   *smCounters

	// Owned by whoever reads the stream: negotiation, then the reader
	// goroutine.
	in       uint32 // stanzas received since <enabled/> (h, modulo 2^32)
	inSince  uint32 // received since the last <a/> sent
	lastH    uint32 // the server's latest h
	ackBuf   []byte // the <a/> being written, reused
	resumeOK bool   // <enabled/> had resume='true' and an id

	out atomic.Uint32 // stanzas sent since <enable/>, from any goroutine
}

// enableSM asks for stream management with resumption after bind; feats
// are the features of the bound stream. An answer other than <enabled/>
// is an error.
func (c *client) enableSM(o *options, feats []byte, cnt *smCounters) error {
	if !bytes.Contains(feats, []byte(nsSM)) {
		return errNoSM
	}
	if err := c.send(smEnable); err != nil {
		return err
	}
	for {
		el, err := c.sp.next()
		if err != nil {
			return fmt.Errorf("sm: %w", err)
		}
		switch string(name(el)) {
		case "enabled":
			c.sm = &smState{every: uint32(o.smAckEvery), cnt: cnt}
			id, _ := attr(el, "id")
			r, _ := attr(el, "resume")
			c.sm.resumeOK = len(id) > 0 && (string(r) == "true" || string(r) == "1")
			return nil
		case "failed":
			return fmt.Errorf("sm: enable failed: %s", describe(el))
		case "stream:error":
			return fmt.Errorf("sm: stream error: %s", describe(el))
		}
	}
}

// isStanza reports whether el is a message, presence or IQ: what h counts.
func isStanza(el []byte) bool {
	n := name(el)
	return string(n) == "message" || string(n) == "presence" || string(n) == "iq"
}

// smRead counts a received element for stream management and answers the
// server's <r/>. It reports whether el was a stream management element
// (and is done with). Called only by the goroutine reading the stream.
func (c *client) smRead(el []byte) bool {
	s := c.sm
	if len(el) > 1 && (el[1] == 'm' || el[1] == 'p' || el[1] == 'i') && isStanza(el) {
		s.in++
		if s.inSince++; s.inSince >= s.every {
			c.smAck()
		}
		return false
	}
	switch string(name(el)) {
	case "r":
		s.cnt.reqsRecv.Add(1)
		c.smAck()
		return true
	case "a":
		s.cnt.acksRecv.Add(1)
		v, _ := attr(el, "h")
		h, _, ok := parseUint(v, 0)
		// h is modulo 2^32: it may not pass what was sent, nor go back.
		out := s.out.Load()
		if !ok || h > 1<<32-1 || int32(out-uint32(h)) < 0 || int32(uint32(h)-s.lastH) < 0 {
			s.cnt.badH.Add(1)
		} else {
			s.lastH = uint32(h)
		}
		return true
	}
	return false
}

// smAck writes <a h='…'/> with the count of stanzas received.
func (c *client) smAck() {
	s := c.sm
	s.inSince = 0
	s.ackBuf = append(s.ackBuf[:0], smAckHead...)
	s.ackBuf = strconv.AppendUint(s.ackBuf, uint64(s.in), 10)
	s.ackBuf = append(s.ackBuf, "'/>"...)
	if _, err := c.conn.Write(s.ackBuf); err == nil {
		s.cnt.acksSent.Add(1)
	}
}

// smSent counts k stanzas about to be written and reports whether an <r/>
// is due with them (one of them is a multiple of -sm-ack-every).
func (c *client) smSent(k uint32) bool {
	s := c.sm
	n := s.out.Add(k)
	if n%s.every < k {
		s.cnt.reqsSent.Add(1)
		return true
	}
	return false
}

// sendStanzas writes s, which holds k stanzas, with an <r/> after it when
// one is due. For the few stanzas outside the message phases.
func (c *client) sendStanzas(s string, k uint32) error {
	if c.sm != nil && c.smSent(k) {
		s += smRequest
	}
	return c.send(s)
}
