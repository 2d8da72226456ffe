-- Reserved room nicknames (XEP-0045 §7.12, issue 25): the nickname a
-- registered member (or any affiliated JID) has reserved in a room, as
-- Openfire's ofMucMember keeps it. '' when none is reserved. It lives on
-- the affiliation row because a reservation goes with the affiliation: a
-- JID whose affiliation is removed loses its nickname too.

ALTER TABLE muc_affiliations ADD COLUMN nick TEXT NOT NULL DEFAULT '';
