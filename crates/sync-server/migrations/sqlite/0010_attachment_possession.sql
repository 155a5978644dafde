-- Knowing a file's hash is not having it (issue 16). Uploads are staged apart per attachment,
-- document and device, under the size that upload's reference declares; only a whole that
-- matches the hash becomes the attachment's bytes (so a wrong size or a half-finished upload of
-- someone else never blocks the real one).
CREATE TABLE attachment_uploads (
    hash       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    received   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (hash, doc_id, device_id)
);

CREATE TABLE attachment_upload_chunks (
    hash       TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    start_byte INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    PRIMARY KEY (hash, doc_id, device_id, start_byte)
);

-- The documents whose devices uploaded an attachment's whole bytes: it is served only through
-- them.
CREATE TABLE attachment_holders (
    hash      TEXT NOT NULL REFERENCES attachments (hash),
    doc_id    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    proved_at INTEGER NOT NULL,
    PRIMARY KEY (hash, doc_id)
);

-- The devices that uploaded an attachment's whole bytes. A document that a device of these
-- uploaded changes to also serves it: a phone that attached one photo to two records uploads
-- the bytes once.
CREATE TABLE attachment_possessors (
    hash      TEXT NOT NULL REFERENCES attachments (hash),
    device_id TEXT NOT NULL,
    PRIMARY KEY (hash, device_id)
);

-- Attachment bytes each device stored (attachment_quota_bytes_per_device).
CREATE TABLE attachment_usage (
    device_id TEXT PRIMARY KEY,
    bytes     INTEGER NOT NULL DEFAULT 0
);

-- Attachments completed before holders were recorded stay served through any referencing
-- document in scope, as before: nobody recorded who uploaded them.
ALTER TABLE attachments ADD COLUMN open_to_referrers INTEGER NOT NULL DEFAULT 0;
UPDATE attachments SET open_to_referrers = 1 WHERE complete = 1;

-- Keys the server keeps for itself, shared by every node: `attachment_links` signs the
-- short-lived links the dashboard serves photos from, outside the session cookie's path. Not
-- carried by backups (a restored server makes a new one; links last minutes).
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    secret BLOB NOT NULL
);
