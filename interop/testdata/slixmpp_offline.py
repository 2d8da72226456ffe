"""Scenario "offline": a message sent to an account before it logs in
arrives after it logs in (XEP-0160, with a XEP-0203 delay).

alice logs in and sends each --body, in order, to bob's bare JID while bob
is offline, then pings the server: the answer comes after the server has
handled (and stored) her messages. Only then does bob log in; his initial
presence brings the stored messages, which he waits for. Prints one JSON
line (see slixmpp_common.run); the Go test TestSlixmppOffline checks it.
"""

import sys

sys.dont_write_bytecode = True

import slixmpp
import slixmpp_common as common


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    p.add_argument("--body", action="append", required=True)
    a = p.parse_args()
    accounts = {}

    async def scenario():
        alice = common.Account("alice", a.alice_jid, a.alice_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["alice"] = alice
        alice.start()
        await alice.wait_session()
        for body in a.body:
            alice.send_message(mto=slixmpp.JID(a.bob_jid).bare, mbody=body, mtype="chat")
        await alice["xep_0199"].send_ping(a.domain, timeout=common.STEP_TIMEOUT)

        bob = common.Account("bob", a.bob_jid, a.bob_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["bob"] = bob
        bob.start()
        await bob.wait_session()
        for i in range(len(a.body)):
            await bob.next_message("offline message %d" % (i + 1))

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
