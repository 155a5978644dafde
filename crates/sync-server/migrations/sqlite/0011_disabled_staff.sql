-- Staff can be removed (issue 16): a disabled dashboard account cannot sign in and has no
-- sessions; a disabled member's devices are revoked and its accounts disabled. Nothing is
-- deleted, so the audit trail keeps who did what.
ALTER TABLE staff_accounts ADD COLUMN disabled_at INTEGER;
ALTER TABLE members ADD COLUMN disabled_at INTEGER;
