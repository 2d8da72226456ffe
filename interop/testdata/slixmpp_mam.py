"""Scenario "mam": the message archive (XEP-0313) through slixmpp's
xep_0313 plugin, with its RSM (XEP-0059) paging.

alice and bob log in; alice sends bob 25 chat messages and bob answers 5,
each waited for. alice then pages through her archive with bob, 10 at a
time (slixmpp's iterate), and reads its last 7 messages backwards
(reverse). alice joins --room, which creates it, makes it persistent (so
it archives), and sends 3 group chat messages; bob, who never joins, reads
the room's archive. Each account's record gets "extra": the bodies (and
the stanza ids) each query returned, in the order slixmpp gave them.
Prints one JSON line (see slixmpp_common.run); the Go test TestSlixmppMAM
checks it.
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
    p.add_argument("--room", required=True)
    a = p.parse_args()
    accounts = {}
    room = slixmpp.JID(a.room)

    def account(name):
        acc = common.Account(name, getattr(a, name + "_jid"), getattr(a, name + "_password"), "SCRAM-SHA-256",
                             a.host, a.port, a.domain)
        acc.register_plugin("xep_0313")
        acc.register_plugin("xep_0045")
        acc.register_plugin("xep_0359")
        acc.record["extra"] = {}
        accounts[name] = acc
        return acc

    async def collect(acc, key, **kw):
        out = []
        async for msg in acc["xep_0313"].iterate(**kw):
            fwd = msg["mam_result"]["forwarded"]
            out.append({"id": msg["mam_result"]["id"], "body": fwd["stanza"]["body"],
                        "from": str(fwd["stanza"]["from"]), "stamp": str(fwd["delay"]["stamp"])})
        acc.record["extra"][key] = out

    async def scenario():
        alice, bob = account("alice"), account("bob")
        alice.start()
        bob.start()
        await alice.wait_session()
        await bob.wait_session()

        for i in range(25):
            body = "a%02d" % i
            alice.send_message(mto=bob.boundjid.bare, mbody=body, mtype="chat")
            await bob.next_message(body)
        for i in range(5):
            body = "b%02d" % i
            bob.send_message(mto=alice.boundjid.bare, mbody=body, mtype="chat")
            await alice.next_message(body)

        await collect(alice, "pages", with_jid=bob.boundjid.bare, rsm={"max": 10})
        await collect(alice, "last7", reverse=True, total=7, rsm={"max": 7})

        pres, _subject, _occupants, _msgs = await alice["xep_0045"].join_muc_wait(
            room, "Alice", timeout=common.STEP_TIMEOUT)
        form = alice["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/muc#roomconfig")
        form.add_field(var="muc#roomconfig_persistentroom", ftype="boolean", value=True)
        await alice["xep_0045"].set_room_config(room, form, timeout=common.STEP_TIMEOUT)
        for i in range(3):
            alice.send_message(mto=room, mbody="r%d" % i, mtype="groupchat")
        # The room has handled the messages once a ping through it is answered.
        await alice["xep_0199"].send_ping(slixmpp.JID(a.room + "/Alice"), timeout=common.STEP_TIMEOUT)
        await collect(bob, "room", jid=room, rsm={"max": 2})

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
