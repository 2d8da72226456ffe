"""Scenario "resume": slixmpp's XEP-0198 plugin resumes a session after its
connection is dropped, and nothing sent meanwhile is lost or doubled.

bob (with xep_0198, which enables resumable stream management after bind)
receives "before" from alice; then bob's TCP connection is aborted, with no
</stream:stream> and no final ack. While bob is away alice sends "during"
and pings the server (the answer means the server has handled it). bob
connects again: slixmpp sends <resume/> with its h and the previous id, and
the server answers <resumed/> and sends again what bob did not
acknowledge. alice then sends "after". Prints one JSON line (see
slixmpp_common.run); extra records the stream management events. The Go
test TestSlixmppResume checks it.
"""

import asyncio
import sys

sys.dont_write_bytecode = True

import slixmpp_common as common


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    a = p.parse_args()
    accounts = {}

    async def scenario():
        alice = common.Account("alice", a.alice_jid, a.alice_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["alice"] = alice
        alice.start()
        await alice.wait_session()

        bob = common.Account("bob", a.bob_jid, a.bob_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["bob"] = bob
        bob.register_plugin("xep_0198")
        extra = {"enabled": 0, "resumed": 0, "sessions": 0, "sm_failed": 0}
        bob.record["extra"] = extra
        enabled, resumed = asyncio.Event(), asyncio.Event()

        def on_enabled(_):
            extra["enabled"] += 1
            enabled.set()

        def on_resumed(_):
            extra["resumed"] += 1
            resumed.set()

        def on_session(_):
            extra["sessions"] += 1

        def on_failed(_):
            extra["sm_failed"] += 1

        bob.add_event_handler("sm_enabled", on_enabled)
        bob.add_event_handler("session_resumed", on_resumed)
        bob.add_event_handler("session_start", on_session)
        bob.add_event_handler("sm_failed", on_failed)
        bob.start()
        await bob.wait_session()
        await asyncio.wait_for(enabled.wait(), common.STEP_TIMEOUT)
        bob_full = bob.boundjid.full

        alice.send_message(mto=bob_full, mbody="before", mtype="chat")
        await bob.next_message("before")

        # The connection dies: no </stream:stream>, no ack.
        bob.disconnected_event.clear()
        bob.transport.abort()
        await asyncio.wait_for(bob.disconnected_event.wait(), common.STEP_TIMEOUT)

        alice.send_message(mto=bob_full, mbody="during", mtype="chat")
        await alice["xep_0199"].send_ping(a.domain, timeout=common.STEP_TIMEOUT)

        bob.disconnected_event.clear()
        bob.start()
        await asyncio.wait_for(resumed.wait(), common.STEP_TIMEOUT)
        await bob.next_message("during")
        alice.send_message(mto=bob_full, mbody="after", mtype="chat")
        await bob.next_message("after")
        extra["bound_after"] = bob.boundjid.full

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
