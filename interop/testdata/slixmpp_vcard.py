"""Scenario "vcard": vcard-temp (XEP-0054) and its photo hash in presence
(XEP-0153) through slixmpp's xep_0054 and xep_0153 plugins, and the
photo's PEP avatar (XEP-0398).

alice (xep_0054, xep_0153) and bob (xep_0054, xep_0153, and xep_0084 for
the avatar metadata '+notify') subscribe to each other; carol is a
stranger.

  1. alice publishes her vCard (FN, NICKNAME) with xep_0054, then sets a
     photo with xep_0153's set_avatar (which reads her vCard, adds PHOTO,
     publishes it and sends her presence again).
  2. bob sees alice's presence with the photo's SHA-1 (slixmpp's
     vcard_avatar_update event), and receives the avatar metadata event
     the server published for the photo (XEP-0398).
  3. bob and carol fetch alice's vCard; bob fetches the avatar data.
  4. alice logs in a second resource whose client knows nothing of
     XEP-0153: bob sees its presence stamped with the photo hash anyway.

Each account's record gets "extra" (see slixmpp_pepcommon) plus
"fetches" and "avatar_updates" (slixmpp's vcard_avatar_update events).
The Go test TestSlixmppVCardAvatar checks it.
"""

import base64
import hashlib
import sys

sys.dont_write_bytecode = True

import slixmpp_common as common
import slixmpp_pepcommon as pc

PHOTO = b"\x89PNG\r\n\x1a\n" + bytes(range(200)) + b" alice's vCard photo"


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob", "carol"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    a = p.parse_args()
    accounts = {}

    def account(name, plugins, jid=None, who=None):
        acc = pc.PepAccount(name, jid or getattr(a, name + "_jid"), getattr(a, (who or name) + "_password"),
                            a.host, a.port, a.domain, plugins=plugins)
        acc.extra["fetches"] = {}
        acc.extra["avatar_updates"] = []
        acc.add_event_handler("vcard_avatar_update", lambda pres, acc=acc: (acc.extra["avatar_updates"].append(
            {"from": str(pres["from"]), "photo": pres["vcard_temp_update"]["photo"]}), acc._note()))
        accounts[name] = acc
        return acc

    async def fetch_vcard(acc, jid):
        kind, res = await pc.attempt(acc["xep_0054"].get_vcard(jid, timeout=common.STEP_TIMEOUT))
        if kind != "result":
            return res
        v = res["vcard_temp"]
        binval = v["PHOTO"]["BINVAL"]
        return {"type": kind, "extra": {
            "fn": v["FN"], "nickname": v["NICKNAME"], "photo_type": v["PHOTO"]["TYPE"],
            "photo_sha1": hashlib.sha1(binval).hexdigest() if binval else None}}

    async def scenario():
        alice = account("alice", ("xep_0054", "xep_0153"))
        bob = account("bob", ("xep_0054", "xep_0153", "xep_0084"))
        carol = account("carol", ("xep_0054",))
        for acc in (alice, bob, carol):
            acc.start()
        for acc in (alice, bob, carol):
            await acc.wait_session()
        await pc.befriend(alice, bob)
        await pc.wait_interest(alice, alice, bob)
        alice_bare = alice.boundjid.bare
        sha = hashlib.sha1(PHOTO).hexdigest()
        T = common.STEP_TIMEOUT

        # 1
        v = alice["xep_0054"].make_vcard()
        v["FN"] = "Alice Liddell"
        v["NICKNAME"] = "alice"
        await alice["xep_0054"].publish_vcard(v, timeout=T)
        await alice["xep_0153"].set_avatar(avatar=PHOTO, mtype="image/png", timeout=T)

        # 2
        await bob.until("alice's presence with the photo hash",
                        lambda: any(u["photo"] == sha for u in bob.extra["avatar_updates"]))
        await bob.until("the avatar metadata event", lambda: bob.events("urn:xmpp:avatar:metadata", alice_bare))

        # 3
        bob.extra["fetches"]["vcard"] = await fetch_vcard(bob, alice_bare)
        carol.extra["fetches"]["vcard"] = await fetch_vcard(carol, alice_bare)
        kind, res = await pc.attempt(bob["xep_0084"].retrieve_avatar(alice_bare, sha, timeout=T))
        bob.extra["fetches"]["avatar_data"] = {"type": kind, "items": [
            {"id": i.get("id"), "payload": pc.summarise(i)}
            for i in res.xml.iter("{http://jabber.org/protocol/pubsub}item")]} if kind == "result" else res

        # 4
        alice2 = account("alice2", (), jid=alice_bare + "/plain", who="alice")
        alice2.start()
        await alice2.wait_session()
        await bob.until("the second resource's presence",
                        lambda: any(p["from"] == alice_bare + "/plain" for p in bob.extra["presences"]))
        for acc in (alice, bob, carol, alice2):
            await acc.sync()

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
