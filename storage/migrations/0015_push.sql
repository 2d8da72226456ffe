-- Push notification registrations (XEP-0357, issue 26): one row per
-- (account, app server, node) a client enabled. options is the
-- publish-options data form the client sent with enable (the secret
-- Conversations' app server checks), as XML, '' when there was none; it is
-- sent back with every notification. created_at (Unix milliseconds)
-- orders an account's registrations, so that the oldest goes when a new
-- one is over the limit. An account's rows go with it.

CREATE TABLE push_registrations (
    jid        TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- bare JID
    service    TEXT NOT NULL,            -- the app server's JID
    node       TEXT NOT NULL,
    options    TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (jid, service, node)
);
