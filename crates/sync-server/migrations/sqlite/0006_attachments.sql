-- Attachments (photos, scanned forms) referenced from documents by SHA-256: the bytes in the
-- database as chunks, so an upload cut at 90 % continues from 90 % and backups stay whole.
-- A blob becomes visible (complete = 1) only after the whole was checked against its hash.
CREATE TABLE attachments (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    received   INTEGER NOT NULL DEFAULT 0,
    complete   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE attachment_chunks (
    hash       TEXT NOT NULL REFERENCES attachments (hash),
    start_byte INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    PRIMARY KEY (hash, start_byte)
);

-- Small previews the server makes of complete images, for devices that save bandwidth.
CREATE TABLE attachment_thumbnails (
    hash       TEXT PRIMARY KEY REFERENCES attachments (hash),
    media_type TEXT NOT NULL,
    bytes      BLOB NOT NULL
);
