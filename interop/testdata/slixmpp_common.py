"""Shared helpers for the slixmpp interop scenarios.

Each scenario is its own script (slixmpp_<scenario>.py) run by a Go test in
interop/ against an in-process xmppd. A scenario logs accounts in with
Account, drives them, and is run by run(), which prints exactly one JSON
line on standard output: what each account saw (TLS, the SASL mechanism
used, the bound JID, the stanzas received, failures). The Go test asserts
on that line; slixmpp's own log goes to standard error.

Only /usr/bin/python3 can import Debian's python3-slixmpp.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import traceback

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

# Every wait in a scenario is bounded by this, so a script never hangs (the
# Go test kills it after 60 s anyway).
STEP_TIMEOUT = float(os.environ.get("INTEROP_STEP_TIMEOUT", "20"))


def base_args(description):
    """An argument parser with --host, --port and --domain."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", required=True, help="server IP address (no DNS)")
    p.add_argument("--port", required=True, type=int, help="STARTTLS port")
    p.add_argument("--domain", required=True, help="XMPP domain (TLS SNI)")
    return p


def setup_logging():
    level = logging.DEBUG if os.environ.get("INTEROP_DEBUG") else logging.INFO
    logging.basicConfig(
        stream=sys.stderr,
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class Account(slixmpp.ClientXMPP):
    """A slixmpp client that records what happens to it.

    mech is the one SASL mechanism it may use (slixmpp's use_mech): with it
    set, a refused login is not retried with another mechanism; empty, it
    is slixmpp's own choice among those offered, retried down the list.
    tls_max "1.2" caps TLS at 1.2.
    """

    def __init__(self, name, jid, password, mech, host, port, domain, tls_max=None):
        super().__init__(jid, password, sasl_mech=mech or None)
        self.name = name
        self._host = host
        self._port = port
        self._domain = domain
        self.register_plugin("xep_0030")  # disco
        self.register_plugin("xep_0199")  # ping

        # The test server's certificate is self-signed for the domain.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        if tls_max == "1.2":
            # TLS 1.2 has tls-unique, the only channel binding slixmpp 1.8
            # knows (TLS 1.3 has tls-exporter only, RFC 9266).
            self.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
        elif tls_max:
            raise ValueError("tls_max: %r" % tls_max)

        # slixmpp 1.8 sends the GS2 flag "y" (RFC 5802 §6: "I can bind but
        # you did not offer -PLUS") whenever it is on TLS and does not use a
        # -PLUS mechanism, even when the server did offer -PLUS and the
        # client was told to use plain SCRAM. A server that offers -PLUS
        # must refuse "y" as a downgrade, and xmppd does. So when told to
        # use a mechanism that is not -PLUS, this client does not claim
        # channel binding at all (flag "n"), as a client without it would.
        fm = self["feature_mechanisms"]
        default_credentials = fm.sasl_callback

        def credentials(required, optional):
            values = default_credentials(required, optional)
            if mech and not mech.endswith("-PLUS") and "channel_binding" in values:
                values["channel_binding"] = None
            return values

        fm.sasl_callback = credentials

        self.record = {
            "jid": jid,
            "requested_mechanism": mech,
            "tls_max": tls_max,
            "starttls": False,
            "tls_version": None,
            "offered_mechanisms": [],
            "mechanism": None,
            "authenticated": False,
            "bound_jid": None,
            "session_started": False,
            "failed_auth": [],
            "failed_all_auth": False,
            "stream_errors": [],
            "received": [],
            "disconnected": False,
        }
        self.session_started = asyncio.Event()
        self.auth_done = asyncio.Event()  # SASL success, final failure or end of stream
        self.gave_up = asyncio.Event()  # final SASL failure or end of stream
        self.disconnected_event = asyncio.Event()
        self.message_queue = asyncio.Queue()

        self.add_event_handler("tls_success", self._on_tls)
        self.add_event_handler("auth_success", self._on_auth_success)
        self.add_event_handler("failed_auth", self._on_failed_auth)
        self.add_event_handler("failed_all_auth", self._on_failed_all_auth)
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)
        self.add_event_handler("stream_error", self._on_stream_error)
        self.add_event_handler("disconnected", self._on_disconnected)

    # Name resolution: the scenario gives the server's address, so no DNS
    # lookup happens, while the stream and TLS SNI still name the domain as
    # a real client's would.
    async def get_dns_records(self, domain, port=None):
        return [(self._domain, self._host, self._port)]

    def start(self):
        self.connect(address=(self._domain, self._port))

    def _tls_socket(self):
        if isinstance(self.socket, (ssl.SSLSocket, ssl.SSLObject)):
            return self.socket
        return None

    def _on_tls(self, _event):
        self.record["starttls"] = True

    def _sasl_state(self):
        """What the SASL exchange that just ended ran over and with."""
        fm = self["feature_mechanisms"]
        s = self._tls_socket()  # the TLS object once STARTTLS is done
        self.record["offered_mechanisms"] = sorted(fm.mech_list)
        self.record["tls_at_auth"] = s is not None
        self.record["tls_version"] = s.version() if s is not None else None
        # SCRAM's GS2 header: "n,,", "y,," or "p=tls-unique,,".
        gs2 = getattr(fm.mech, "gs2_header", None)
        return fm.mech.name, gs2.decode() if gs2 is not None else None

    def _on_auth_success(self, _stanza):
        # The mechanism object that just completed the exchange.
        mech, gs2 = self._sasl_state()
        self.record["mechanism"] = mech
        self.record["gs2_header"] = gs2
        self.record["authenticated"] = True
        self.auth_done.set()

    def _on_failed_auth(self, stanza):
        mech, gs2 = self._sasl_state()
        self.record["failed_auth"].append({
            "mechanism": mech,
            "gs2_header": gs2,
            "condition": stanza["condition"],
            "text": stanza["text"],
        })

    def _on_failed_all_auth(self, _event):
        self.record["failed_all_auth"] = True
        self.auth_done.set()
        self.gave_up.set()

    async def _on_session_start(self, _event):
        self.record["bound_jid"] = self.boundjid.full
        self.record["session_started"] = True
        # Rosters are not implemented by xmppd yet: no roster fetch here.
        self.send_presence()
        # A ping answered means the server has handled the presence sent
        # before it on this stream, so others can now reach this resource.
        try:
            await self["xep_0199"].send_ping(self._domain, timeout=STEP_TIMEOUT)
            self.record["ping"] = "result"
        except IqError as e:
            self.record["ping"] = "error: " + e.iq["error"]["condition"]
        except IqTimeout:
            self.record["ping"] = "timeout"
        self.session_started.set()

    def _on_message(self, msg):
        entry = {
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "type": msg["type"],
            "body": msg["body"],
            "id": msg["id"],
        }
        # XEP-0203, read from the XML so that no plugin is needed.
        delay = msg.xml.find("{urn:xmpp:delay}delay")
        if delay is not None:
            entry["delay_from"] = delay.get("from", "")
            entry["delay_stamp"] = delay.get("stamp", "")
        self.record["received"].append(entry)
        self.message_queue.put_nowait(msg)

    def _on_stream_error(self, err):
        self.record["stream_errors"].append(err["condition"])

    def _on_disconnected(self, _reason):
        self.record["disconnected"] = True
        self.disconnected_event.set()
        self.auth_done.set()
        self.gave_up.set()

    async def wait_session(self):
        """Waits for login and bind; raises if the login failed or the
        stream ended first."""
        session = asyncio.ensure_future(self.session_started.wait())
        failed = asyncio.ensure_future(self.gave_up.wait())
        done, pending = await asyncio.wait(
            {session, failed}, timeout=STEP_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED)
        for f in pending:
            f.cancel()
        if session not in done:
            why = "gave up" if done else "nothing within %ss" % STEP_TIMEOUT
            raise ScenarioError("%s: no session: %s (failed_auth=%s, stream_errors=%s, disconnected=%s)" % (
                self.name, why, self.record["failed_auth"], self.record["stream_errors"], self.record["disconnected"]))

    async def wait_auth_done(self):
        """Waits until the login succeeded or was finally refused."""
        await asyncio.wait_for(self.auth_done.wait(), STEP_TIMEOUT)

    async def next_message(self, what):
        """The next message with a body."""
        while True:
            try:
                msg = await asyncio.wait_for(self.message_queue.get(), STEP_TIMEOUT)
            except asyncio.TimeoutError:
                raise ScenarioError("%s: no %s within %ss" % (self.name, what, STEP_TIMEOUT))
            if msg["body"]:
                return msg

    async def close(self):
        if self.transport is not None and not self.disconnected_event.is_set():
            self.disconnect(wait=2.0)
            try:
                await asyncio.wait_for(self.disconnected_event.wait(), 5)
            except asyncio.TimeoutError:
                pass


class ScenarioError(Exception):
    pass


def run(scenario, accounts_holder):
    """Runs the coroutine scenario() and prints the one JSON result line.

    accounts_holder is a dict the scenario fills with its Accounts by name,
    so that what they recorded is printed even when the scenario fails.
    Exit status: 0 if the scenario ran to its end, 1 if not.
    """
    setup_logging()
    result = {"slixmpp_version": slixmpp.__version__, "error": None}

    async def main():
        try:
            await asyncio.wait_for(scenario(), STEP_TIMEOUT * 2.5)
        except asyncio.TimeoutError:
            result["error"] = "scenario timed out"
        except ScenarioError as e:
            result["error"] = str(e)
        except Exception:
            result["error"] = traceback.format_exc()
        finally:
            for acc in accounts_holder.values():
                try:
                    await acc.close()
                except Exception:
                    logging.exception("closing %s", acc.name)

    asyncio.run(main())
    result["accounts"] = {n: a.record for n, a in accounts_holder.items()}
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    sys.exit(0 if result["error"] is None else 1)
