-- HTTP file upload (XEP-0363): one row per upload slot granted, which
-- becomes the record of the file once its PUT has completed.
--
-- id is random, chosen by the server; it is both the slot's identifier in
-- the upload URLs and the file's name in the upload directory, so no name
-- a client sent is ever used on disk. filename is the sanitised name from
-- the request, used only as the last segment of the URLs and in
-- Content-Disposition. owner is not a foreign key: with allow_remote the
-- requester may have no local account.

CREATE TABLE httpupload_files (
    id           TEXT PRIMARY KEY,  -- random slot id, also the file name on disk
    owner        TEXT NOT NULL,     -- bare JID of the requester
    filename     TEXT NOT NULL,     -- sanitised file name
    size         BIGINT NOT NULL,   -- announced size in bytes; the PUT must match
    content_type TEXT NOT NULL,     -- announced media type; '' when none was given
    created      BIGINT NOT NULL,   -- slot granted, Unix milliseconds
    expires      BIGINT NOT NULL,   -- the PUT must start before this, Unix milliseconds
    uploaded     BIGINT             -- PUT completed, Unix milliseconds; NULL while a slot
);

-- Quota: the files and outstanding slots of one owner.
CREATE INDEX httpupload_files_owner ON httpupload_files (owner);

-- The sweep: files older than max_age, slots past their expiry.
CREATE INDEX httpupload_files_uploaded ON httpupload_files (uploaded);
CREATE INDEX httpupload_files_expires ON httpupload_files (expires);
