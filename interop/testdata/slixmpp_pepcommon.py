"""What the slixmpp PEP scenarios (slixmpp_pep_*.py, slixmpp_vcard.py)
share, on top of slixmpp_common.

PepAccount is an Account with slixmpp's PEP plugins (xep_0060, xep_0163
and, through it, xep_0115 entity capabilities) that records:

  - "events": every pubsub event it receives (from, node, item id, and the
    payload as the test needs it: avatar metadata ids, a nickname, OMEMO
    device ids, a bookmark, or the payload's tag);
  - "server_caps_queries": the disco#info queries the server sent it to
    learn its caps (the node asked), and "own_caps": the node and ver of
    its own caps (XEP-0115) when it sent initial presence, with the
    '+notify' features they stand for;
  - "server_caps": whether slixmpp verified the caps the server lists in
    its stream features (xep_0115 asks the server's disco#info and checks
    the hash);
  - "presences": the photo hash (XEP-0153) of every available presence
    from another account.

befriend() subscribes two accounts to each other's presence through
slixmpp's automatic handshake (auto_authorize, auto_subscribe).
"""

import asyncio
import base64
import hashlib
import xml.etree.ElementTree as ET

from slixmpp import Iq
from slixmpp.exceptions import IqError, IqTimeout

import slixmpp_common as common

DISCO_INFO = "http://jabber.org/protocol/disco#info"
PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
# A node every PepAccount wants, published to by wait_interest only; its
# events are not recorded.
BARRIER = "urn:xmppd:interop:barrier"


class PepAccount(common.Account):
    """An Account with slixmpp's PEP plugins that records events.

    plugins are further slixmpp plugins to register (xep_0084, xep_0172,
    xep_0054, xep_0153, ...): those built on xep_0163 add their '+notify'
    features to the caps at bind, as a slixmpp client does.
    """

    def __init__(self, name, jid, password, host, port, domain, plugins=(), interests=()):
        super().__init__(name, jid, password, "SCRAM-SHA-256", host, port, domain)
        for p in ("xep_0004", "xep_0060", "xep_0115", "xep_0163") + tuple(plugins):
            self.register_plugin(p)
        self._interests = list(interests) + [BARRIER]
        self.barriers = 0  # barrier events received
        self.record["extra"] = {
            "events": [],
            "server_caps_queries": [],
            "own_caps": None,
            "server_caps": None,
            "presences": [],
        }
        self.extra = self.record["extra"]
        self.changed = asyncio.Event()
        self._seen_events = []
        self.add_event_handler("pubsub_publish", self._on_publish)
        self.add_event_handler("pubsub_retract", self._on_retract)
        self.add_event_handler("presence_available", self._on_available)
        self.add_filter("in", self._filter_in)

    def _note(self):
        self.changed.set()

    async def _on_session_start(self, event):
        # Interests beyond the plugins' (OMEMO, bookmarks), then caps
        # computed once from every feature before the initial presence
        # carries them: register_pep updates them in the background, and
        # the presence must not race it.
        if self._interests:
            for ns in self._interests:
                self["xep_0030"].add_feature(ns + "+notify")
        await self["xep_0115"].update_caps(broadcast=False)
        # As clients do (RFC 6121 §2.2), the roster before initial
        # presence: only then does the server push roster changes here.
        await self.get_roster(timeout=common.STEP_TIMEOUT)
        ver = await self["xep_0115"].get_verstring(self.boundjid.full)
        info = await self["xep_0030"].get_info(None, local=True)
        if isinstance(info, Iq):
            info = info["disco_info"]
        feats = info["features"]
        self.extra["own_caps"] = {
            "node": self["xep_0115"].caps_node,
            "ver": ver,
            "notify": sorted(f for f in feats if f.endswith("+notify")),
        }
        await super()._on_session_start(event)
        # slixmpp checked the server's stream caps (XEP-0115 §6.3) by now
        # or is about to: wait for its verdict.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + common.STEP_TIMEOUT
        domain = self.boundjid.domain
        while loop.time() < deadline:
            ver = await self["xep_0115"].get_verstring(domain)
            if ver:
                self.extra["server_caps"] = {"ver": ver, "verified": True}
                break
            await asyncio.sleep(0.05)
        else:
            self.extra["server_caps"] = {"ver": None, "verified": False}

    def _filter_in(self, stanza):
        x = stanza.xml
        if x.tag == "{%s}iq" % self.default_ns and x.get("type") == "get":
            q = x.find("{%s}query" % DISCO_INFO)
            if q is not None and x.get("from") in (None, "", self.boundjid.domain):
                self.extra["server_caps_queries"].append({"from": x.get("from") or "", "node": q.get("node") or ""})
                self._note()
        return stanza

    # slixmpp raises pubsub_publish once per item while it iterates over
    # the items itself (ElementBase iteration state is per object): the
    # handlers read the XML, not the stanza objects, so as not to reset
    # that iteration. Each event message is recorded once, by its XML.
    def _on_publish(self, msg):
        self._record_event(msg)

    def _on_retract(self, msg):
        self._record_event(msg)

    def _record_event(self, msg):
        if any(m is msg.xml for m in self._seen_events):
            return
        self._seen_events.append(msg.xml)
        items = msg.xml.find("{%s}event/{%s}items" % (PUBSUB_EVENT, PUBSUB_EVENT))
        if items is None:
            return
        node = items.get("node")
        if node == BARRIER:
            self.barriers += 1
            self._note()
            return
        for item in items:
            e = {"from": str(msg["from"]), "type": msg["type"], "node": node, "id": item.get("id")}
            if item.tag == "{%s}retract" % PUBSUB_EVENT:
                e["retract"] = item.get("id")
            else:
                e["payload"] = summarise(item)
            self.extra["events"].append(e)
        self._note()

    def _on_available(self, pres):
        if pres["from"].bare == self.boundjid.bare:
            return
        up = pres.xml.find("{vcard-temp:x:update}x")
        photo = None
        if up is not None:
            p = up.find("{vcard-temp:x:update}photo")
            photo = None if p is None else (p.text or "")
        self.extra["presences"].append({"from": str(pres["from"]), "photo": photo})
        self._note()

    def events(self, node, frm=None):
        return [e for e in self.extra["events"]
                if e["node"] == node and (frm is None or e["from"] == frm)]

    async def until(self, what, cond):
        """Waits up to STEP_TIMEOUT for cond() to hold, checked at each
        change recorded and every 50 ms (slixmpp's roster changes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + common.STEP_TIMEOUT
        while not cond():
            left = deadline - loop.time()
            if left <= 0:
                raise common.ScenarioError("%s: %s not seen within %ss" % (self.name, what, common.STEP_TIMEOUT))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.05))
            except asyncio.TimeoutError:
                pass

    async def sync(self):
        """A ping of the server answered: what it sent before has arrived."""
        await self["xep_0199"].send_ping(self.boundjid.domain, timeout=common.STEP_TIMEOUT)


def summarise(item_xml):
    """The payload of a pubsub <item/> as the tests compare it."""
    children = list(item_xml)
    if not children:
        return {"tag": None}
    p = children[0]
    out = {"tag": p.tag}
    if p.tag == "{urn:xmpp:avatar:metadata}metadata":
        out["info"] = [{"id": i.get("id"), "bytes": i.get("bytes"), "type": i.get("type")}
                       for i in p.findall("{urn:xmpp:avatar:metadata}info")]
    elif p.tag == "{urn:xmpp:avatar:data}data":
        out["sha1"] = hashlib.sha1(base64.b64decode("".join((p.text or "").split()))).hexdigest()
    elif p.tag == "{http://jabber.org/protocol/nick}nick":
        out["nick"] = p.text or ""
    elif p.tag in ("{eu.siacs.conversations.axolotl}list", "{urn:xmpp:omemo:2}devices"):
        out["devices"] = sorted(d.get("id") for d in p if d.tag.endswith("}device"))
    elif p.tag == "{eu.siacs.conversations.axolotl}bundle":
        spk = p.find("{eu.siacs.conversations.axolotl}signedPreKeyPublic")
        out["signed_pre_key_id"] = None if spk is None else spk.get("signedPreKeyId")
        out["pre_keys"] = len(p.findall("{eu.siacs.conversations.axolotl}prekeys/{eu.siacs.conversations.axolotl}preKeyPublic"))
    else:
        out["xml"] = ET.tostring(p, encoding="unicode")
    return out


def iq_error(e):
    """What a client sees of an error answer: type, condition and the
    pubsub#errors condition, read from the XML (slixmpp's own pubsub error
    plugin does not know precondition-not-met), and slixmpp's reading."""
    if isinstance(e, IqTimeout):
        return {"timeout": True}
    err = e.iq.xml.find("{jabber:client}error")
    out = {"type": "error", "error_type": e.iq["error"]["type"], "condition": e.iq["error"]["condition"], "app": None,
           "slixmpp_pubsub_condition": e.iq["error"]["pubsub"]["condition"]}
    if err is not None:
        for c in err:
            if c.tag.startswith("{%s}" % PUBSUB_ERRORS):
                out["app"] = c.tag.split("}", 1)[1]
    return out


async def befriend(a, b):
    """a and b subscribe to each other's presence: a asks, b's slixmpp
    approves and asks back (auto_authorize, auto_subscribe), a's approves.
    Waits until each has the other with subscription both and has seen the
    other's available presence."""
    for acc in (a, b):
        acc.auto_authorize = True
        acc.auto_subscribe = True
    a.send_presence_subscription(pto=b.boundjid.bare)

    def both(x, y):
        return lambda: (y.boundjid.bare in x.client_roster and
                        x.client_roster[y.boundjid.bare]["subscription"] == "both" and
                        any(p["from"] == y.boundjid.full for p in x.extra["presences"]))

    await a.until("subscription both with %s" % b.name, both(a, b))
    await b.until("subscription both with %s" % a.name, both(b, a))


async def wait_interest(publisher, *watchers):
    """Waits until the server knows the caps of each watcher (an account
    of publisher's or a contact): publisher publishes to the barrier node,
    again every 200 ms, until each watcher has received an event of it.
    The server learns a client's caps from its answer to a disco#info
    query (or its cache) some time after the client's presence; an event
    published before is not sent to that client, and nodes such as
    XEP-0402's are not sent again later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + common.STEP_TIMEOUT
    n = 0
    while not all(w.barriers for w in watchers):
        if loop.time() > deadline:
            raise common.ScenarioError("the server did not learn the caps of %s within %ss" % (
                [w.name for w in watchers if not w.barriers], common.STEP_TIMEOUT))
        n += 1
        await publisher["xep_0060"].publish(None, BARRIER, id="b%d" % n,
                                            payload=ET.Element("{%s}barrier" % BARRIER),
                                            timeout=common.STEP_TIMEOUT)
        end = loop.time() + 0.2
        while not all(w.barriers for w in watchers) and loop.time() < end:
            await asyncio.sleep(0.02)


def publish_options(acc, **fields):
    """A publish-options form (XEP-0060 §7.1.5) with pubsub#<name> fields."""
    form = acc["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for k, v in fields.items():
        form.add_field(var="pubsub#" + k, value=v)
    return form


async def attempt(coro):
    """("result", the answer) or ("error", iq_error(...))."""
    try:
        return "result", await coro
    except (IqError, IqTimeout) as e:
        return "error", iq_error(e)
