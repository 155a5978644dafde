-- Doorstep device replica, schema 1.
-- Documents are stored as a compacted Automerge snapshot plus the incremental changes since.
-- Everything under "index tables" is derived from the documents and can be rebuilt.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE documents (
    doc_id         TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('household', 'request')),
    snapshot       BLOB,                -- last compacted save(); NULL before the first compaction
    snapshot_bytes INTEGER NOT NULL DEFAULT 0,
    heads          BLOB NOT NULL,       -- sorted 32-byte change hashes after every stored change
    change_rows    INTEGER NOT NULL DEFAULT 0,
    change_bytes   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Changes since the snapshot, in the order they were stored.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY,
    doc_id TEXT NOT NULL,
    bytes  BLOB NOT NULL
);
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

-- Local changes the server has not yet acknowledged. A row leaves only on acknowledgement.
CREATE TABLE pending (
    doc_id TEXT NOT NULL,
    hash   BLOB NOT NULL,
    PRIMARY KEY (doc_id, hash)
) WITHOUT ROWID;

-- Index tables -------------------------------------------------------------------------------

CREATE TABLE household_ix (
    household_id   TEXT PRIMARY KEY,
    grid_id        TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    address_line   TEXT NOT NULL,
    resident_count INTEGER NOT NULL,
    last_visit_at  INTEGER,
    has_conflict   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX household_ix_grid ON household_ix (grid_id, last_visit_at);

CREATE TABLE household_tag_ix (
    tag          TEXT NOT NULL,
    household_id TEXT NOT NULL,
    PRIMARY KEY (tag, household_id)
) WITHOUT ROWID;
CREATE INDEX household_tag_ix_household ON household_tag_ix (household_id);

CREATE TABLE request_ix (
    request_id   TEXT PRIMARY KEY,
    household_id TEXT,
    grid_id      TEXT NOT NULL,
    category     TEXT NOT NULL,
    status       TEXT NOT NULL,
    is_open      INTEGER NOT NULL,
    urgency      TEXT NOT NULL,
    title        TEXT NOT NULL,
    raised_at    INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    assignee     TEXT,
    department   TEXT,
    supervised   INTEGER NOT NULL,
    has_conflict INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX request_ix_household ON request_ix (household_id, is_open);
CREATE INDEX request_ix_status ON request_ix (status, due_at);
CREATE INDEX request_ix_category ON request_ix (category, due_at);
CREATE INDEX request_ix_assignee ON request_ix (assignee, due_at);
CREATE INDEX request_ix_due ON request_ix (is_open, due_at);

-- A household's timeline: its visits and its requests.
CREATE TABLE timeline_ix (
    household_id TEXT NOT NULL,
    item_kind    TEXT NOT NULL CHECK (item_kind IN ('visit', 'request')),
    item_id      TEXT NOT NULL,
    at           INTEGER NOT NULL,
    detail       TEXT NOT NULL,   -- visit kind, or request status
    summary      TEXT NOT NULL,
    PRIMARY KEY (household_id, item_kind, item_id)
) WITHOUT ROWID;
CREATE INDEX timeline_ix_order ON timeline_ix (household_id, at DESC);
