-- Staff can be removed (issue 16), as SQLite's 0011.
ALTER TABLE staff_accounts ADD COLUMN disabled_at BIGINT;
ALTER TABLE members ADD COLUMN disabled_at BIGINT;
