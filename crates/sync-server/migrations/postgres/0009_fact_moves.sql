-- A document can leave a device's scope between two rounds only if its scope facts (kind,
-- grid, household, department, assignee) changed, or if the member's own scope changed (which
-- raises their scope version and makes the device compare its whole scope). This table records
-- the first kind: the log position at which a document's facts last moved. The purge check of
-- an up-to-date device reads the moves after its cursor (almost always none) instead of every
-- document changed since then. Derived data: not exported, rebuilt after an import.
CREATE TABLE fact_moves (
    seq    BIGINT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (seq, doc_id)
);
-- Facts moved before this table existed are not known: count every document as moved at its
-- last change, which is what the purge check looked at until now.
INSERT INTO fact_moves (seq, doc_id) SELECT last_seq, doc_id FROM documents;
