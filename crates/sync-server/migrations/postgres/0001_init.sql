-- Doorstep relay server on PostgreSQL, schema 1. The same tables as the SQLite schema
-- (migrations/sqlite), so `doorstep-server migrate` and backups copy them column for column.

CREATE TABLE grids (
    grid_id   TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    community TEXT NOT NULL,
    street    TEXT NOT NULL
);

CREATE TABLE members (
    member_id     TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('grid_worker', 'volunteer', 'department_staff', 'supervisor', 'admin')),
    department    TEXT,
    scope_version BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL
);

CREATE TABLE member_grids (
    member_id TEXT NOT NULL,
    grid_id   TEXT NOT NULL,
    PRIMARY KEY (member_id, grid_id)
);
CREATE INDEX member_grids_by_grid ON member_grids (grid_id);

CREATE TABLE enrolment_codes (
    code_hash  BYTEA PRIMARY KEY,
    member_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE devices (
    device_id            TEXT PRIMARY KEY,
    member_id            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    actor_id             TEXT NOT NULL UNIQUE,
    token_hash           BYTEA NOT NULL UNIQUE,
    enrolled_at          BIGINT NOT NULL,
    revoked_at           BIGINT,
    last_seen_at         BIGINT,
    last_unsynced        BIGINT,
    scope_version_seen   BIGINT NOT NULL DEFAULT 0,
    digest               BYTEA,
    digest_seq           BIGINT,
    digest_scope_version BIGINT
);
CREATE INDEX devices_by_member ON devices (member_id);
CREATE INDEX devices_by_revoked_at ON devices (revoked_at);

CREATE TABLE documents (
    doc_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('household', 'request')),
    grid_id      TEXT NOT NULL,
    household_id TEXT,
    department   TEXT,
    assignee     TEXT,
    heads        BYTEA NOT NULL,
    snapshot     BYTEA NOT NULL,
    stored_bytes BIGINT NOT NULL,
    last_seq     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX documents_by_grid ON documents (grid_id);
CREATE INDEX documents_by_department ON documents (department);
CREATE INDEX documents_by_assignee ON documents (assignee);
CREATE INDEX documents_by_household ON documents (household_id);
CREATE INDEX documents_by_last_seq ON documents (last_seq);

CREATE TABLE doc_helpers (
    doc_id    TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (doc_id, member_id)
);
CREATE INDEX doc_helpers_by_member ON doc_helpers (member_id);

-- The change log. `seq` is the cursor devices keep. It is not a sequence (whose numbers commit
-- out of order): every transaction that appends takes the row lock on `log_head` first and
-- numbers its changes from it, so numbers commit in order and a cursor never passes a change
-- that commits later. See docs/PROTOCOL.md, "Cursor and concurrent writers".
CREATE TABLE log_head (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO log_head (id, seq) VALUES (1, 0);

CREATE TABLE changes (
    seq           BIGINT PRIMARY KEY,
    doc_id        TEXT NOT NULL,
    hash          BYTEA NOT NULL UNIQUE,
    bytes         BYTEA NOT NULL,
    origin_device TEXT,
    received_at   BIGINT NOT NULL
);
CREATE INDEX changes_by_doc ON changes (doc_id, seq);

CREATE TABLE device_docs (
    device_id TEXT NOT NULL,
    doc_id    TEXT NOT NULL,
    PRIMARY KEY (device_id, doc_id)
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
