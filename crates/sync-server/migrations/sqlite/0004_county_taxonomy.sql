-- The county's request categories and departments as edited on the dashboard. One row: the
-- whole taxonomy as JSON (the format of doorstep-core's data/taxonomy.json), with its version,
-- raised on every edit; devices older than it receive it with their next sync. No row: the
-- taxonomy shipped in the binary is in force. Written in SQL that PostgreSQL accepts as is.
CREATE TABLE county_taxonomy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
