-- When each attachment was attached (the attaching device's clock, from its reference), so a
-- listing shows it without reading the document. 0 for rows written before this version; they
-- get it when their document is next indexed.
ALTER TABLE attachments ADD COLUMN added_at INTEGER NOT NULL DEFAULT 0;
