"""Scenario "nbxmpp chat": Gajim's XMPP library (Debian's python3-nbxmpp)
logs two accounts in over STARTTLS, each sends initial presence, and the
first sends a chat message to the second's bare JID.

Arguments: host port domain password body. Prints one JSON line:
{"connected": [...], "mechanisms": {...}, "body": ..., "from": ..., "errors": [...]}.
Everything stops after 20 seconds at most.
"""

import json
import logging
import sys

sys.dont_write_bytecode = True

from gi.repository import GLib, Gio  # noqa: E402
import nbxmpp  # noqa: E402
from nbxmpp.client import Client  # noqa: E402
from nbxmpp.const import ConnectionProtocol, ConnectionType  # noqa: E402
from nbxmpp.protocol import JID, Message  # noqa: E402
from nbxmpp.structs import StanzaHandler  # noqa: E402

host, port, domain, password, body = sys.argv[1:6]
result = {"connected": [], "mechanisms": {}, "errors": []}
loop = GLib.MainLoop()


class MechLog(logging.Handler):
    """Records the SASL mechanism nbxmpp chose, from its own log."""

    def emit(self, record):
        msg = record.getMessage()
        if "Chosen auth mechanism:" in msg:
            result["mechanisms"][str(len(result["mechanisms"]))] = msg.split(":", 1)[1].strip()


logging.getLogger("nbxmpp").addHandler(MechLog())
logging.getLogger("nbxmpp").setLevel(logging.INFO)


def make(user):
    c = Client(log_context=user)
    c.set_domain(domain)
    c.set_username(user)
    c.set_resource("gajim")
    c.set_password(password)
    c.set_custom_host("%s:%s" % (host, port), ConnectionProtocol.TCP, ConnectionType.START_TLS)
    # The test server's certificate is self-signed.
    c.set_ignored_tls_errors({Gio.TlsCertificateFlags.UNKNOWN_CA, Gio.TlsCertificateFlags.BAD_IDENTITY})
    return c


alice, bob = make("alice"), make("bob")


def failed(client, signal_name, *args, **kwargs):
    result["errors"].append("%s: %s" % (signal_name, client.get_error()))
    loop.quit()


def connected(client, *args, **kwargs):
    result["connected"].append(str(client.get_bound_jid()))
    client.send_stanza(nbxmpp.Presence())
    if len(result["connected"]) == 2:
        alice.send_stanza(Message(to=JID.from_string("bob@" + domain), body=body, typ="chat"))


def message(client, stanza, properties):
    if properties.body:
        result["body"] = properties.body
        result["from"] = str(properties.jid)
        # Stream management as Gajim negotiates it (nbxmpp's Smacks):
        # enabled with resumption by the time a message arrives.
        sm = client._smacks
        result["sm"] = {"supported": client.sm_supported, "enabled": sm.enabled,
                        "resumable": client.resumeable}
        loop.quit()


for c in (alice, bob):
    c.subscribe("connection-failed", failed)
    c.subscribe("connected", connected)
bob.register_handler(StanzaHandler(name="message", callback=message))
GLib.timeout_add_seconds(20, loop.quit)
alice.connect()
bob.connect()
loop.run()
print(json.dumps(result))
