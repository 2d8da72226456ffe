"""Scenario "muc": multi-user chat (XEP-0045) with slixmpp's xep_0045.

alice joins --room with join_muc_wait, which creates it (locked, status
201), and accepts the default configuration (an empty submitted form: an
instant room). bob joins; alice and bob each send one group chat message
and wait until both have received both. Then carol, a late joiner, enters
asking for up to 10 messages of history.

Each account's record gets "extra": its own presence on joining (status
codes, affiliation, role), the subject and the occupants join_muc_wait
returned, the history messages it collected (those with a delay from the
room), and every live group chat message it received. Prints one JSON line
(see slixmpp_common.run); the Go test TestSlixmppMUC checks it.
"""

import sys

sys.dont_write_bytecode = True

import asyncio

import slixmpp
import slixmpp_common as common


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob", "carol"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    p.add_argument("--room", required=True)
    a = p.parse_args()
    accounts = {}
    room = slixmpp.JID(a.room)

    def account(name):
        acc = common.Account(name, getattr(a, name + "_jid"), getattr(a, name + "_password"), "SCRAM-SHA-256",
                             a.host, a.port, a.domain)
        acc.register_plugin("xep_0045")
        acc.record["extra"] = {"joined": None, "subject": None, "occupants": [], "history": [], "groupchat": []}
        acc.groupchat = asyncio.Queue()

        def on_groupchat(msg):
            delay = msg.get_plugin("delay", check=True)
            if delay is not None:
                return  # history, collected by join_muc_wait
            entry = {"from": str(msg["from"]), "body": msg["body"], "id": msg["id"]}
            acc.record["extra"]["groupchat"].append(entry)
            acc.groupchat.put_nowait(entry)

        acc.add_event_handler("groupchat_message", on_groupchat)
        accounts[name] = acc
        return acc

    async def join(acc, nick, **history):
        pres, subject, occupants, msgs = await acc["xep_0045"].join_muc_wait(
            room, nick, timeout=common.STEP_TIMEOUT, **history)
        extra = acc.record["extra"]
        extra["joined"] = {
            "from": str(pres["from"]),
            "codes": sorted(pres["muc"]["status_codes"]),
            "affiliation": pres["muc"]["affiliation"],
            "role": pres["muc"]["role"],
        }
        extra["subject"] = subject["subject"]
        extra["occupants"] = sorted(str(o["from"]) for o in occupants)
        extra["history"] = [
            {"from": str(m["from"]), "body": m["body"], "id": m["id"], "delay_from": str(m["delay"]["from"])}
            for m in msgs
        ]

    async def receive(acc, n):
        for _ in range(n):
            try:
                await asyncio.wait_for(acc.groupchat.get(), common.STEP_TIMEOUT)
            except asyncio.TimeoutError:
                raise common.ScenarioError("%s: fewer than %d group chat messages within %ss" % (
                    acc.name, n, common.STEP_TIMEOUT))

    async def scenario():
        alice, bob = account("alice"), account("bob")
        alice.start()
        bob.start()
        await alice.wait_session()
        await bob.wait_session()

        await join(alice, "Alice")
        # The new room is locked until configured: take the defaults.
        form = alice["xep_0004"].make_form(ftype="submit")
        await alice["xep_0045"].set_room_config(room, form, timeout=common.STEP_TIMEOUT)
        await join(bob, "Bob")

        alice.send_message(mto=room, mbody="Hello from alice", mtype="groupchat")
        await receive(alice, 1)
        bob.send_message(mto=room, mbody="Hello from bob — ✓", mtype="groupchat")
        await receive(alice, 1)
        await receive(bob, 2)

        carol = account("carol")
        carol.start()
        await carol.wait_session()
        await join(carol, "Carol", maxstanzas=10)

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
