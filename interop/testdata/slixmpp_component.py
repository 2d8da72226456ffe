"""Scenario "component": slixmpp's ComponentXMPP (XEP-0114) connects to
the server's component port as --component-jid with --secret; alice logs
in over STARTTLS and sends --alice-body to echo@<component domain>; the
component answers every message with a body with "echo: " and the body,
from the JID it was sent to, to the JID it came from; alice waits for the
answer.

Prints one JSON line (see slixmpp_common.run); the Go test
TestSlixmppComponent checks it. The component's record has the keys of an
account's that apply: jid, session_started (the handshake was accepted),
stream_errors, received, disconnected.
"""

import asyncio
import sys

sys.dont_write_bytecode = True

import slixmpp
import slixmpp_common as common


class Component(slixmpp.ComponentXMPP):
    """An echoing component that records what happens to it."""

    def __init__(self, jid, secret, host, port):
        super().__init__(jid, secret, host, port)
        self.name = "component"
        self._host, self._port = host, port
        self.record = {
            "jid": jid,
            "session_started": False,
            "stream_errors": [],
            "received": [],
            "disconnected": False,
        }
        self.session_started = asyncio.Event()
        self.disconnected_event = asyncio.Event()
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("stream_error", lambda err: self.record["stream_errors"].append(err["condition"]))
        self.add_event_handler("disconnected", self._on_disconnected)

    # The scenario gives the server's address: no DNS lookup.
    async def get_dns_records(self, domain, port=None):
        return [(self._host, self._host, self._port)]

    def _on_session_start(self, _event):
        self.record["session_started"] = True
        self.session_started.set()

    def _on_message(self, msg):
        self.record["received"].append({
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "type": msg["type"],
            "body": msg["body"],
            "id": msg["id"],
        })
        if msg["body"] and msg["type"] != "error":
            self.send_message(mto=msg["from"], mfrom=msg["to"], mbody="echo: " + msg["body"], mtype="chat")

    def _on_disconnected(self, _reason):
        self.record["disconnected"] = True
        self.disconnected_event.set()

    async def close(self):
        if self.transport is not None and not self.disconnected_event.is_set():
            self.disconnect(wait=2.0)
            try:
                await asyncio.wait_for(self.disconnected_event.wait(), 5)
            except asyncio.TimeoutError:
                pass


def main():
    p = common.base_args(__doc__)
    p.add_argument("--component-port", required=True, type=int)
    p.add_argument("--component-jid", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--alice-jid", required=True)
    p.add_argument("--alice-password", required=True)
    p.add_argument("--alice-body", required=True)
    a = p.parse_args()
    accounts = {}

    async def scenario():
        comp = Component(a.component_jid, a.secret, a.host, a.component_port)
        accounts["component"] = comp
        comp.connect()
        try:
            await asyncio.wait_for(comp.session_started.wait(), common.STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise common.ScenarioError("component: no handshake within %ss (stream_errors=%s)" % (
                common.STEP_TIMEOUT, comp.record["stream_errors"]))

        alice = common.Account("alice", a.alice_jid, a.alice_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["alice"] = alice
        alice.start()
        await alice.wait_session()
        alice.send_message(mto="echo@" + a.component_jid, mbody=a.alice_body, mtype="chat")
        await alice.next_message("the component's echo")

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
