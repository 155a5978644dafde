-- Sync rounds read documents' facts (grid, last_seq…) far more often than their snapshots.
-- In SQLite a column stored after a large blob is reached by walking the blob's overflow pages,
-- so the snapshot moves to the end of the row: the facts are read from the row's first page.
-- The table is rebuilt with the same columns (names unchanged), then its indexes.
CREATE TABLE documents_rebuilt (
    doc_id         TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('household', 'request')),
    grid_id        TEXT NOT NULL,
    household_id   TEXT,            -- requests: the household concerned
    department     TEXT,            -- requests: where it is dispatched
    assignee       TEXT,            -- requests: who holds it
    heads          BLOB NOT NULL,
    stored_bytes   INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    snapshot       BLOB NOT NULL    -- save() of the whole document as of last_seq; keep it last
) WITHOUT ROWID;
INSERT INTO documents_rebuilt (doc_id, kind, grid_id, household_id, department, assignee, heads,
                               stored_bytes, last_seq, updated_at, snapshot)
    SELECT doc_id, kind, grid_id, household_id, department, assignee, heads,
           stored_bytes, last_seq, updated_at, snapshot
    FROM documents;
DROP TABLE documents;
ALTER TABLE documents_rebuilt RENAME TO documents;

-- Catch-up reads the log from the documents in a device's scope changed after its cursor, not
-- from every change in the county after it: these answer "documents of these grids (or of this
-- department) changed after seq N" from the index alone.
CREATE INDEX documents_by_grid_seq ON documents (grid_id, last_seq);
CREATE INDEX documents_by_department_seq ON documents (department, last_seq);
CREATE INDEX documents_by_assignee ON documents (assignee);
CREATE INDEX documents_by_household ON documents (household_id);
CREATE INDEX documents_by_last_seq ON documents (last_seq);
