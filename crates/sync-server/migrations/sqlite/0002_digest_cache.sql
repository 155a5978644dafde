-- The scope digest a device was last sent, with the log position and scope version it was
-- computed at: an idle reconnect reuses it instead of reading the whole scope again.
ALTER TABLE devices ADD COLUMN digest BLOB;
ALTER TABLE devices ADD COLUMN digest_seq INTEGER;
ALTER TABLE devices ADD COLUMN digest_scope_version INTEGER;
