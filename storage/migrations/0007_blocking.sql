-- Block lists (XEP-0191, issue 21): one row per (owner, blocked JID).
--
-- blocked is a JID as XEP-0191 items name it: a bare JID, a full JID, a
-- domain or a domain with a resource, normalised. An account's rows go with
-- it.

CREATE TABLE blocklist (
    jid     TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- owner, bare JID
    blocked TEXT NOT NULL,
    PRIMARY KEY (jid, blocked)
);
