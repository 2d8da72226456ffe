-- Last activity (XEP-0012, issue 23): when each account's last available
-- resource went away, and the status text of its unavailable presence.
-- One row per account that has ever logged out, overwritten at each
-- logout (one UPSERT); an account's row goes with it.

CREATE TABLE last_activity (
    jid       TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    logout_at BIGINT NOT NULL,          -- Unix milliseconds
    status    TEXT NOT NULL DEFAULT ''  -- <status/> of the unavailable presence
);
