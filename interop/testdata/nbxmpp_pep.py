"""Scenario "nbxmpp pep": Gajim's XMPP library (Debian's python3-nbxmpp)
publishing and receiving PEP events, and storing bookmarks as Gajim does.

alice and bob are in each other's roster (the Go test makes them so).
Each logs in as Gajim does: its features, with the '+notify' of the PEP
nodes it wants, given to nbxmpp's EntityCaps module (set_caps), which
answers the server's disco#info for node#ver, and the caps sent in the
initial presence (the Presence module's caps=).

  1. alice sets her nickname with nbxmpp's Nickname module, private
     (access_model presence); bob receives the event.
  2. alice makes it public (set_nickname(public=True)): the publish-options
     conflict with the node, the server answers precondition-not-met, and
     nbxmpp reconfigures the node and publishes again, as it does for
     Gajim; bob receives the new nickname; the node's access model, read
     back through nbxmpp, is open.
  3. alice sets an avatar with the UserAvatar module (public); bob
     receives the metadata event and fetches the data.
  4. alice asks disco#info of her own account (Gajim picks its bookmarks
     module from it) and stores a bookmark with the NativeBookmarks module
     (XEP-0402); she receives its event, bob receives nothing of it.
  5. A second session of alice ("gajim2") reads the bookmarks through each
     module: PrivateBookmarks (XEP-0049 storage:bookmarks), PEPBookmarks
     (XEP-0048's PEP node) and NativeBookmarks; then stores two bookmarks
     through PrivateBookmarks, and the first session receives the XEP-0402
     event of the new one; it then reads them through NativeBookmarks.
  6. alice publishes her OMEMO device list and bundle with nbxmpp's OMEMO
     module (public, as Gajim does); bob receives the device list event;
     carol, a stranger, fetches both.

Prints one JSON line: {"error": null or why it stopped, "accounts":
{name: {...what it saw...}}, "results": {...}}. Every wait is bounded;
the whole run stops after 45 seconds.
"""

import argparse
import json
import logging
import os
import sys
import traceback

sys.dont_write_bytecode = True

from gi.repository import GLib, Gio  # noqa: E402
from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.modules.user_avatar import Avatar  # noqa: E402
from nbxmpp.namespaces import Namespace  # noqa: E402
from nbxmpp.protocol import JID  # noqa: E402
from nbxmpp.structs import BookmarkData, DiscoIdentity, OMEMOBundle, StanzaHandler  # noqa: E402

STEP_TIMEOUT = 20
p = argparse.ArgumentParser(description=__doc__)
for a in ("host", "port", "domain", "password", "room", "room2"):
    p.add_argument("--" + a, required=True)
args = p.parse_args()

logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if os.environ.get("INTEROP_DEBUG") else logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

loop = GLib.MainLoop()
out = {"error": None, "accounts": {}, "results": {}}
AVATAR = bytes(range(256)) + b"nbxmpp avatar"
CAPS_URI = "https://gajim.org"
FEATURES = [
    Namespace.DISCO_INFO, Namespace.CAPS, Namespace.NICK, Namespace.NICK + "+notify",
    Namespace.AVATAR_METADATA + "+notify", Namespace.BOOKMARKS_1 + "+notify",
    Namespace.MOOD + "+notify", Namespace.OMEMO_TEMP_DL + "+notify", "urn:xmpp:ping",
]


class Account:
    """One nbxmpp Client and what it saw."""

    def __init__(self, name, user, resource):
        self.name = name
        self.rec = {"jid": None, "events": [], "caps_queries": [], "presences": [], "caps": None}
        out["accounts"][name] = self.rec
        c = Client(log_context=name)
        c.set_domain(args.domain)
        c.set_username(user)
        c.set_resource(resource)
        c.set_password(args.password)
        c.set_custom_host("%s:%s" % (args.host, args.port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
        c.set_ignored_tls_errors({Gio.TlsCertificateFlags.UNKNOWN_CA, Gio.TlsCertificateFlags.BAD_IDENTITY})
        c.subscribe("connection-failed", self._failed)
        c.subscribe("connected", self._connected)
        c.register_handler(StanzaHandler(name="message", callback=self._event, ns=Namespace.PUBSUB_EVENT, priority=30))
        # Before EntityCaps's own handler (20), which answers and stops.
        c.register_handler(StanzaHandler(name="iq", callback=self._disco, typ="get", ns=Namespace.DISCO_INFO, priority=10))
        c.register_handler(StanzaHandler(name="presence", callback=self._presence, priority=60))
        self.client = c
        self.connected = False

    def _failed(self, client, signal_name, *a, **kw):
        fail("%s: %s: %s" % (self.name, signal_name, client.get_error()))

    def _connected(self, client, *a, **kw):
        self.rec["jid"] = str(client.get_bound_jid())
        # As Gajim does: its features (with +notify) to EntityCaps, which
        # computes the ver and answers disco#info for node#ver, and the
        # caps in every available presence.
        ec = client.get_module("EntityCaps")
        ec.set_caps([DiscoIdentity(category="client", type="pc", name="Gajim")], FEATURES, CAPS_URI)
        caps = ec.caps
        self.rec["caps"] = {"node": caps.node, "ver": caps.ver}
        client.get_module("BasePresence").send(caps={"hash": caps.hash, "node": caps.node, "ver": caps.ver})
        self.connected = True

    def _event(self, client, stanza, properties):
        ev = properties.pubsub_event
        if ev is None:
            return
        e = {"from": str(properties.jid), "node": ev.node, "id": ev.id, "type": stanza.getType() or ""}
        d = ev.data
        if ev.node == Namespace.NICK:
            e["nick"] = d
        elif ev.node == Namespace.AVATAR_METADATA and d is not None:
            e["avatar_shas"] = d.avatar_shas
        elif ev.node == Namespace.BOOKMARKS_1 and d is not None:
            e["bookmark"] = bookmark(d)
        elif ev.node == Namespace.OMEMO_TEMP_DL:
            e["devices"] = d
        self.rec["events"].append(e)

    def _disco(self, client, stanza, properties):
        self.rec["caps_queries"].append({"from": str(stanza.getFrom() or ""), "node": stanza.getQuerynode() or ""})

    def _presence(self, client, stanza, properties):
        self.rec["presences"].append({"from": str(stanza.getFrom()), "type": stanza.getType() or "available"})

    def events(self, node):
        return [e for e in self.rec["events"] if e["node"] == node]


def bookmark(b):
    return {"jid": str(b.jid), "name": b.name, "nick": b.nick, "autojoin": b.autojoin}


def fail(why):
    if out["error"] is None:
        out["error"] = why
    loop.quit()


class Flow:
    """Runs a generator that yields nbxmpp tasks (resumed with the task's
    result, or the exception thrown into it) or ("until", what, cond)
    (resumed once cond() holds, checked every 20 ms, failing after
    STEP_TIMEOUT)."""

    def __init__(self, gen):
        self.gen = gen
        GLib.idle_add(self._step, None, None)

    def _step(self, value, exc):
        try:
            req = self.gen.throw(exc) if exc is not None else self.gen.send(value)
        except StopIteration:
            loop.quit()
            return False
        except Exception:
            fail(traceback.format_exc())
            return False
        if isinstance(req, tuple) and req[0] == "until":
            self._until(req[1], req[2])
        elif req.state.is_finished or req.state.is_cancelled:
            self._done(req)  # finished at once (no request needed)
        else:
            req.add_done_callback(self._done, weak=False)
        return False

    def _done(self, task):
        try:
            v = task.finish()
        except Exception as e:  # an error answer: the generator decides
            GLib.idle_add(self._step, None, e)
            return
        GLib.idle_add(self._step, v, None)

    def _until(self, what, cond):
        deadline = GLib.get_monotonic_time() + STEP_TIMEOUT * 1_000_000

        def check():
            try:
                ok = cond()
            except Exception:
                fail(traceback.format_exc())
                return False
            if ok:
                self._step(None, None)
                return False
            if GLib.get_monotonic_time() > deadline:
                fail("%s not seen within %ss" % (what, STEP_TIMEOUT))
                return False
            return True

        GLib.timeout_add(20, check)


def error_of(e):
    """What an error answer said: condition and app condition."""
    return {"type": "error", "condition": getattr(e, "condition", None),
            "app_condition": getattr(e, "app_condition", None), "text": str(e)}


def scenario():
    r = out["results"]
    alice = Account("alice", "alice", "gajim")
    bob = Account("bob", "bob", "gajim")
    alice.client.connect()
    bob.client.connect()
    yield ("until", "both connected", lambda: alice.connected and bob.connected)
    alice_bare = alice.rec["jid"].split("/")[0]
    yield ("until", "each other's presence", lambda: any(
        pr["from"].startswith(alice_bare + "/") for pr in bob.rec["presences"]) and any(
        pr["from"].startswith("bob@") for pr in alice.rec["presences"]))
    # The server asks the caps of the ver it has not seen (once: both
    # clients announce the same) and then knows bob wants these nodes.
    yield ("until", "the server's caps query", lambda: alice.rec["caps_queries"] or bob.rec["caps_queries"])
    nick_mod = alice.client.get_module("Nickname")

    # 1
    yield nick_mod.set_nickname("Alice (Gajim)", public=False)
    yield ("until", "bob: the nickname event", lambda: bob.events(Namespace.NICK))

    # 2
    try:
        yield nick_mod.set_nickname("Alice ✓", public=True)
        r["public_nick"] = {"type": "result"}
    except Exception as e:
        r["public_nick"] = error_of(e)
    yield ("until", "bob: the second nickname event", lambda: len(bob.events(Namespace.NICK)) >= 2)
    r["nick_access_model"] = yield alice.client.get_module("PubSub").get_access_model(Namespace.NICK)

    # 3
    av = Avatar()
    av.add_image_source(AVATAR, "image/png", 16, 16)
    yield alice.client.get_module("UserAvatar").set_avatar(av, public=True)
    yield ("until", "bob: the avatar metadata event", lambda: bob.events(Namespace.AVATAR_METADATA))
    sha = av.metadata.default
    data = yield bob.client.get_module("UserAvatar").request_avatar_data(sha, jid=JID.from_string(alice_bare))
    r["avatar"] = {"sha": sha, "fetched_sha": data.sha if data else None, "same_bytes": bool(data and data.data == AVATAR)}

    # 4
    info = yield alice.client.get_module("Discovery").disco_info(JID.from_string(alice_bare))
    r["account_features"] = sorted(f for f in info.features if "bookmarks" in f or "pubsub#publish-options" in f)
    room = BookmarkData(jid=JID.from_string(args.room), name="The Room", nick="Al", autojoin=True)
    yield alice.client.get_module("NativeBookmarks").store_bookmarks([room])
    yield ("until", "alice: the bookmark event", lambda: alice.events(Namespace.BOOKMARKS_1))

    # 5
    alice2 = Account("alice2", "alice", "gajim2")
    alice2.client.connect()
    yield ("until", "the second session", lambda: alice2.connected)
    for mod in ("PrivateBookmarks", "PEPBookmarks", "NativeBookmarks"):
        try:
            bms = yield alice2.client.get_module(mod).request_bookmarks()
            r["read_" + mod] = [bookmark(b) for b in bms]
        except Exception as e:
            r["read_" + mod] = error_of(e)
    room2 = BookmarkData(jid=JID.from_string(args.room2), name="Second Room", autojoin=False)
    yield alice2.client.get_module("PrivateBookmarks").store_bookmarks([room, room2])
    yield ("until", "alice: the event of the bookmark stored in private XML",
           lambda: any(e.get("bookmark", {}).get("jid") == args.room2 for e in alice.events(Namespace.BOOKMARKS_1)))
    bms = yield alice.client.get_module("NativeBookmarks").request_bookmarks()
    r["native_after_private"] = sorted((bookmark(b) for b in bms), key=lambda b: b["jid"])
    # 6
    omemo = alice.client.get_module("OMEMO")
    yield omemo.set_devicelist([1234], public=True)
    spk = {"id": "1", "key": b"signed pre-key"}
    otpks = [{"id": str(i), "key": b"pre-key %d" % i} for i in range(1, 101)]
    yield omemo.set_bundle(OMEMOBundle(spk=spk, spk_signature=b"signature", ik=b"identity key", otpks=otpks), 1234, public=True)
    yield ("until", "bob: the device list event", lambda: bob.events(Namespace.OMEMO_TEMP_DL))
    carol = Account("carol", "carol", "gajim")
    carol.client.connect()
    yield ("until", "carol connected", lambda: carol.connected)
    try:
        r["carol_devicelist"] = yield carol.client.get_module("OMEMO").request_devicelist(jid=JID.from_string(alice_bare))
    except Exception as e:
        r["carol_devicelist"] = error_of(e)
    try:
        b = yield carol.client.get_module("OMEMO").request_bundle(JID.from_string(alice_bare), 1234)
        r["carol_bundle"] = {"spk_id": b.spk["id"], "ik": b.ik.decode(), "prekeys": len(b.otpks)}
    except Exception as e:
        r["carol_bundle"] = error_of(e)

    # What bob saw is complete once a ping of his is answered.
    yield bob.client.get_module("Ping").ping(JID.from_string(args.domain))


flow = Flow(scenario())
GLib.timeout_add_seconds(45, lambda: fail("scenario timed out") or False)
loop.run()
print(json.dumps(out, sort_keys=True))
sys.exit(0 if out["error"] is None else 1)
