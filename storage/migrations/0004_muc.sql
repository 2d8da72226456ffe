-- Multi-user chat (XEP-0045): the persistent rooms of a conference
-- service, their affiliations, subject and recent history. Occupants are
-- never stored: they are whoever is joined to the running server.
--
-- Rooms are keyed by their bare JID (lounge@conference.example.org);
-- service is the domain part, so that a server loads only the rooms of the
-- service it runs.

CREATE TABLE muc_rooms (
    jid            TEXT PRIMARY KEY,    -- room bare JID
    service        TEXT NOT NULL,       -- its domain, e.g. conference.example.org
    creator        TEXT NOT NULL,       -- bare JID of the user who created it
    created_at     BIGINT NOT NULL,     -- Unix milliseconds
    name           TEXT NOT NULL,       -- muc#roomconfig_roomname
    description    TEXT NOT NULL,       -- muc#roomconfig_roomdesc
    public         BOOLEAN NOT NULL,    -- listed in disco#items
    members_only   BOOLEAN NOT NULL,
    moderated      BOOLEAN NOT NULL,
    password       TEXT NOT NULL,       -- room secret; '' when not password-protected
    max_users      INTEGER NOT NULL,
    whois          TEXT NOT NULL,       -- 'moderators' (semi-anonymous) or 'anyone'
    history_length INTEGER NOT NULL,    -- messages kept and sent on join
    allow_pm       TEXT NOT NULL,       -- 'anyone', 'participants', 'moderators' or 'none'
    change_subject BOOLEAN NOT NULL,    -- participants may change the subject
    subject        TEXT NOT NULL,
    subject_nick   TEXT NOT NULL        -- nick of whoever set the subject
);

CREATE INDEX muc_rooms_service ON muc_rooms (service);

CREATE TABLE muc_affiliations (
    room        TEXT NOT NULL REFERENCES muc_rooms(jid) ON DELETE CASCADE,
    jid         TEXT NOT NULL,          -- bare JID
    affiliation TEXT NOT NULL,          -- 'owner', 'admin', 'member' or 'outcast'
    reason      TEXT NOT NULL,
    PRIMARY KEY (room, jid)
);

-- The last messages of each room, oldest first by seq. payload is the
-- message's children as routed (jabber:client the default namespace).
CREATE TABLE muc_history (
    room    TEXT NOT NULL REFERENCES muc_rooms(jid) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,            -- per room, increasing
    id      TEXT NOT NULL,              -- the message's id attribute
    nick    TEXT NOT NULL,              -- sender's nick at the time
    sender  TEXT NOT NULL,              -- sender's real full JID
    stamp   BIGINT NOT NULL,            -- Unix milliseconds
    payload {{BLOB}} NOT NULL,
    PRIMARY KEY (room, seq)
);
