-- Multi-user chat rooms' XEP-0313 message archives: whether a room
-- archives its group chat messages (muc#roomconfig_enablearchiving). The
-- archive itself is kept elsewhere; this is the room's setting only.
--
-- Rooms stored before this step are persistent ones, whose default is to
-- archive.

ALTER TABLE muc_rooms ADD COLUMN archive BOOLEAN NOT NULL DEFAULT TRUE;
