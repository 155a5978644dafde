-- Staff can be removed (issue 16): a disabled dashboard account cannot sign in and has no
-- sessions; a disabled member's devices are revoked and its accounts disabled. Nothing is
-- deleted, so the audit trail keeps who did what.
ALTER TABLE staff_accounts ADD COLUMN disabled_at INTEGER;
ALTER TABLE members ADD COLUMN disabled_at INTEGER;
-- Failed sign-ins of logins that have no (enabled) account, counted and locked exactly like
-- staff_accounts' so that an unknown login answers as a known one, on every node. Transient:
-- not exported; rows idle for a day are dropped.
CREATE TABLE unknown_sign_ins (
    login           TEXT PRIMARY KEY,
    failed_attempts INTEGER NOT NULL,
    locked_until    INTEGER,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX unknown_sign_ins_by_age ON unknown_sign_ins (updated_at);
