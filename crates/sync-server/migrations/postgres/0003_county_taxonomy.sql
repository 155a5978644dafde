-- The county's request categories and departments as edited on the dashboard (as SQLite's 0004):
-- one row holding the whole taxonomy as JSON, with its version, raised on every edit.
CREATE TABLE county_taxonomy (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
