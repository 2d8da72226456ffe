"""Scenario "roster": two accounts fetch their rosters, then subscribe to
each other's presence up to subscription "both" (RFC 6121 §3), see each
other's presence, and alice sees bob leave.

Both log in over STARTTLS (alice with --alice-mech, bob with --bob-mech)
and, as real clients do, fetch the roster before sending initial presence
(RFC 6121 §2.2). slixmpp's own subscription handling (auto_authorize,
auto_subscribe) is off: each stanza of the handshake is sent here, one step
at a time, and each step waits (at most 20 s) for what it must cause:

  1. alice sends subscribe to bob's bare JID; bob receives it, alice gets a
     roster push (none, ask=subscribe).
  2. bob approves (subscribed); alice receives it, both get roster pushes
     (alice: to, bob: from), and alice receives bob's available presence.
  3. bob subscribes back (subscribe); alice receives it; bob gets a push
     (from, ask=subscribe).
  4. alice approves (subscribed); bob receives it, both get pushes (both),
     and bob receives alice's available presence.
  5. Each fetches the roster again: with the version it holds from the
     last push (XEP-0237: nothing changed, an empty result), then with an
     empty version (the whole roster).
  6. bob disconnects without sending unavailable presence himself; alice
     receives bob's unavailable presence from the server.

Prints one JSON line (see slixmpp_common.run) with, for each account, the
roster fetches, the roster pushes, every presence received (from, to,
type, in order), slixmpp's own roster item for the other account after
step 4, and which step the scenario reached; it writes the same records to
--record-file too, since the shared Go result type only knows the login
fields. The Go test TestSlixmppRoster checks them.
"""

import asyncio
import json
import sys

sys.dont_write_bytecode = True

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

import slixmpp_common as common


def roster_items(iq):
    """The items of a roster result or push, as {jid: {subscription, ask,
    name, groups}}."""
    out = {}
    for jid, item in iq["roster"]["items"].items():
        out[str(jid)] = {
            "subscription": item["subscription"],
            "ask": item["ask"],
            "name": item["name"],
            "groups": sorted(item["groups"]),
        }
    return out


class RosterAccount(common.Account):
    """An Account that fetches the roster before its initial presence and
    records roster pushes and every presence it receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Explicit handshake: slixmpp answers nothing by itself (None: no
        # automatic approval or refusal; no automatic subscribe back).
        self.auto_authorize = None
        self.auto_subscribe = False
        self.record.update({
            "roster_gets": [],    # every roster fetch, in order
            "roster_pushes": [],  # every roster push, in order
            "presences": [],      # every presence received, in order
            "presence_events": [],  # slixmpp's presence_available/_unavailable events
            "client_roster": {},  # slixmpp's roster items after the handshake
            "step": "login",      # the last step this account reached
        })
        self.changed = asyncio.Event()
        # Whether each iq result carried a roster <query/>, as received:
        # slixmpp adds an empty one as soon as its handlers look at the
        # result (XEP-0237 §2.4: an unchanged roster is answered with an
        # empty result, no <query/>).
        self._result_query = {}
        self.add_filter("in", self._filter_in)
        self.add_event_handler("roster_update", self._on_roster_update)
        self.add_event_handler("presence", self._on_presence)
        for ev in ("presence_available", "presence_unavailable"):
            self.add_event_handler(ev, lambda pres, ev=ev: self._on_presence_event(ev, pres))

    def _filter_in(self, stanza):
        if stanza.xml.tag == "{%s}iq" % self.default_ns and stanza.xml.get("type") in ("result", "error"):
            q = stanza.xml.find("{jabber:iq:roster}query")
            self._result_query[stanza.xml.get("id")] = (q is not None, None if q is None else q.get("ver"))
        return stanza

    async def _on_session_start(self, event):
        # RFC 6121 §2.2: the roster first, then initial presence (which the
        # parent sends, followed by a ping).
        try:
            await self.fetch_roster("initial")
        except common.ScenarioError as e:
            self.record["roster_error"] = str(e)
        await super()._on_session_start(event)

    async def fetch_roster(self, label, ver=None):
        """A roster get through slixmpp's get_roster; ver, when given,
        replaces the version slixmpp would send. Records the result."""
        if ver is not None:
            self.client_roster.version = ver
        sent_ver = self.client_roster.version if "rosterver" in self.features else None
        try:
            iq = await self.get_roster(timeout=common.STEP_TIMEOUT)
        except IqError as e:
            raise common.ScenarioError("%s: roster get (%s) refused: %s" % (self.name, label, e.iq["error"]["condition"]))
        except IqTimeout:
            raise common.ScenarioError("%s: roster get (%s) unanswered within %ss" % (self.name, label, common.STEP_TIMEOUT))
        has_query, ver_got = self._result_query.get(iq["id"], (False, None))
        entry = {
            "label": label,
            "sent_ver": sent_ver,
            "type": iq["type"],
            "has_query": has_query,
            "ver": ver_got,
            "items": roster_items(iq) if has_query else {},
        }
        self.record["roster_gets"].append(entry)
        self.changed.set()
        return entry

    def _on_roster_update(self, iq):
        if iq["type"] != "set":
            return  # a get's result: recorded by fetch_roster
        self.record["roster_pushes"].append({
            "from": str(iq["from"]),
            "id": iq["id"],
            "ver": iq["roster"]["ver"],
            "items": roster_items(iq),
        })
        self.changed.set()

    def _on_presence(self, pres):
        self.record["presences"].append({
            "from": str(pres["from"]),
            "to": str(pres["to"]),
            "type": pres["type"],  # "available" for no type attribute
        })
        self.changed.set()

    def _on_presence_event(self, event, pres):
        self.record["presence_events"].append({"event": event, "from": str(pres["from"])})

    def pushed(self, contact, subscription, ask=""):
        """Whether a roster push set contact to subscription (and ask)."""
        for p in self.record["roster_pushes"]:
            it = p["items"].get(contact)
            if it and it["subscription"] == subscription and it["ask"] == ask:
                return True
        return False

    def got_presence(self, typ, frm):
        return any(p["type"] == typ and p["from"] == frm for p in self.record["presences"])

    async def until(self, what, cond):
        """Waits up to STEP_TIMEOUT for cond() to hold."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + common.STEP_TIMEOUT
        while not cond():
            left = deadline - loop.time()
            if left <= 0:
                raise common.ScenarioError("%s: %s not seen within %ss" % (self.name, what, common.STEP_TIMEOUT))
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def snapshot(self, contact):
        """slixmpp's own roster item for contact."""
        it = self.client_roster[contact]
        return {
            "subscription": it["subscription"],
            "to": it["to"],
            "from": it["from"],
            "pending_out": it["pending_out"],
            "pending_in": it["pending_in"],
        }


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
        p.add_argument("--%s-mech" % who, required=True)
    p.add_argument("--record-file", required=True,
                   help="where to write the records again, with the roster fields the shared result type lacks")
    a = p.parse_args()
    accounts = {}

    async def scenario():
        alice = RosterAccount("alice", a.alice_jid, a.alice_password, a.alice_mech, a.host, a.port, a.domain)
        bob = RosterAccount("bob", a.bob_jid, a.bob_password, a.bob_mech, a.host, a.port, a.domain)
        accounts["alice"] = alice
        accounts["bob"] = bob
        alice_bare = slixmpp.JID(a.alice_jid).bare
        bob_bare = slixmpp.JID(a.bob_jid).bare

        def step(name):
            alice.record["step"] = bob.record["step"] = name

        alice.start()
        bob.start()
        await alice.wait_session()
        await bob.wait_session()
        for acc in (alice, bob):
            if "roster_error" in acc.record:
                raise common.ScenarioError(acc.record["roster_error"])
        alice_full, bob_full = alice.boundjid.full, bob.boundjid.full

        step("1 alice subscribe")
        alice.send_presence_subscription(pto=bob_bare)
        await bob.until("subscribe from alice", lambda: bob.got_presence("subscribe", alice_bare))
        await alice.until("push none+ask", lambda: alice.pushed(bob_bare, "none", "subscribe"))

        step("2 bob subscribed")
        bob.send_presence(pto=alice_bare, ptype="subscribed")
        await alice.until("subscribed from bob", lambda: alice.got_presence("subscribed", bob_bare))
        await alice.until("push to", lambda: alice.pushed(bob_bare, "to"))
        await bob.until("push from", lambda: bob.pushed(alice_bare, "from"))
        await alice.until("bob's available presence", lambda: alice.got_presence("available", bob_full))

        step("3 bob subscribe")
        bob.send_presence_subscription(pto=alice_bare)
        await alice.until("subscribe from bob", lambda: alice.got_presence("subscribe", bob_bare))
        await bob.until("push from+ask", lambda: bob.pushed(alice_bare, "from", "subscribe"))

        step("4 alice subscribed")
        alice.send_presence(pto=bob_bare, ptype="subscribed")
        await bob.until("subscribed from alice", lambda: bob.got_presence("subscribed", alice_bare))
        await bob.until("push both", lambda: bob.pushed(alice_bare, "both"))
        await alice.until("push both", lambda: alice.pushed(bob_bare, "both"))
        await bob.until("alice's available presence", lambda: bob.got_presence("available", alice_full))

        step("5 roster fetches")
        alice.record["client_roster"] = {bob_bare: alice.snapshot(bob_bare)}
        bob.record["client_roster"] = {alice_bare: bob.snapshot(alice_bare)}
        for acc in (alice, bob):
            await acc.fetch_roster("versioned")    # the version of the last push
            await acc.fetch_roster("full", ver="")  # everything

        step("6 bob leaves")
        await bob.close()
        await alice.until("bob's unavailable presence", lambda: alice.got_presence("unavailable", bob_full))
        step("done")

    try:
        common.run(scenario, accounts)
    finally:
        # common.run printed the result line and exits: the same records
        # again, whole, for the Go test.
        with open(a.record_file, "w", encoding="utf-8") as f:
            json.dump({n: acc.record for n, acc in accounts.items()}, f, sort_keys=True)


if __name__ == "__main__":
    main()
