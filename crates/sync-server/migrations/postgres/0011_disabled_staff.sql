-- Staff can be removed (issue 16), as SQLite's 0011.
ALTER TABLE staff_accounts ADD COLUMN disabled_at BIGINT;
ALTER TABLE members ADD COLUMN disabled_at BIGINT;
CREATE TABLE unknown_sign_ins (
    login           TEXT PRIMARY KEY,
    failed_attempts BIGINT NOT NULL,
    locked_until    BIGINT,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX unknown_sign_ins_by_age ON unknown_sign_ins (updated_at);
