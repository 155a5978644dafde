-- Attachments (photos, scanned forms): the bytes beside the documents, in the same encrypted
-- file, deduplicated by content hash (SHA-256 hex).
CREATE TABLE attachments (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    name       TEXT NOT NULL,
    -- 'local': attached on this device, to upload; 'remote': known from a received document.
    origin     TEXT NOT NULL,
    -- Bytes held here, as consecutive parts from offset 0 (= size when whole).
    stored     INTEGER NOT NULL DEFAULT 0,
    -- Bytes the server has confirmed holding (uploads of local attachments).
    uploaded   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE attachment_parts (
    hash   TEXT NOT NULL REFERENCES attachments (hash) ON DELETE CASCADE,
    offset INTEGER NOT NULL,
    bytes  BLOB NOT NULL,
    PRIMARY KEY (hash, offset)
);

-- Which documents reference which attachments: kept with the index rows, so an attachment
-- leaves with the last document that references it.
CREATE TABLE attachment_refs (
    hash   TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (hash, doc_id)
);
CREATE INDEX attachment_refs_doc ON attachment_refs (doc_id);
