-- vCards (XEP-0054) and private XML storage (XEP-0049), issue 23.
--
-- One vCard per account: the <vCard xmlns='vcard-temp'/> element as the
-- owner set it (serialised again by the server, namespace declared on it),
-- and what the account's presence advertises of its photo (XEP-0153), so
-- that a login reads a few bytes rather than the whole vCard. Package vcard
-- says what the photo values mean.
--
-- Private XML: one row per account and namespace, the elements of that
-- namespace the owner stored, each declaring its namespace.
--
-- An account's rows go with it.

CREATE TABLE vcards (
    jid   TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE, -- owner, bare JID
    vcard TEXT NOT NULL, -- the vCard element
    photo TEXT NOT NULL  -- the photo as presence advertises it (package vcard)
);

CREATE TABLE private_xml (
    jid TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE, -- owner, bare JID
    ns  TEXT NOT NULL,  -- the namespace of the stored elements
    xml TEXT NOT NULL,  -- the elements, serialised
    PRIMARY KEY (jid, ns)
);
