-- The county web dashboard: staff accounts and their sign-in sessions (as SQLite's 0003).
CREATE TABLE staff_accounts (
    account_id      TEXT PRIMARY KEY,
    member_id       TEXT NOT NULL,
    login           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX staff_accounts_by_member ON staff_accounts (member_id);

CREATE TABLE staff_sessions (
    session_hash BYTEA PRIMARY KEY,
    account_id   TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX staff_sessions_by_account ON staff_sessions (account_id);
