"""Scenario "login": one account logs in over STARTTLS, with exactly the
SASL mechanism --mech (empty: slixmpp's own choice), TLS capped at
--tls-max if given. It waits until the session starts (bind, presence,
ping) or slixmpp gives up, and records which.

A refusal shows as slixmpp's failed_auth event (with the <failure/>
condition); with one mechanism allowed slixmpp then gives up
(failed_all_auth). Prints one JSON line (see slixmpp_common.run); the Go
tests decide whether the login should have succeeded.
"""

import sys

sys.dont_write_bytecode = True

import slixmpp_common as common


def main():
    p = common.base_args(__doc__)
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mech", default="", help="the one SASL mechanism to use; empty: slixmpp's choice")
    p.add_argument("--tls-max", default="", choices=["", "1.2"])
    a = p.parse_args()
    accounts = {}

    async def scenario():
        acc = common.Account("user", a.jid, a.password, a.mech, a.host, a.port, a.domain, tls_max=a.tls_max or None)
        accounts["user"] = acc
        acc.start()
        await acc.wait_auth_done()
        if acc.record["authenticated"]:
            await acc.wait_session()

    common.run(scenario, accounts)


if __name__ == "__main__":
    main()
