-- Offline messages (XEP-0160): messages to an account with no available
-- resource, kept until its next login or until they expire.
--
-- One row per message. id orders a user's messages by arrival; the stanza
-- is kept exactly as routed (from stamped by the server), and the XEP-0203
-- delay is added when it is delivered, from stamp.

CREATE TABLE offline_messages (
    id     {{AUTOINC}},
    jid    TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- recipient, bare JID
    stamp  BIGINT NOT NULL,   -- when it was stored, Unix milliseconds
    stanza TEXT NOT NULL      -- the serialised <message/>
);

CREATE INDEX offline_messages_jid_id ON offline_messages (jid, id);

-- For the expiry sweep.
CREATE INDEX offline_messages_stamp ON offline_messages (stamp);
