-- Personal eventing (XEP-0163, a XEP-0060 subset on each account): the
-- nodes of every account's PEP service with their configuration, and the
-- items they keep.
--
-- An account's nodes go with it, and a node's items with the node
-- (ON DELETE CASCADE). Items are ordered by seq, which grows with every
-- publication: publishing again under an item's id replaces the row, so
-- that the item becomes the node's newest (XEP-0060 §7.1.2).

CREATE TABLE pep_nodes (
    owner          TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- bare JID
    node           TEXT NOT NULL,
    access_model   TEXT NOT NULL,     -- 'open', 'presence', 'roster' or 'whitelist'
    roster_groups  TEXT NOT NULL,     -- pubsub#roster_groups_allowed, separated by newlines ('' for none)
    max_items      BIGINT NOT NULL,   -- items kept; -1: the server's maximum ('max')
    persist_items  BOOLEAN NOT NULL,
    send_last      TEXT NOT NULL,     -- 'never', 'on_sub' or 'on_sub_and_presence'
    notify_retract BOOLEAN NOT NULL,
    notify_delete  BOOLEAN NOT NULL,
    title          TEXT NOT NULL,
    PRIMARY KEY (owner, node)
);

CREATE TABLE pep_items (
    seq       {{AUTOINC}},
    owner     TEXT NOT NULL,
    node      TEXT NOT NULL,
    id        TEXT NOT NULL,         -- the item id
    publisher TEXT NOT NULL,         -- bare JID of who published it
    payload   TEXT NOT NULL,         -- the item's one element, serialised with its namespace declared
    FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
);

CREATE UNIQUE INDEX pep_items_id ON pep_items (owner, node, id);
-- A node's items in order, and its newest.
CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);
