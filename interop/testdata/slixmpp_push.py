"""Scenario "push": a XEP-0357 app server played by slixmpp's ComponentXMPP
(XEP-0114) on --component-jid, and bob on slixmpp with its XEP-0198 plugin.

Debian's slixmpp has no XEP-0357 plugin, so bob sends <enable/> (with a
publish-options form holding a secret, as Conversations does) as a raw
payload of an IQ built by slixmpp. Then bob's connection is aborted (no
</stream:stream>, no ack) and alice sends "while away" and "again": the
app server, parsing each publish with slixmpp's XEP-0060 stanzas, records
the node, the summary form's fields and the publish-options, and answers
with a result. bob resumes; alice sends "back" and then pings the server:
the app server must get nothing more.

Prints one JSON line (see slixmpp_common.run); the component's extra
holds the notifications, bob's the enable's answer and the stream
management events. The Go test TestSlixmppPush checks it.
"""

import asyncio
import sys
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

import slixmpp_common as common

NS_DATA = "jabber:x:data"


def form_fields(x):
    """The fields of a data form element, var → first value."""
    out = {}
    if x is None:
        return out
    for f in x.findall("{%s}field" % NS_DATA):
        v = f.find("{%s}value" % NS_DATA)
        out[f.get("var")] = v.text if v is not None else None
    return out


class AppServer(slixmpp.ComponentXMPP):
    """An app server that records the notifications it gets."""

    def __init__(self, jid, secret, host, port):
        super().__init__(jid, secret, host, port)
        self.name = "component"
        self._host, self._port = host, port
        self.notifications = []
        self.record = {"jid": jid, "session_started": False, "stream_errors": [], "received": [],
                       "disconnected": False, "extra": {"notifications": self.notifications}}
        self.session_started = asyncio.Event()
        self.disconnected_event = asyncio.Event()
        self.got = asyncio.Event()
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0060")
        self.register_handler(Callback("push publish", StanzaPath("iq@type=set/pubsub/publish"), self._on_publish))
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("stream_error", lambda err: self.record["stream_errors"].append(err["condition"]))
        self.add_event_handler("disconnected", self._on_disconnected)

    async def get_dns_records(self, domain, port=None):
        return [(self._host, self._host, self._port)]

    def _on_session_start(self, _event):
        self.record["session_started"] = True
        self.session_started.set()

    def _on_publish(self, iq):
        publish = iq["pubsub"]["publish"]
        notification = publish["item"].xml.find("{urn:xmpp:push:0}notification")
        summary = notification.find("{%s}x" % NS_DATA) if notification is not None else None
        options = iq["pubsub"].xml.find("{http://jabber.org/protocol/pubsub}publish-options")
        self.notifications.append({
            "from": str(iq["from"]),
            "to": str(iq["to"]),
            "node": publish["node"],
            "summary": form_fields(summary),
            "publish_options": form_fields(options.find("{%s}x" % NS_DATA) if options is not None else None),
        })
        iq.reply().send()
        self.got.set()

    def _on_disconnected(self, _reason):
        self.record["disconnected"] = True
        self.disconnected_event.set()

    async def next_notification(self, what):
        try:
            await asyncio.wait_for(self.got.wait(), common.STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise common.ScenarioError("app server: no notification for %s" % what)
        self.got.clear()

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
    p.add_argument("--push-secret", required=True)
    for who in ("alice", "bob"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    a = p.parse_args()
    accounts = {}

    async def scenario():
        app = AppServer(a.component_jid, a.secret, a.host, a.component_port)
        accounts["component"] = app
        app.connect()
        try:
            await asyncio.wait_for(app.session_started.wait(), common.STEP_TIMEOUT)
        except asyncio.TimeoutError:
            raise common.ScenarioError("app server: no handshake within %ss" % common.STEP_TIMEOUT)

        alice = common.Account("alice", a.alice_jid, a.alice_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["alice"] = alice
        alice.start()
        await alice.wait_session()

        bob = common.Account("bob", a.bob_jid, a.bob_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["bob"] = bob
        bob.register_plugin("xep_0198")
        extra = {"enable": None, "resumed": 0}
        bob.record["extra"] = extra
        enabled, resumed = asyncio.Event(), asyncio.Event()
        bob.add_event_handler("sm_enabled", lambda _: enabled.set())

        def on_resumed(_):
            extra["resumed"] += 1
            resumed.set()

        bob.add_event_handler("session_resumed", on_resumed)
        bob.start()
        await bob.wait_session()
        await asyncio.wait_for(enabled.wait(), common.STEP_TIMEOUT)
        bob_full = bob.boundjid.full

        iq = bob.make_iq_set()
        iq.append(ET.fromstring(
            "<enable xmlns='urn:xmpp:push:0' jid='%s' node='conversations-node'>"
            "<x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
            "<field var='secret'><value>%s</value></field>"
            "</x></enable>" % (a.component_jid, a.push_secret)))
        try:
            answer = await iq.send(timeout=common.STEP_TIMEOUT)
            extra["enable"] = answer["type"]
        except slixmpp.exceptions.IqError as e:
            extra["enable"] = "error: " + e.iq["error"]["condition"]
            raise common.ScenarioError("enable refused: %s" % extra["enable"])

        # The connection dies: no </stream:stream>, no ack.
        bob.disconnected_event.clear()
        bob.transport.abort()
        await asyncio.wait_for(bob.disconnected_event.wait(), common.STEP_TIMEOUT)
        # Until the server has noticed, a message would still go to the
        # connection; a presence probe from alice is answered for bob's
        # session either way, so wait on the notification instead and
        # send again if none comes.
        for attempt in range(50):
            alice.send_message(mto=a.bob_jid, mbody="while away", mtype="chat")
            try:
                await asyncio.wait_for(app.got.wait(), 0.2)
                break
            except asyncio.TimeoutError:
                pass
        else:
            raise common.ScenarioError("app server: no notification while bob was away")
        app.got.clear()
        alice.send_message(mto=a.bob_jid, mbody="again", mtype="chat")
        await app.next_notification("again")

        bob.disconnected_event.clear()
        bob.start()
        await asyncio.wait_for(resumed.wait(), common.STEP_TIMEOUT)
        await bob.next_message("again")
        alice.send_message(mto=bob_full, mbody="back", mtype="chat")
        await bob.next_message("back")
        await alice["xep_0199"].send_ping(a.domain, timeout=common.STEP_TIMEOUT)

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
