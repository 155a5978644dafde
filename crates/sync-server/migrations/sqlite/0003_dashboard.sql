-- The county web dashboard: staff accounts (each linked to a member, whose role and grids give
-- the scope) and their sign-in sessions. Written in SQL that PostgreSQL accepts as is.
CREATE TABLE staff_accounts (
    account_id      TEXT PRIMARY KEY,
    member_id       TEXT NOT NULL,
    login           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,              -- argon2id, PHC string format
    failed_attempts INTEGER NOT NULL DEFAULT 0, -- consecutive failed sign-ins
    locked_until    INTEGER,                    -- ms; sign-in refused until then
    created_at      INTEGER NOT NULL
);
CREATE INDEX staff_accounts_by_member ON staff_accounts (member_id);

CREATE TABLE staff_sessions (
    session_hash BLOB PRIMARY KEY,   -- SHA-256 of the session cookie; the cookie is never stored
    account_id   TEXT NOT NULL,
    csrf_token   TEXT NOT NULL,      -- every form POST of this session must carry it
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX staff_sessions_by_account ON staff_sessions (account_id);
