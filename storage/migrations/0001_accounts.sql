-- Accounts and their SCRAM credentials (RFC 5802 §3, RFC 7677).
-- There is deliberately no password column: only the salt, the iteration
-- count and the derived StoredKey and ServerKey are kept, one row per
-- mechanism.

CREATE TABLE accounts (
    jid        TEXT PRIMARY KEY,   -- normalised bare JID, e.g. alice@example.org
    created_at BIGINT NOT NULL     -- Unix milliseconds
);

CREATE TABLE account_credentials (
    jid        TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    mechanism  TEXT NOT NULL,      -- SCRAM-SHA-1, SCRAM-SHA-256
    salt       {{BLOB}} NOT NULL,
    iterations INTEGER NOT NULL,
    stored_key {{BLOB}} NOT NULL,
    server_key {{BLOB}} NOT NULL,
    PRIMARY KEY (jid, mechanism)
);
