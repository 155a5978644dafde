//! The replica's SQLite schema: numbered migration files applied in one transaction each,
//! with the schema version kept in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::{CoreError, Result};

/// Migrations in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/replica/0001_init.sql"),
    include_str!("../../migrations/replica/0002_timeline_by_item.sql"),
    include_str!("../../migrations/replica/0003_same_household.sql"),
    include_str!("../../migrations/replica/0004_attachments.sql"),
    include_str!("../../migrations/replica/0005_attachment_added_at.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database to [`SCHEMA_VERSION`] and returns the version it had. A file written by
/// a newer build is refused rather than misread.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(CoreError::InvalidValue {
            field: "replica file",
            reason: format!(
                "written by a newer Doorstep (schema {current}, this build knows {SCHEMA_VERSION})"
            ),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as u32 + 1)?;
        tx.commit()?;
    }
    Ok(current)
}
