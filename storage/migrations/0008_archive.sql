-- Message archives (XEP-0313 MAM): every archived message of an account or
-- of a MUC room, and each owner's archiving preferences.
--
-- One row per message and owner: a chat message between two local users is
-- archived twice, once in each one's archive. Rows are ordered, dated and
-- addressed by seq; the stanza id clients see is derived from it (package
-- mam), so no second index is needed to find a row by id. There is no
-- foreign key to accounts, since rooms own archives too; user del deletes
-- an account's rows with it (Accounts.Delete).
--
-- Rows are appended in the order they are archived (on SQLite seq is the
-- rowid; on PostgreSQL the heap is in insertion order and seq has no index
-- of its own), so a batch of messages for a thousand owners writes a few
-- pages at the end of the table and small index entries, rather than a
-- page per owner: clustered on (owner, seq), SQLite wrote a page per row
-- and fell behind 5,000 messages/s. Queries read an owner's rows through
-- archive_owner or archive_with.

CREATE TABLE archive (
    seq           {{ROWID_INT64}},      -- microseconds since the Unix epoch when archived; unique per server, increasing; orders and dates the row
    owner         TEXT NOT NULL,      -- bare JID whose archive this is: an account, or a MUC room
    id            TEXT NOT NULL,      -- the XEP-0359 stanza id handed to clients (it encodes seq; see mam)
    with_jid      TEXT NOT NULL,      -- bare JID of the other party (for a room: the room's bare JID)
    with_resource TEXT NOT NULL,      -- its resource ('' if none; for a room: the sender's nick)
    outgoing      BOOLEAN NOT NULL,   -- the owner sent it
    stanza        {{BLOB}} NOT NULL   -- the message as archived
);

-- For a query on one archive, in seq order either way.
CREATE UNIQUE INDEX archive_owner ON archive (owner, seq);
-- For a query on one conversation (XEP-0313 'with'), likewise.
CREATE INDEX archive_with ON archive (owner, with_jid, seq);

-- Preferences (XEP-0313 §6): one row per owner that set them; an owner
-- without a row has the server's default.
CREATE TABLE archive_prefs (
    owner        TEXT PRIMARY KEY,    -- bare JID
    default_mode TEXT NOT NULL,       -- 'always', 'never' or 'roster'
    always       TEXT NOT NULL,       -- JIDs always archived, separated by newlines ('' for none)
    never        TEXT NOT NULL        -- JIDs never archived, likewise
);
