"""Scenario "carbons": two slixmpp resources of one account with message
carbons (XEP-0280, slixmpp's xep_0280 plugin) see each other's
conversation.

alice logs in twice, as alice/one and alice/two, and both enable carbons;
bob logs in. bob sends "to one" to alice/one: alice/two gets a received
carbon of it. alice/one sends "from one" to bob: alice/two gets a sent
carbon of it. bob then sends "private" with <private/> (§7): no carbon.
Prints one JSON line (see slixmpp_common.run); extra holds each resource's
carbons as [direction, from, to, body]. The Go test TestSlixmppCarbons
checks it.
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
        ones = {}
        for res in ("one", "two"):
            acc = common.Account("alice-" + res, a.alice_jid + "/" + res, a.alice_password,
                                 "SCRAM-SHA-256", a.host, a.port, a.domain)
            acc.register_plugin("xep_0280")
            carbons = []
            acc.record["extra"] = carbons
            got = asyncio.Queue()

            def on_carbon(direction, carbons=carbons, got=got):
                def handle(msg):
                    inner = msg["carbon_%s" % direction]
                    carbons.append([direction, str(inner["from"]), str(inner["to"]), inner["body"]])
                    got.put_nowait(inner)
                return handle

            acc.add_event_handler("carbon_received", on_carbon("received"))
            acc.add_event_handler("carbon_sent", on_carbon("sent"))
            accounts["alice-" + res] = acc
            ones[res] = (acc, got)
            acc.start()
            await acc.wait_session()
            await acc["xep_0280"].enable(timeout=common.STEP_TIMEOUT)

        bob = common.Account("bob", a.bob_jid, a.bob_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["bob"] = bob
        bob.start()
        await bob.wait_session()

        one, two = ones["one"][0], ones["two"][0]
        two_got = ones["two"][1]
        bob.send_message(mto=one.boundjid.full, mbody="to one", mtype="chat")
        await one.next_message("to one")
        await asyncio.wait_for(two_got.get(), common.STEP_TIMEOUT)

        one.send_message(mto=bob.boundjid.full, mbody="from one", mtype="chat")
        await bob.next_message("from one")
        await asyncio.wait_for(two_got.get(), common.STEP_TIMEOUT)

        m = bob.make_message(mto=one.boundjid.full, mbody="private", mtype="chat")
        m.append(__import__("slixmpp").xmlstream.ET.Element("{urn:xmpp:carbons:2}private"))
        m.send()
        await one.next_message("private")
        # Anything two would get has arrived once a ping through the
        # server is answered.
        await two["xep_0199"].send_ping(a.domain, timeout=common.STEP_TIMEOUT)

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
