-- "Same household as" marks (document schema 2), one row per household document holding the
-- mark; derived from the documents like every index table. Replicas migrated to this version
-- rebuild their indexes once, so marks synced by an older build are indexed too.
CREATE TABLE household_link_ix (
    household_id TEXT NOT NULL,
    link_id      TEXT NOT NULL,
    mark         TEXT NOT NULL,   -- the SameAsMark as JSON
    PRIMARY KEY (household_id, link_id)
) WITHOUT ROWID;
