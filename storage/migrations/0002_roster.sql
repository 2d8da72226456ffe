-- Rosters (RFC 6121 §2) and subscription states (§3, Appendix A).
--
-- One row per (owner, contact). visible = 0 marks a row kept only for an
-- inbound subscription request (pending-in) from someone the owner has not
-- added: it is not part of the roster the owner sees until approved.

CREATE TABLE roster_items (
    jid          TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- owner, bare JID
    contact      TEXT NOT NULL,                  -- bare JID
    name         TEXT NOT NULL DEFAULT '',
    groups       TEXT NOT NULL DEFAULT '',       -- JSON array of group names
    subscription TEXT NOT NULL DEFAULT 'none',   -- none, to, from, both
    ask          INTEGER NOT NULL DEFAULT 0,     -- 1: pending-out (ask='subscribe')
    pending_in   INTEGER NOT NULL DEFAULT 0,     -- 1: an inbound request awaits an answer
    approved     INTEGER NOT NULL DEFAULT 0,     -- 1: pre-approved (RFC 6121 §3.4)
    visible      INTEGER NOT NULL DEFAULT 1,
    request      TEXT NOT NULL DEFAULT '',       -- the pending inbound subscribe stanza
    PRIMARY KEY (jid, contact)
);

-- The roster version (XEP-0237) of each owner: bumped by every change to a
-- visible item.
CREATE TABLE roster_versions (
    jid     TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    version BIGINT NOT NULL
);
