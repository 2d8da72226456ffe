"""Scenario "chat": two accounts log in over STARTTLS, alice with
--alice-mech (SCRAM-SHA-256) and bob with --bob-mech (PLAIN), and exchange a
message both ways.

alice sends --alice-body to bob's bare JID; bob, on receiving it, replies
with --bob-body to the full JID it came from; alice waits for the reply.
Prints one JSON line (see slixmpp_common.run); the Go test
TestSlixmppChat checks it.
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
        p.add_argument("--%s-mech" % who, required=True)
        p.add_argument("--%s-body" % who, required=True)
    a = p.parse_args()
    accounts = {}

    async def scenario():
        alice = common.Account("alice", a.alice_jid, a.alice_password, a.alice_mech, a.host, a.port, a.domain)
        bob = common.Account("bob", a.bob_jid, a.bob_password, a.bob_mech, a.host, a.port, a.domain)
        accounts["alice"] = alice
        accounts["bob"] = bob

        # bob answers whoever writes to him, as soon as the message arrives.
        def reply(msg):
            if msg["body"] and msg["type"] in ("chat", "normal"):
                bob.send_message(mto=msg["from"], mbody=a.bob_body, mtype="chat")
        bob.add_event_handler("message", reply)

        alice.start()
        bob.start()
        await alice.wait_session()
        await bob.wait_session()

        alice.send_message(mto=slixmpp.JID(a.bob_jid).bare, mbody=a.alice_body, mtype="chat")
        await bob.next_message("message from alice")
        await alice.next_message("reply from bob")

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
