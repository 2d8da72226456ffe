-- Networks an account has logged in from (issue 20): the failed-login
-- throttle lets an account's owner in from these even while the account is
-- refused elsewhere because of guesses from many addresses.
--
-- network is the /24 of an IPv4 address or the /64 of an IPv6 address, in
-- CIDR notation; one row per account and network, with the time of the
-- latest successful login recorded from it. Rows older than the remembered
-- period are swept; an account's rows go with it.

CREATE TABLE login_networks (
    jid        TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    network    TEXT NOT NULL,   -- e.g. 192.0.2.0/24 or 2001:db8:1:2::/64
    last_login BIGINT NOT NULL, -- Unix milliseconds
    PRIMARY KEY (jid, network)
);

-- For the sweep of networks not logged in from for the remembered period.
CREATE INDEX login_networks_last_login ON login_networks (last_login);
