package storage

// ArchiveQuerySQL is archiveQuerySQL, for TestArchivePlans, which
// EXPLAINs exactly the statement Query runs.
var ArchiveQuerySQL = archiveQuerySQL
