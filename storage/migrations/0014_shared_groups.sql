-- Shared roster groups (issue 25): groups of accounts that an administrator
-- puts in the rosters of the users each group is shown to, with a mutual
-- subscription, as Openfire's shared groups do. show_to is "everybody",
-- "members" (the group's own members), "groups" (its members and the
-- members of the groups named, one per line, in show_to_groups) or
-- "nobody" (kept for its members, who see the groups shown to it).
-- shared_groups_version has one row, bumped by every change, which a
-- running server polls to pick up what the xmppd group command changed.

CREATE TABLE shared_groups (
    name           TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    show_to        TEXT NOT NULL,
    show_to_groups TEXT NOT NULL DEFAULT ''
);

CREATE TABLE shared_group_members (
    group_name TEXT NOT NULL REFERENCES shared_groups(name) ON DELETE CASCADE,
    jid        TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    PRIMARY KEY (group_name, jid)
);

CREATE INDEX shared_group_members_jid ON shared_group_members (jid);

CREATE TABLE shared_groups_version (
    id      INTEGER PRIMARY KEY,
    version BIGINT NOT NULL
);

INSERT INTO shared_groups_version (id, version) VALUES (1, 0);
