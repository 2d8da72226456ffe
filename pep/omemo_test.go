package pep_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"xmppd.dev/xmppd/internal/xmpptest"
)

// key returns a deterministic base64 key of n bytes, as OMEMO bundles
// carry (33-byte Curve25519 public keys, 64-byte signatures).
func key(seed string, n int) string {
	var b []byte
	for i := 0; len(b) < n; i++ {
		h := sha256.Sum256([]byte(fmt.Sprint(seed, i)))
		b = append(b, h[:]...)
	}
	return base64.StdEncoding.EncodeToString(b[:n])
}

// legacyBundle is a bundle as Conversations publishes it
// (eu.siacs.conversations.axolotl, XEP-0384 0.3), with 100 pre-keys.
func legacyBundle(device string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>%s</signedPreKeyPublic>"+
		"<signedPreKeySignature>%s</signedPreKeySignature><identityKey>%s</identityKey><prekeys>",
		key(device+"spk", 33), key(device+"sig", 64), key(device+"ik", 33))
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "<preKeyPublic preKeyId='%d'>%s</preKeyPublic>", i, key(fmt.Sprint(device, "pk", i), 33))
	}
	b.WriteString("</prekeys></bundle>")
	return b.String()
}

// bundle2 is an OMEMO 2 bundle (urn:xmpp:omemo:2, XEP-0384 0.8), as Dino
// and Gajim publish it.
func bundle2(device string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>%s</spk><spks>%s</spks><ik>%s</ik><prekeys>",
		key(device+"spk", 32), key(device+"sig", 64), key(device+"ik", 32))
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "<pk id='%d'>%s</pk>", i, key(fmt.Sprint(device, "pk", i), 32))
	}
	b.WriteString("</prekeys></bundle>")
	return b.String()
}

// TestOMEMO: alice's devices publish OMEMO device lists and bundles the
// way clients do — with publish-options access_model=open; a device list
// an older client left with the default access model is refused with
// precondition-not-met, reconfigured and published again (Conversations'
// and Gajim's recovery) — and bob, who is not in her roster, fetches them
// as a client starting an encrypted chat does, before and after a restart,
// on both engines.
func TestOMEMO(t *testing.T) {
	engines(t, func(t *testing.T, opts ...xmpptest.Option) {
		srv := xmpptest.Start(t, opts...)
		addUsers(t, srv, "alice", "bob")
		a := login(t, srv, "alice", "phone").online()
		open := []string{"pubsub#access_model", "open"}

		// Legacy OMEMO (Conversations). An old client published the device
		// list with the default (presence) access model.
		const legacyList = "eu.siacs.conversations.axolotl.devicelist"
		a.ok("set", "", publish(legacyList, "current", "<list xmlns='eu.siacs.conversations.axolotl'><device id='1001'/></list>"))
		list := "<list xmlns='eu.siacs.conversations.axolotl'><device id='1001'/><device id='2002'/></list>"
		a.fails("set", "", publish(legacyList, "current", list, open...), "conflict", "precondition-not-met")
		a.ok("set", "", owner(options("http://jabber.org/protocol/pubsub#node_config", "configure node='"+legacyList+"'", open...)))
		a.ok("set", "", publish(legacyList, "current", list, open...))
		a.ok("set", "", publish("eu.siacs.conversations.axolotl.bundles:2002", "current", legacyBundle("2002"), open...))

		// OMEMO 2 (Dino, Gajim): one device list, one bundles node with an
		// item per device and max_items max.
		devices := "<devices xmlns='urn:xmpp:omemo:2'><device id='31415' label='Gajim on laptop'/><device id='27182' label='Dino'/></devices>"
		a.ok("set", "", publish("urn:xmpp:omemo:2:devices", "current", devices, open...))
		bundleOpts := []string{"pubsub#max_items", "max", "pubsub#access_model", "open"}
		a.ok("set", "", publish("urn:xmpp:omemo:2:bundles", "31415", bundle2("31415"), bundleOpts...))
		a.ok("set", "", publish("urn:xmpp:omemo:2:bundles", "27182", bundle2("27182"), bundleOpts...))
		if n := len(bundle2("31415")); n < 5000 {
			t.Fatalf("a realistic bundle is 5–10 KB; this one is %d bytes", n)
		}

		fetch := func(srv *xmpptest.Server) {
			t.Helper()
			bob := login(t, srv, "bob", "laptop").online()
			got := bob.ok("get", "alice@localhost", items(legacyList, ""))
			if want := "<pubsub xmlns='" + nsPub + "'><items node='" + legacyList + "'><item id='current'>" +
				"<list xmlns='eu.siacs.conversations.axolotl'><device id='1001'></device><device id='2002'></device></list></item></items></pubsub>"; got.Inner != want {
				t.Fatalf("legacy device list: %s, want %s", got.Inner, want)
			}
			got = bob.ok("get", "alice@localhost", items("eu.siacs.conversations.axolotl.bundles:2002", " max_items='1'"))
			if !got.Contains(key("2002pk100", 33)) || !got.Contains("<identityKey>"+key("2002ik", 33)+"</identityKey>") {
				t.Fatalf("legacy bundle: %s", got.Inner)
			}
			got = bob.ok("get", "alice@localhost", items("urn:xmpp:omemo:2:devices", ""))
			if !got.Contains("<device id='31415' label='Gajim on laptop'></device><device id='27182' label='Dino'></device>") {
				t.Fatalf("OMEMO 2 device list: %s", got.Inner)
			}
			for _, dev := range []string{"31415", "27182"} {
				got = bob.ok("get", "alice@localhost", items("urn:xmpp:omemo:2:bundles", "", dev))
				if strings.Count(got.Inner, "<item ") != 1 || !got.Contains("<item id='"+dev+"'><bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>"+key(dev+"spk", 32)) ||
					!got.Contains("<pk id='100'>"+key(dev+"pk100", 32)+"</pk></prekeys></bundle></item>") {
					t.Fatalf("OMEMO 2 bundle %s: %.300s", dev, got.Inner)
				}
			}
			// The account advertises what the clients check first.
			info := bob.ok("get", "alice@localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
			if !info.Contains("<feature var='http://jabber.org/protocol/pubsub#publish-options'>") {
				t.Fatalf("disco#info: %s", info.Inner)
			}
			bob.Close()
		}
		fetch(srv)
		cfg := srv.Config
		a.Close()
		srv.Stop(t)
		srv = xmpptest.StartConfig(t, cfg)
		fetch(srv)
		// After the restart a device publishes again with the same options.
		a = login(t, srv, "alice", "phone")
		a.ok("set", "", publish("urn:xmpp:omemo:2:bundles", "31415", bundle2("31415b"), bundleOpts...))
	})
}
