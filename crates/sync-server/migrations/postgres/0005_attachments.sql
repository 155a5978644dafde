-- Attachments (as SQLite's 0006): bytes as chunks, visible only once checked whole.
CREATE TABLE attachments (
    hash       TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    media_type TEXT NOT NULL,
    received   BIGINT NOT NULL DEFAULT 0,
    complete   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE attachment_chunks (
    hash       TEXT NOT NULL REFERENCES attachments (hash),
    start_byte BIGINT NOT NULL,
    bytes      BYTEA NOT NULL,
    PRIMARY KEY (hash, start_byte)
);

CREATE TABLE attachment_thumbnails (
    hash       TEXT PRIMARY KEY REFERENCES attachments (hash),
    media_type TEXT NOT NULL,
    bytes      BYTEA NOT NULL
);
