"""Scenario "bookmarks": slixmpp's XEP-0048 plugin stores bookmarks in
private XML (xep_0049) and in PEP (xep_0223, node storage:bookmarks, with
its publish-options persist_items and access_model whitelist), and each
is read through the others, XEP-0402 (urn:xmpp:bookmarks:1) included.

alice logs in twice: "one" stores and reads; "two" only watches (its caps
say storage:bookmarks+notify, from xep_0048, and
urn:xmpp:bookmarks:1+notify).

  1. one stores room1 through private XML;
  2. one reads XEP-0048's PEP node and XEP-0402's node;
  3. one stores room1 and room2 through PEP (xep_0223);
  4. one reads private XML and XEP-0402's node;
  5. two has received the events of both nodes.

Each account's record gets "extra" (see slixmpp_pepcommon) plus
"fetches". The Go test TestSlixmppBookmarks checks it.
"""

import sys

sys.dont_write_bytecode = True

import slixmpp_common as common
import slixmpp_pepcommon as pc

B1 = "urn:xmpp:bookmarks:1"


def conferences(bookmarks):
    return sorted(({"jid": str(c["jid"]), "name": c["name"], "nick": c["nick"], "autojoin": c["autojoin"]}
                   for c in bookmarks["conferences"]), key=lambda c: c["jid"])


def main():
    p = common.base_args(__doc__)
    p.add_argument("--alice-jid", required=True)
    p.add_argument("--alice-password", required=True)
    p.add_argument("--room1", required=True)
    p.add_argument("--room2", required=True)
    a = p.parse_args()
    accounts = {}

    def account(name, resource):
        acc = pc.PepAccount(name, a.alice_jid + "/" + resource, a.alice_password, a.host, a.port, a.domain,
                            plugins=("xep_0048",), interests=(B1,))
        acc.extra["fetches"] = {}
        accounts[name] = acc
        return acc

    def native(kind, res):
        if kind != "result":
            return res
        out = []
        for i in res.xml.iter("{http://jabber.org/protocol/pubsub}item"):
            c = i.find("{%s}conference" % B1)
            nick = None if c is None else c.find("{%s}nick" % B1)
            out.append({"id": i.get("id"), "payload": {"xml": None if c is None else
                        "name=%s autojoin=%s nick=%s" % (c.get("name"), c.get("autojoin"), None if nick is None else nick.text)}})
        return {"type": kind, "items": sorted(out, key=lambda x: x["id"])}

    async def scenario():
        one, two = account("one", "one"), account("two", "two")
        for acc in (one, two):
            acc.start()
        for acc in (one, two):
            await acc.wait_session()
        await pc.wait_interest(one, two)
        T = common.STEP_TIMEOUT
        bm = one["xep_0048"]
        f = one.extra["fetches"]

        def bookmarks(*rooms):
            b = bm.stanza.Bookmarks()
            for jid, name, nick, autojoin in rooms:
                b.add_conference(jid, nick, name=name, autojoin=autojoin)
            return b

        room1 = (a.room1, "Room One", "Al", True)
        room2 = (a.room2, "Room Two", "Alice", False)

        # 1
        kind, res = await pc.attempt(bm.set_bookmarks(bookmarks(room1), method="xep_0049", timeout=T))
        f["store_private"] = {"type": kind} if kind == "result" else res
        # 2
        kind, res = await pc.attempt(bm.get_bookmarks(method="xep_0223", timeout=T))
        f["pep_after_private"] = {"type": kind, "extra": {"conferences": conferences(
            res["pubsub"]["items"]["item"]["bookmarks"])}} if kind == "result" else res
        f["native_after_private"] = native(*await pc.attempt(one["xep_0060"].get_items(None, B1, timeout=T)))
        # 3
        kind, res = await pc.attempt(bm.set_bookmarks(bookmarks(room1, room2), method="xep_0223", timeout=T))
        f["store_pep"] = {"type": kind} if kind == "result" else res
        # 4
        kind, res = await pc.attempt(bm.get_bookmarks(method="xep_0049", timeout=T))
        f["private_after_pep"] = {"type": kind, "extra": {"conferences": conferences(
            res["private"]["bookmarks"])}} if kind == "result" else res
        f["native_after_pep"] = native(*await pc.attempt(one["xep_0060"].get_items(None, B1, timeout=T)))
        # 5
        await two.until("the events of room2", lambda: any(
            e.get("id") == a.room2 for e in two.events(B1)))
        for acc in (one, two):
            await acc.sync()

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
