"""Scenario "pep omemo": what an OMEMO client publishes, through
slixmpp's xep_0060 publish with publish-options, fetched by a stranger.

alice and bob subscribe to each other; bob's caps say
'eu.siacs.conversations.axolotl.devicelist+notify' (as OMEMO clients'
do); carol is a stranger with the same interest.

  1. alice publishes, each with publish-options pubsub#access_model=open
     (as Conversations, Dino and Gajim do): her device list
     (eu.siacs.conversations.axolotl.devicelist, item "current"), the
     bundle of device 1234 (eu.siacs.conversations.axolotl.bundles:1234),
     and the OMEMO 2 device list (urn:xmpp:omemo:2:devices).
  2. bob receives the device list event; carol, not subscribed, none.
  3. carol asks disco#info of alice's account and fetches the device
     list, the bundle (by item id) and the OMEMO 2 device list.
  4. alice publishes the device list again with access_model=presence,
     which conflicts with the node's configuration: the error slixmpp
     raises is recorded; carol fetches the device list again.

Each account's record gets "extra" (see slixmpp_pepcommon) plus
"fetches". The Go test TestSlixmppPEPOmemo checks it.
"""

import sys

sys.dont_write_bytecode = True

import xml.etree.ElementTree as ET

import slixmpp_common as common
import slixmpp_pepcommon as pc

AX = "eu.siacs.conversations.axolotl"
DEVICELIST = AX + ".devicelist"
BUNDLE = AX + ".bundles:1234"
OMEMO2_DEVICES = "urn:xmpp:omemo:2:devices"


def devicelist(*ids):
    x = ET.Element("{%s}list" % AX)
    for i in ids:
        ET.SubElement(x, "{%s}device" % AX, id=str(i))
    return x


def omemo2_devices(*ids):
    x = ET.Element("{urn:xmpp:omemo:2}devices")
    for i in ids:
        ET.SubElement(x, "{urn:xmpp:omemo:2}device", id=str(i), label="slixmpp")
    return x


def bundle():
    b = ET.Element("{%s}bundle" % AX)
    spk = ET.SubElement(b, "{%s}signedPreKeyPublic" % AX, signedPreKeyId="1")
    spk.text = "BQ7Vd1fUJbpzcktZFCN4Qw0pQBWdfHzMPWxQmSOWp3J2"
    ET.SubElement(b, "{%s}signedPreKeySignature" % AX).text = "dGhlIHNpZ25hdHVyZQ=="
    ET.SubElement(b, "{%s}identityKey" % AX).text = "BeHk9aTFDmrFGcmYZMkHoaZl3hiybe9MJSbI3wFtdDAH"
    pks = ET.SubElement(b, "{%s}prekeys" % AX)
    for i in range(1, 101):
        ET.SubElement(pks, "{%s}preKeyPublic" % AX, preKeyId=str(i)).text = "BWHTAS4nVLfJ8mzf8Tn0Z3EKaN+6%03d" % i
    return b


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob", "carol"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    a = p.parse_args()
    accounts = {}

    def account(name):
        acc = pc.PepAccount(name, getattr(a, name + "_jid"), getattr(a, name + "_password"),
                            a.host, a.port, a.domain, interests=(DEVICELIST,))
        acc.extra["fetches"] = {}
        accounts[name] = acc
        return acc

    def items(kind, res):
        if kind != "result":
            return res
        return {"type": kind, "items": [{"id": i.get("id"), "payload": pc.summarise(i)}
                                        for i in res.xml.iter("{http://jabber.org/protocol/pubsub}item")]}

    async def scenario():
        alice, bob, carol = account("alice"), account("bob"), account("carol")
        for acc in (alice, bob, carol):
            acc.start()
        for acc in (alice, bob, carol):
            await acc.wait_session()
        await pc.befriend(alice, bob)
        await pc.wait_interest(alice, alice, bob)
        alice_bare = alice.boundjid.bare
        T = common.STEP_TIMEOUT
        pub = alice["xep_0060"]
        f = alice.extra["fetches"]

        # 1
        for key, node, item_id, payload in (
                ("publish_devicelist", DEVICELIST, "current", devicelist(1234)),
                ("publish_bundle", BUNDLE, "current", bundle()),
                ("publish_omemo2", OMEMO2_DEVICES, "current", omemo2_devices(1234))):
            kind, res = await pc.attempt(pub.publish(None, node, id=item_id, payload=payload,
                                                     options=pc.publish_options(alice, access_model="open"), timeout=T))
            f[key] = {"type": kind} if kind == "result" else res

        # 2
        await bob.until("alice's device list event", lambda: bob.events(DEVICELIST, alice_bare))
        await alice.until("her own device list event", lambda: alice.events(DEVICELIST, alice_bare))

        # 3
        g = carol.extra["fetches"]
        kind, res = await pc.attempt(carol["xep_0030"].get_info(alice_bare, timeout=T))
        if kind == "result":
            info = res["disco_info"]
            g["disco"] = {"type": kind, "extra": {
                "identities": sorted("%s/%s" % (i[0], i[1]) for i in info["identities"]),
                "features": sorted(info["features"])}}
        else:
            g["disco"] = res
        g["devicelist"] = items(*await pc.attempt(carol["xep_0060"].get_items(alice_bare, DEVICELIST, timeout=T)))
        g["bundle"] = items(*await pc.attempt(carol["xep_0060"].get_item(alice_bare, BUNDLE, "current", timeout=T)))
        g["omemo2"] = items(*await pc.attempt(carol["xep_0060"].get_items(alice_bare, OMEMO2_DEVICES, timeout=T)))

        # 4
        kind, res = await pc.attempt(pub.publish(None, DEVICELIST, id="current", payload=devicelist(1234, 5678),
                                                 options=pc.publish_options(alice, access_model="presence"), timeout=T))
        f["conflicting"] = {"type": kind} if kind == "result" else res
        g["devicelist_after"] = items(*await pc.attempt(carol["xep_0060"].get_items(alice_bare, DEVICELIST, timeout=T)))
        for acc in (alice, bob, carol):
            await acc.sync()

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
