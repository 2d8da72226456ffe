"""Scenario "pep avatar": a user avatar (XEP-0084) and nickname
(XEP-0172) through slixmpp's PEP plugins.

alice, bob and carol log in with xep_0084 and xep_0172, which add
'urn:xmpp:avatar:metadata+notify' and 'http://jabber.org/protocol/nick+notify'
to their entity capabilities (XEP-0115). alice and bob subscribe to each
other (slixmpp's automatic handshake); carol is a stranger.

  1. alice publishes her avatar's data and metadata with publish-options
     pubsub#access_model=open (as Conversations does), and her nickname
     without options (the default model, presence).
  2. bob and alice herself receive the metadata and nickname events; carol
     receives none.
  3. carol fetches the metadata and the data (open): allowed; the
     nickname (presence): refused. bob fetches the nickname.
     bob sees alice's presence again, with the avatar's SHA-1 as her
     vCard photo hash (XEP-0398, XEP-0153).
  4. A second resource of bob logs in and receives the last published
     metadata and nickname on its initial presence.
  5. alice retracts her nickname with notify: she and both of bob's
     resources receive the retraction; the node is then empty.

Each account's record gets "extra" (see slixmpp_pepcommon) plus
"fetches": what each fetch returned. The Go test TestSlixmppPEPAvatar
checks it.
"""

import hashlib
import sys

sys.dont_write_bytecode = True

import slixmpp_common as common
import slixmpp_pepcommon as pc

AVATAR = bytes(range(256)) * 3 + b"\x89PNG avatar of alice"
NICK = "Alice in Wonderland ✓"


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob", "carol"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    a = p.parse_args()
    accounts = {}

    def account(name, jid=None, who=None):
        acc = pc.PepAccount(name, jid or getattr(a, name + "_jid"), getattr(a, (who or name) + "_password"),
                            a.host, a.port, a.domain, plugins=("xep_0084", "xep_0172"))
        acc.extra["fetches"] = {}
        accounts[name] = acc
        return acc

    async def scenario():
        alice, bob, carol = account("alice"), account("bob"), account("carol")
        for acc in (alice, bob, carol):
            acc.start()
        for acc in (alice, bob, carol):
            await acc.wait_session()
        await pc.befriend(alice, bob)
        await pc.wait_interest(alice, alice, bob)
        alice_bare = alice.boundjid.bare
        sha = hashlib.sha1(AVATAR).hexdigest()

        # 1
        T = common.STEP_TIMEOUT
        await alice["xep_0084"].publish_avatar(AVATAR, options=pc.publish_options(alice, access_model="open"), timeout=T)
        await alice["xep_0084"].publish_avatar_metadata(
            {"id": sha, "type": "image/png", "bytes": str(len(AVATAR)), "width": "32", "height": "32"},
            options=pc.publish_options(alice, access_model="open"), timeout=T)
        await alice["xep_0172"].publish_nick(NICK, timeout=T)

        # 2
        for acc in (bob, alice):
            await acc.until("alice's avatar metadata event",
                            lambda acc=acc: acc.events("urn:xmpp:avatar:metadata", alice_bare))
            await acc.until("alice's nickname event",
                            lambda acc=acc: acc.events("http://jabber.org/protocol/nick", alice_bare))

        # XEP-0398: the server made the avatar alice's vCard photo and
        # says so in her presence (XEP-0153).
        await bob.until("alice's presence with the avatar's hash",
                        lambda: any(p["photo"] == sha for p in bob.extra["presences"]))

        # 3
        f = carol.extra["fetches"]
        kind, res = await pc.attempt(carol["xep_0060"].get_items(alice_bare, "urn:xmpp:avatar:metadata", timeout=T))
        f["metadata"] = {"type": kind, "items": [{"id": i["id"], "payload": pc.summarise(i.xml)} for i in res["pubsub"]["items"]]} if kind == "result" else res
        kind, res = await pc.attempt(carol["xep_0084"].retrieve_avatar(alice_bare, sha, timeout=T))
        f["data"] = {"type": kind, "items": [{"id": i["id"], "payload": pc.summarise(i.xml)} for i in res["pubsub"]["items"]]} if kind == "result" else res
        kind, res = await pc.attempt(carol["xep_0060"].get_items(alice_bare, "http://jabber.org/protocol/nick", timeout=T))
        f["nick"] = {"type": kind} if kind == "result" else res
        kind, res = await pc.attempt(bob["xep_0060"].get_items(alice_bare, "http://jabber.org/protocol/nick", timeout=T))
        bob.extra["fetches"]["nick"] = {"type": kind, "items": [{"id": i["id"], "payload": pc.summarise(i.xml)} for i in res["pubsub"]["items"]]} if kind == "result" else res
        await carol.sync()

        # 4
        bob2 = account("bob2", jid=bob.boundjid.bare + "/second", who="bob")
        bob2.start()
        await bob2.wait_session()
        await bob2.until("the last avatar metadata", lambda: bob2.events("urn:xmpp:avatar:metadata", alice_bare))
        await bob2.until("the last nickname", lambda: bob2.events("http://jabber.org/protocol/nick", alice_bare))
        await bob2.sync()

        # 5
        kind, res = await pc.attempt(alice["xep_0060"].retract(None, "http://jabber.org/protocol/nick", "current",
                                                               notify=True, timeout=T))
        alice.extra["fetches"]["retract"] = {"type": kind} if kind == "result" else res
        for acc in (alice, bob, bob2):
            await acc.until("the nickname's retraction", lambda acc=acc: any(
                e.get("retract") == "current" for e in acc.events("http://jabber.org/protocol/nick")))
        kind, res = await pc.attempt(bob["xep_0060"].get_items(alice_bare, "http://jabber.org/protocol/nick", timeout=T))
        bob.extra["fetches"]["nick_after_retract"] = {"type": kind, "items": [{"id": i["id"]} for i in res["pubsub"]["items"]]} if kind == "result" else res

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
