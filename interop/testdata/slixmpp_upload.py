"""Scenario "upload": XEP-0363 HTTP file upload with slixmpp's xep_0363
plugin (which uses aiohttp for the HTTP side).

bob logs in and waits. alice logs in, lets the plugin find the upload
service (disco#items of her domain, then disco#info of each item, looking
for the store/file identity and the urn:xmpp:http:upload:0 feature, and
reading max-file-size from its form), uploads --file, and sends the URL it
got to bob. bob downloads the URL with aiohttp. alice then asks for a slot
one byte over the service's limit, which the service refuses.

Prints one JSON line (see slixmpp_common.run): each account's
record["extra"] holds what it saw of the upload. The Go test
TestSlixmppUpload checks it.
"""

import hashlib
import sys
import types
from pathlib import Path

sys.dont_write_bytecode = True

import aiohttp
import slixmpp
import slixmpp.plugins.xep_0030.disco as disco_module
from slixmpp.exceptions import IqError
import slixmpp_common as common


def patch_disco():
    """Works around a bug of slixmpp 1.8.3 under Python 3.11: its
    get_info_from_domain, which the xep_0363 plugin uses to find the
    service, passes coroutines to asyncio.wait, which Python 3.11 refuses
    with a TypeError. That module alone gets an asyncio whose wait wraps
    them in tasks first; the disco queries are slixmpp's own."""
    real = disco_module.asyncio
    if sys.version_info < (3, 11) or isinstance(real, types.SimpleNamespace):
        return
    shim = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})

    async def wait(fs, *args, **kwargs):
        return await real.wait([real.ensure_future(f) for f in fs], *args, **kwargs)

    shim.wait = wait
    disco_module.asyncio = shim


def main():
    p = common.base_args(__doc__)
    for who in ("alice", "bob"):
        p.add_argument("--%s-jid" % who, required=True)
        p.add_argument("--%s-password" % who, required=True)
    p.add_argument("--file", required=True, help="the file alice uploads")
    a = p.parse_args()
    patch_disco()
    accounts = {}

    async def scenario():
        alice = common.Account("alice", a.alice_jid, a.alice_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        bob = common.Account("bob", a.bob_jid, a.bob_password, "SCRAM-SHA-256", a.host, a.port, a.domain)
        accounts["alice"] = alice
        accounts["bob"] = bob
        alice.register_plugin("xep_0363")
        alice.record["extra"] = {}
        bob.record["extra"] = {}

        bob.start()
        await bob.wait_session()
        alice.start()
        await alice.wait_session()

        up = alice["xep_0363"]
        url = await up.upload_file(Path(a.file), timeout=common.STEP_TIMEOUT)
        alice.record["extra"].update({
            "service": str(up.upload_service),
            "max_file_size": up.max_file_size,
            "url": url,
        })
        alice.send_message(mto=slixmpp.JID(a.bob_jid).bare, mbody=url, mtype="chat")

        msg = await bob.next_message("the URL from alice")
        async with aiohttp.ClientSession() as session:
            async with session.get(msg["body"]) as resp:
                data = await resp.read()
                bob.record["extra"].update({
                    "status": resp.status,
                    "length": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "content_type": resp.headers.get("Content-Type", ""),
                    "content_disposition": resp.headers.get("Content-Disposition", ""),
                    "nosniff": resp.headers.get("X-Content-Type-Options", ""),
                })

        # One byte over the limit, asked for directly: the plugin's own
        # upload_file would refuse it before asking.
        try:
            await up.request_slot(up.upload_service, "too-big.bin", int(up.max_file_size) + 1,
                                  "application/octet-stream", timeout=common.STEP_TIMEOUT)
            alice.record["extra"]["too_large"] = "granted"
        except IqError as e:
            err = e.iq["error"]
            limit = err.xml.find("{urn:xmpp:http:upload:0}file-too-large/{urn:xmpp:http:upload:0}max-file-size")
            alice.record["extra"]["too_large"] = "%s/%s" % (err["type"], err["condition"])
            alice.record["extra"]["too_large_max"] = limit.text if limit is not None else None

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
