-- Doorstep relay server on SQLite, schema 1.

-- Who is who -----------------------------------------------------------------------------------
CREATE TABLE grids (
    grid_id   TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    community TEXT NOT NULL,
    street    TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE members (
    member_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('grid_worker', 'volunteer', 'department_staff', 'supervisor', 'admin')),
    department    TEXT,                       -- department staff only
    scope_version INTEGER NOT NULL DEFAULT 1, -- raised whenever the member's scope changes
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- The grids a grid worker works, or a supervisor supervises.
CREATE TABLE member_grids (
    member_id TEXT NOT NULL,
    grid_id   TEXT NOT NULL,
    PRIMARY KEY (member_id, grid_id)
) WITHOUT ROWID;
CREATE INDEX member_grids_by_grid ON member_grids (grid_id);

CREATE TABLE enrolment_codes (
    code_hash  BLOB PRIMARY KEY,   -- SHA-256 of the code; the code itself is never stored
    member_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;

CREATE TABLE devices (
    device_id          TEXT PRIMARY KEY,
    member_id          TEXT NOT NULL,
    name               TEXT NOT NULL,
    actor_id           TEXT NOT NULL UNIQUE,   -- the Automerge actor this device writes with
    token_hash         BLOB NOT NULL UNIQUE,   -- SHA-256 of the device token
    enrolled_at        INTEGER NOT NULL,
    revoked_at         INTEGER,
    last_seen_at       INTEGER,
    last_unsynced      INTEGER,
    scope_version_seen INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX devices_by_member ON devices (member_id);

-- Documents --------------------------------------------------------------------------------------
-- One row per document, with the facts scope rules need, and a snapshot for whole-document sends.
CREATE TABLE documents (
    doc_id         TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('household', 'request')),
    grid_id        TEXT NOT NULL,
    household_id   TEXT,            -- requests: the household concerned
    department     TEXT,            -- requests: where it is dispatched
    assignee       TEXT,            -- requests: who holds it
    heads          BLOB NOT NULL,
    snapshot       BLOB NOT NULL,   -- save() of the whole document as of last_seq
    stored_bytes   INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX documents_by_grid ON documents (grid_id);
CREATE INDEX documents_by_department ON documents (department);
CREATE INDEX documents_by_assignee ON documents (assignee);
CREATE INDEX documents_by_household ON documents (household_id);
CREATE INDEX documents_by_last_seq ON documents (last_seq);

CREATE TABLE doc_helpers (
    doc_id    TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (doc_id, member_id)
) WITHOUT ROWID;
CREATE INDEX doc_helpers_by_member ON doc_helpers (member_id);

-- The change log: every change ever stored, in commit order. `seq` is the cursor devices keep.
CREATE TABLE changes (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id        TEXT NOT NULL,
    hash          BLOB NOT NULL UNIQUE,
    bytes         BLOB NOT NULL,
    origin_device TEXT,             -- NULL for changes the server wrote (import, demo, dashboard)
    received_at   INTEGER NOT NULL
);
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

-- Which documents each device holds (was sent whole, or created).
CREATE TABLE device_docs (
    device_id TEXT NOT NULL,
    doc_id    TEXT NOT NULL,
    PRIMARY KEY (device_id, doc_id)
) WITHOUT ROWID;

-- Administrative actions, for the audit trail.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
