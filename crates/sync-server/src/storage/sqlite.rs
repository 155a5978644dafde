//! The embedded default: one SQLite file in the data directory (WAL, `synchronous = FULL`, so
//! an acknowledged upload survives a crash or power loss).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use automerge::{ActorId, AutoCommit, ChangeHash};
use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{Code, DeviceId, DocumentId, GridId, HouseholdId, MemberId, RequestId};
use doorstep_core::model::attachment::{AttachmentRef, ContentHash};
use doorstep_core::sync::message::{DocSyncMessage, ManifestEntry, SyncReply, SyncRequest};
use doorstep_core::time::Timestamp;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::scope::{Role, Scope};
use crate::storage::attachment::{self, BlobStatus, BlobTx, ChunkOutcome};
use crate::storage::engine::{
    self, DocumentRow, LogRow, LogTx, ScopeRule, Snapshot, StoredRow, Unheld, kind, parse,
};
use crate::storage::{
    Authenticated, Device, DeviceRow, EnrolError, Enrolled, GridRow, MemberRow, Storage, StorageError,
    SyncFailure, SyncLimits, Synced,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_digest_cache.sql"),
    include_str!("../../migrations/sqlite/0003_dashboard.sql"),
    include_str!("../../migrations/sqlite/0004_county_taxonomy.sql"),
    // Numbered by position in this list (user_version), so the order is the history.
    include_str!("../../migrations/sqlite/0006_attachments.sql"),
    include_str!("../../migrations/sqlite/0008_catch_up_by_scope.sql"),
    include_str!("../../migrations/sqlite/0009_fact_moves.sql"),
    include_str!("../../migrations/sqlite/0010_attachment_possession.sql"),
    include_str!("../../migrations/sqlite/0011_disabled_staff.sql"),
    include_str!("../../migrations/sqlite/0012_device_earlier_actors.sql"),
];

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "doorstep.db";

/// Storage on one SQLite file. One connection behind a mutex: SQLite has one writer at a time
/// anyway, and every call is short.
pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

use crate::storage::engine::damaged;
use crate::storage::transfer::{BATCH_ROWS, Cell, RowSink, RowSource, TABLES, Table};

impl SqliteStorage {
    /// Opens (or creates) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| damaged(format!("cannot create {}: {e}", data_dir.display())))?;
        Self::open_file(&data_dir.join(DATABASE_FILE))
    }

    /// Opens (or creates) the database file at `path`.
    pub fn open_file(path: &Path) -> Result<Self, StorageError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Every sync round reads index and document pages of its device's scope; a page cache
        // that holds a county's working set saves a read system call per page (64 MiB).
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let current = usize::try_from(current).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(damaged(format!("database schema {current} is newer than this server knows")));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// Caps the database at about `max_bytes` (SQLite's `max_page_count`): past it a write fails
    /// with "database or disk is full" and is rolled back, as on a full disk, before the disk
    /// itself fills.
    pub fn limit_size(&self, max_bytes: u64) -> Result<(), StorageError> {
        let conn = self.lock();
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = i64::try_from(max_bytes).unwrap_or(i64::MAX) / page_size.max(512);
        conn.query_row(&format!("PRAGMA max_page_count = {}", pages.max(1)), [], |_| Ok(()))?;
        Ok(())
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite rolls
        // it back), so the connection is safe to keep using.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

// ---- the sync engine's primitives over SQLite ------------------------------------------------

/// The SQL condition (on `documents d`) matching the documents a scope rule covers.
fn rule_sql(rule: &ScopeRule) -> (&'static str, Vec<Value>) {
    match rule {
        ScopeRule::All => ("1 = 1", vec![]),
        ScopeRule::Grids(member) => (
            "d.grid_id IN (SELECT grid_id FROM member_grids WHERE member_id = ?)",
            vec![Value::Text(member.to_string())],
        ),
        ScopeRule::Helper(member) => (
            "((d.kind = 'household' AND d.doc_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ?))
              OR (d.kind = 'request' AND (d.assignee = ?
                  OR d.household_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ?))))",
            vec![Value::Text(member.to_string()); 3],
        ),
        ScopeRule::Department(department) => {
            ("(d.kind = 'request' AND d.department = ?)", vec![Value::Text(department.clone())])
        }
    }
}

/// A device joined with its member: id, member, actor, revoked at, scope version seen, role,
/// department, scope version.
type DeviceAuthRow = (String, String, String, Option<i64>, i64, String, Option<String>, i64);

/// A device's cached digest columns: digest, log position, scope version.
type CachedDigestRow = (Option<Vec<u8>>, Option<i64>, Option<i64>);

/// Runs a sync round that uploads nothing and reports no purge, committing it without waiting
/// for the disk (`synchronous = NORMAL` for this one commit; WAL keeps it atomic). Such a round
/// writes only bookkeeping the server can lose without losing anything of a resident's: which
/// documents the device was sent (lost, they are sent again whole), the scope version it saw
/// (lost, the next round compares the whole scope), its cached digest and last contact. The next
/// durable commit syncs the WAL, these frames included. An idle morning storm then costs no
/// fsync per device.
fn bookkeeping_round<T>(
    conn: &mut Connection,
    round: impl FnOnce(&mut dyn LogTx) -> Result<T, SyncFailure>,
) -> Result<T, SyncFailure> {
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(StorageError::from)?;
    let outcome = (|| {
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let reply = round(&mut Sql(&tx))?;
        tx.commit().map_err(StorageError::from)?;
        Ok(reply)
    })();
    // Every other write stays durable, whatever happened above.
    conn.pragma_update(None, "synchronous", "FULL").map_err(StorageError::from)?;
    outcome
}

/// One open SQLite transaction, as the sync engine sees it.
struct Sql<'c>(&'c Connection);

impl LogTx for Sql<'_> {
    fn holds(&mut self, device: DeviceId, doc: DocumentId) -> Result<bool, StorageError> {
        Ok(self.0.query_row(
            "SELECT EXISTS (SELECT 1 FROM device_docs WHERE device_id = ?1 AND doc_id = ?2)",
            params![device.to_string(), doc.to_string()],
            |r| r.get(0),
        )?)
    }

    fn set_held(&mut self, device: DeviceId, doc: DocumentId, held: bool) -> Result<(), StorageError> {
        let sql = if held {
            "INSERT INTO device_docs (device_id, doc_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM device_docs WHERE device_id = ?1 AND doc_id = ?2"
        };
        self.0.prepare_cached(sql)?.execute(params![device.to_string(), doc.to_string()])?;
        Ok(())
    }

    fn helps(&mut self, member: MemberId, household: HouseholdId) -> Result<bool, StorageError> {
        Ok(self.0.query_row(
            "SELECT EXISTS (SELECT 1 FROM doc_helpers WHERE doc_id = ?1 AND member_id = ?2)",
            params![household.to_string(), member.to_string()],
            |r| r.get(0),
        )?)
    }

    fn load(&mut self, doc: DocumentId) -> Result<Option<StoredRow>, StorageError> {
        type Columns = (Vec<u8>, i64, String, String, Option<String>, Option<String>, Option<String>);
        let row: Option<Columns> = self
            .0
            .prepare_cached(
                "SELECT snapshot, stored_bytes, kind, grid_id, household_id, department, assignee
                 FROM documents WHERE doc_id = ?1",
            )?
            .query_row([doc.to_string()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .optional()?;
        row.map(|(snapshot, bytes, kind, grid, household, department, assignee)| {
            StoredRow::from_columns(
                snapshot,
                bytes,
                &kind,
                &grid,
                household.as_deref(),
                department.as_deref(),
                assignee.as_deref(),
            )
        })
        .transpose()
    }

    fn stored_heads(&mut self, doc: DocumentId) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .0
            .prepare_cached("SELECT heads FROM documents WHERE doc_id = ?1")?
            .query_row([doc.to_string()], |r| r.get(0))
            .optional()?)
    }

    fn append_changes(
        &mut self,
        doc: DocumentId,
        changes: &[(ChangeHash, Vec<u8>)],
        origin: Option<DeviceId>,
        now: Timestamp,
    ) -> Result<Option<(i64, usize)>, StorageError> {
        let mut insert = self.0.prepare_cached(
            "INSERT INTO changes (doc_id, hash, bytes, origin_device, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (hash) DO NOTHING",
        )?;
        let mut last = None;
        let mut added = 0usize;
        for (hash, bytes) in changes {
            if insert.execute(params![
                doc.to_string(),
                hash.0.as_slice(),
                bytes,
                origin.map(|d| d.to_string()),
                now.millis()
            ])? == 1
            {
                last = Some(self.0.last_insert_rowid());
                added += bytes.len();
            }
        }
        Ok(last.map(|seq| (seq, added)))
    }

    fn put_document(&mut self, row: &DocumentRow<'_>) -> Result<(), StorageError> {
        let facts = row.facts;
        self.0.prepare_cached(
            "INSERT INTO documents (doc_id, kind, grid_id, household_id, department, assignee, heads, snapshot,
                                    stored_bytes, last_seq, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, household_id = excluded.household_id,
                 department = excluded.department, assignee = excluded.assignee, heads = excluded.heads,
                 snapshot = excluded.snapshot, stored_bytes = documents.stored_bytes + ?12,
                 last_seq = excluded.last_seq, updated_at = excluded.updated_at",
        )?
        .execute(params![
            row.doc.to_string(),
            facts.kind.as_str(),
            facts.grid.to_string(),
            facts.household.map(|h| h.to_string()),
            facts.department.as_ref().map(|d| d.as_str().to_owned()),
            facts.assignee.map(|a| a.to_string()),
            row.heads,
            row.snapshot,
            row.snapshot.len() as i64,
            row.last_seq,
            row.now.millis(),
            row.added as i64,
        ])?;
        Ok(())
    }

    fn helpers(&mut self, doc: DocumentId) -> Result<HashSet<MemberId>, StorageError> {
        let mut stmt = self.0.prepare_cached("SELECT member_id FROM doc_helpers WHERE doc_id = ?1")?;
        let rows = stmt.query_map([doc.to_string()], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse(&r?, "member id")).collect()
    }

    fn set_helpers(&mut self, doc: DocumentId, helpers: &HashSet<MemberId>) -> Result<(), StorageError> {
        self.0.execute("DELETE FROM doc_helpers WHERE doc_id = ?1", [doc.to_string()])?;
        for helper in helpers {
            self.0.execute(
                "INSERT INTO doc_helpers (doc_id, member_id) VALUES (?1, ?2)",
                params![doc.to_string(), helper.to_string()],
            )?;
        }
        Ok(())
    }

    fn bump_scope_version(&mut self, member: MemberId) -> Result<(), StorageError> {
        self.0.execute(
            "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = ?1",
            [member.to_string()],
        )?;
        Ok(())
    }

    fn max_seq(&mut self) -> Result<i64, StorageError> {
        Ok(self.0.query_row("SELECT COALESCE(max(seq), 0) FROM changes", [], |r| r.get(0))?)
    }

    fn snapshots(&mut self, rule: &ScopeRule, docs: &[DocumentId]) -> Result<Vec<Snapshot>, StorageError> {
        let (cond, args) = rule_sql(rule);
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT d.kind, d.snapshot FROM documents d WHERE {cond} AND d.doc_id = ?"
        ))?;
        let mut out = Vec::with_capacity(docs.len());
        for id in docs {
            let mut row_args = args.clone();
            row_args.push(Value::Text(id.to_string()));
            let row: Option<(String, Vec<u8>)> =
                stmt.query_row(params_from_iter(row_args), |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            if let Some((k, bytes)) = row {
                out.push(Snapshot { doc: *id, kind: kind(&k)?, bytes });
            }
        }
        Ok(out)
    }

    fn unheld(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        after: Option<DocumentId>,
        limit: usize,
    ) -> Result<Vec<Unheld>, StorageError> {
        let (cond, mut args) = rule_sql(rule);
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT d.doc_id, length(d.snapshot) FROM documents d
             WHERE {cond} AND d.doc_id > ?
               AND d.doc_id NOT IN (SELECT doc_id FROM device_docs WHERE device_id = ?)
             ORDER BY d.doc_id LIMIT ?"
        ))?;
        args.push(Value::Text(after.map(|a| a.to_string()).unwrap_or_default()));
        args.push(Value::Text(device.to_string()));
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let rows =
            stmt.query_map(params_from_iter(args), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (id, bytes) = r?;
            Ok(Unheld {
                doc: parse(&id, "document id")?,
                snapshot_bytes: usize::try_from(bytes).unwrap_or(0),
            })
        })
        .collect()
    }

    fn held_outside(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        moved_after: Option<i64>,
    ) -> Result<Vec<DocumentId>, StorageError> {
        let (cond, scope_args) = rule_sql(rule);
        let (sql, mut args) = match moved_after {
            // Driven from the documents whose facts moved after the cursor: almost always none.
            Some(seq) => (
                format!(
                    "SELECT DISTINCT d.doc_id FROM fact_moves m
                         CROSS JOIN device_docs dd ON dd.device_id = ? AND dd.doc_id = m.doc_id
                         CROSS JOIN documents d ON d.doc_id = m.doc_id
                     WHERE m.seq > ? AND NOT ({cond})"
                ),
                vec![Value::Text(device.to_string()), Value::Integer(seq)],
            ),
            None => (
                format!(
                    "SELECT dd.doc_id FROM device_docs dd JOIN documents d ON d.doc_id = dd.doc_id
                     WHERE dd.device_id = ? AND NOT ({cond})"
                ),
                vec![Value::Text(device.to_string())],
            ),
        };
        args.extend(scope_args);
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| r.get::<_, String>(0))?;
        rows.map(|r| parse(&r?, "document id")).collect()
    }

    fn note_facts_moved(&mut self, doc: DocumentId, seq: i64) -> Result<(), StorageError> {
        self.0
            .prepare_cached("INSERT OR IGNORE INTO fact_moves (seq, doc_id) VALUES (?1, ?2)")?
            .execute(params![seq, doc.to_string()])?;
        Ok(())
    }

    fn log_rows(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<LogRow>, StorageError> {
        let (cond, scope_args) = rule_sql(rule);
        // A scoped device's catch-up starts from the documents in its scope changed after the
        // cursor (an index range per grid, empty when idle) and reads only their changes, so
        // its cost follows its own scope, not the county's activity since its cursor. A
        // county-wide scope reads the log range itself. `CROSS JOIN` fixes the order.
        let from = match rule {
            ScopeRule::All => "changes c CROSS JOIN documents d ON d.doc_id = c.doc_id",
            _ => "documents d CROSS JOIN changes c ON c.doc_id = d.doc_id",
        };
        let sql = format!(
            "SELECT c.seq, c.doc_id, d.kind, c.bytes, c.origin_device, length(d.snapshot),
                    EXISTS (SELECT 1 FROM device_docs dd WHERE dd.device_id = ? AND dd.doc_id = c.doc_id)
             FROM {from}
             WHERE d.last_seq > ? AND c.seq > ? AND c.seq <= ? AND {cond}
             ORDER BY c.seq LIMIT ?"
        );
        let mut args = vec![
            Value::Text(device.to_string()),
            Value::Integer(after),
            Value::Integer(after),
            Value::Integer(upto),
        ];
        args.extend(scope_args);
        args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let mut stmt = self.0.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let origin: Option<String> = row.get(4)?;
            out.push(LogRow {
                seq: row.get(0)?,
                doc: parse(&row.get::<_, String>(1)?, "document id")?,
                kind: kind(&row.get::<_, String>(2)?)?,
                bytes: row.get(3)?,
                origin: origin.map(|o| parse(&o, "device id")).transpose()?,
                snapshot_bytes: usize::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                held: row.get(6)?,
            });
        }
        Ok(out)
    }

    fn heads_in(
        &mut self,
        rule: &ScopeRule,
    ) -> Result<Vec<(DocumentId, DocumentKind, Vec<u8>)>, StorageError> {
        let (cond, args) = rule_sql(rule);
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT d.doc_id, d.kind, d.heads FROM documents d WHERE {cond} ORDER BY d.doc_id"
        ))?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
        })?;
        rows.map(|r| {
            let (id, k, heads) = r?;
            Ok((parse(&id, "document id")?, kind(&k)?, heads))
        })
        .collect()
    }

    fn set_scope_version_seen(&mut self, device: DeviceId, seen: i64) -> Result<(), StorageError> {
        self.0
            .prepare_cached("UPDATE devices SET scope_version_seen = ?2 WHERE device_id = ?1")?
            .execute(params![device.to_string(), seen])?;
        Ok(())
    }

    fn cached_digest(&mut self, device: DeviceId) -> Result<Option<(Vec<u8>, i64, i64)>, StorageError> {
        let row: Option<CachedDigestRow> = self
            .0
            .query_row(
                "SELECT digest, digest_seq, digest_scope_version FROM devices WHERE device_id = ?1",
                [device.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match row {
            Some((Some(bytes), Some(seq), Some(version))) => Some((bytes, seq, version)),
            _ => None,
        })
    }

    fn save_digest(
        &mut self,
        device: DeviceId,
        digest: &[u8],
        seq: i64,
        version: i64,
    ) -> Result<(), StorageError> {
        self.0.execute(
            "UPDATE devices SET digest = ?2, digest_seq = ?3, digest_scope_version = ?4 WHERE device_id = ?1",
            params![device.to_string(), digest, seq, version],
        )?;
        Ok(())
    }

    fn record_contact(
        &mut self,
        device: DeviceId,
        now: Timestamp,
        unsynced: i64,
    ) -> Result<(), StorageError> {
        self.0.execute(
            "UPDATE devices SET last_seen_at = ?2, last_unsynced = ?3 WHERE device_id = ?1",
            params![device.to_string(), now.millis(), unsynced],
        )?;
        Ok(())
    }
}

impl BlobTx for Sql<'_> {
    fn blob(&mut self, hash: &str) -> Result<Option<(i64, i64, bool)>, StorageError> {
        Ok(self
            .0
            .query_row("SELECT size, received, complete FROM attachments WHERE hash = ?1", [hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0))
            })
            .optional()?)
    }

    fn chunks(&mut self, hash: &str, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT start_byte, bytes FROM attachment_chunks
             WHERE hash = ?1 AND start_byte < ?3 AND start_byte + length(bytes) > ?2 ORDER BY start_byte",
        )?;
        let rows = stmt.query_map(params![hash, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn servable(&mut self, hash: &str, doc: &str) -> Result<bool, StorageError> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM attachments a WHERE a.hash = ?1 AND a.complete = 1 AND (a.open_to_referrers = 1
                 OR EXISTS (SELECT 1 FROM attachment_holders h WHERE h.hash = a.hash AND h.doc_id = ?2)
                 OR EXISTS (SELECT 1 FROM changes c JOIN attachment_possessors p ON p.device_id = c.origin_device
                            WHERE c.doc_id = ?2 AND p.hash = a.hash))",
                [hash, doc],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<Option<(i64, i64)>, StorageError> {
        Ok(self
            .0
            .query_row(
                "SELECT size, received FROM attachment_uploads WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
                [hash, doc, device],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn furthest_upload(&mut self, hash: &str) -> Result<Option<(i64, i64)>, StorageError> {
        Ok(self
            .0
            .query_row(
                "SELECT size, received FROM attachment_uploads WHERE hash = ?1 ORDER BY received DESC LIMIT 1",
                [hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn reset_upload(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        size: i64,
        media_type: &str,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0.execute(
            "DELETE FROM attachment_upload_chunks WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
            [hash, doc, device],
        )?;
        self.0.execute(
            "INSERT INTO attachment_uploads (hash, doc_id, device_id, size, media_type, received, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
             ON CONFLICT (hash, doc_id, device_id) DO UPDATE SET size = excluded.size, received = 0,
                 media_type = excluded.media_type",
            params![hash, doc, device, size, media_type, now.millis()],
        )?;
        Ok(())
    }

    fn add_upload_chunk(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        start: i64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        self.0.execute(
            "INSERT INTO attachment_upload_chunks (hash, doc_id, device_id, start_byte, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash, doc, device, start, bytes],
        )?;
        let end = start + i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        self.0.execute(
            "UPDATE attachment_uploads SET received = ?4 WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
            params![hash, doc, device, end],
        )?;
        Ok(())
    }

    fn upload_chunks(&mut self, hash: &str, doc: &str, device: &str) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT bytes FROM attachment_upload_chunks WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3
             ORDER BY start_byte",
        )?;
        let rows = stmt.query_map([hash, doc, device], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn promote_upload(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        size: i64,
        media_type: &str,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0.execute("DELETE FROM attachment_chunks WHERE hash = ?1", [hash])?;
        self.0.execute(
            "INSERT INTO attachments (hash, size, media_type, received, complete, created_at)
             VALUES (?1, ?2, ?3, ?2, 1, ?4)
             ON CONFLICT (hash) DO UPDATE SET size = excluded.size, media_type = excluded.media_type,
                 received = excluded.received, complete = 1",
            params![hash, size, media_type, now.millis()],
        )?;
        self.0.execute(
            "INSERT INTO attachment_chunks (hash, start_byte, bytes)
             SELECT hash, start_byte, bytes FROM attachment_upload_chunks
             WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
            [hash, doc, device],
        )?;
        self.drop_upload(hash, doc, device)
    }

    fn drop_upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<(), StorageError> {
        self.0.execute(
            "DELETE FROM attachment_upload_chunks WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
            [hash, doc, device],
        )?;
        self.0.execute(
            "DELETE FROM attachment_uploads WHERE hash = ?1 AND doc_id = ?2 AND device_id = ?3",
            [hash, doc, device],
        )?;
        Ok(())
    }

    fn add_holder(
        &mut self,
        hash: &str,
        doc: &str,
        device: &str,
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.0.execute(
            "INSERT INTO attachment_holders (hash, doc_id, device_id, proved_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (hash, doc_id) DO NOTHING",
            params![hash, doc, device, now.millis()],
        )?;
        self.0.execute(
            "INSERT INTO attachment_possessors (hash, device_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            [hash, device],
        )?;
        Ok(())
    }

    fn usage(&mut self, device: &str) -> Result<i64, StorageError> {
        Ok(self
            .0
            .query_row("SELECT bytes FROM attachment_usage WHERE device_id = ?1", [device], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn add_usage(&mut self, device: &str, delta: i64) -> Result<(), StorageError> {
        self.0.execute(
            "INSERT INTO attachment_usage (device_id, bytes) VALUES (?1, max(?2, 0))
             ON CONFLICT (device_id) DO UPDATE SET bytes = max(attachment_usage.bytes + ?2, 0)",
            params![device, delta],
        )?;
        Ok(())
    }

    fn thumbnail(&mut self, hash: &str) -> Result<Option<(String, Vec<u8>)>, StorageError> {
        Ok(self
            .0
            .query_row("SELECT media_type, bytes FROM attachment_thumbnails WHERE hash = ?1", [hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    fn put_thumbnail(&mut self, hash: &str, media_type: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.0.execute(
            "INSERT INTO attachment_thumbnails (hash, media_type, bytes) VALUES (?1, ?2, ?3)
             ON CONFLICT (hash) DO UPDATE SET media_type = excluded.media_type, bytes = excluded.bytes",
            params![hash, media_type, bytes],
        )?;
        Ok(())
    }
}

impl Storage for SqliteStorage {
    fn authenticate(&self, token_hash: &[u8; 32]) -> Result<Authenticated, StorageError> {
        let conn = self.lock();
        let row: Option<DeviceAuthRow> = conn
            .query_row(
                "SELECT d.device_id, d.member_id, d.actor_id, d.revoked_at, d.scope_version_seen,
                        m.role, m.department, m.scope_version
                 FROM devices d JOIN members m ON m.member_id = d.member_id WHERE d.token_hash = ?1",
                [token_hash.as_slice()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((device, member, actor, revoked, seen, role, department, version)) = row else {
            return Ok(Authenticated::Unknown);
        };
        let device: DeviceId = parse(&device, "device id")?;
        if revoked.is_some() {
            return Ok(Authenticated::Revoked(device));
        }
        let member: MemberId = parse(&member, "member id")?;
        let mut stmt = conn.prepare_cached("SELECT grid_id FROM member_grids WHERE member_id = ?1")?;
        let grids = stmt
            .query_map([member.to_string()], |r| r.get::<_, String>(0))?
            .map(|g| parse::<GridId>(&g?, "grid id"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt =
            conn.prepare_cached("SELECT actor_id FROM device_earlier_actors WHERE device_id = ?1")?;
        let earlier_actors = stmt
            .query_map([device.to_string()], |r| r.get::<_, String>(0))?
            .map(|a| ActorId::try_from(a?.as_str()).map_err(|_| damaged("actor id")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Authenticated::Device(Device {
            id: device,
            actor: ActorId::try_from(actor.as_str()).map_err(|_| damaged("actor id"))?,
            earlier_actors,
            scope: Scope {
                member,
                role: parse(&role, "role")?,
                grids,
                department: department.and_then(|d| Code::new(d).ok()),
            },
            scope_version: version,
            scope_version_seen: seen,
        }))
    }

    fn enrol_replacing(
        &self,
        code_hash: &[u8; 32],
        actor: &str,
        device_name: &str,
        token: &str,
        previous_token_hash: Option<&[u8; 32]>,
        now: Timestamp,
    ) -> Result<Enrolled, EnrolError> {
        let actor_id = ActorId::try_from(actor).map_err(|_| EnrolError::BadActor)?;
        if actor_id.to_bytes().len() < 16 {
            return Err(EnrolError::BadActor);
        }
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let member: Option<String> = tx
            .query_row(
                "SELECT member_id FROM enrolment_codes WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![code_hash.as_slice(), now.millis()],
                |r| r.get(0),
            )
            .optional()
            .map_err(StorageError::from)?;
        let member = member.ok_or(EnrolError::InvalidCode)?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE actor_id = ?1)",
                [actor_id.to_hex_string()],
                |r| r.get(0),
            )
            .map_err(StorageError::from)?;
        if taken {
            return Err(EnrolError::BadActor);
        }
        let (name, role): (String, String) = tx
            .query_row("SELECT name, role FROM members WHERE member_id = ?1", [&member], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(StorageError::from)?;
        // The device this replica was, proven by its token (PROTOCOL §2.4).
        let previous: Option<(String, String, Option<i64>)> = match previous_token_hash {
            None => None,
            Some(hash) => tx
                .query_row(
                    "SELECT device_id, member_id, revoked_at FROM devices WHERE token_hash = ?1",
                    [hash.as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(StorageError::from)?,
        };
        match &previous {
            Some((_, _, Some(_))) => return Err(EnrolError::PreviousRevoked),
            Some((_, owner, None)) if *owner != member => return Err(EnrolError::PreviousOtherMember),
            _ => {}
        }
        let device = DeviceId::new_random();
        let token_hash = crate::auth::hash_secret(token);
        let device_name: String = device_name.trim().chars().take(64).collect();
        tx.execute(
            "INSERT INTO devices (device_id, member_id, name, actor_id, token_hash, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device.to_string(), member, device_name, actor_id.to_hex_string(), token_hash.as_slice(), now.millis()],
        )
        .map_err(StorageError::from)?;
        tx.execute(
            "UPDATE enrolment_codes SET used_at = ?2 WHERE code_hash = ?1",
            params![code_hash.as_slice(), now.millis()],
        )
        .map_err(StorageError::from)?;
        if let Some((old, _, _)) = &previous {
            tx.execute(
                "INSERT INTO device_earlier_actors (device_id, actor_id)
                 SELECT ?1, actor_id FROM devices WHERE device_id = ?2
                 UNION SELECT ?1, actor_id FROM device_earlier_actors WHERE device_id = ?2",
                params![device.to_string(), old],
            )
            .map_err(StorageError::from)?;
            tx.execute("UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1", params![old, now.millis()])
                .map_err(StorageError::from)?;
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, 'device_replaced', ?3)",
                params![now.millis(), member, format!("{old} -> {device}")],
            )
            .map_err(StorageError::from)?;
        }
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, 'device_enrolled', ?3)",
            params![now.millis(), member, device.to_string()],
        )
        .map_err(StorageError::from)?;
        tx.commit().map_err(StorageError::from)?;
        Ok(Enrolled {
            device_id: device,
            token: token.to_owned(),
            member_id: parse(&member, "member id")?,
            member_name: name,
            role: parse(&role, "role")?,
        })
    }

    fn sync(
        &self,
        device: &Device,
        request: &SyncRequest,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Synced, SyncFailure> {
        // An upload's Automerge work (load, apply, validate, save) is done on the rows read
        // first, outside the lock, so that rounds on other threads write meanwhile; the round
        // then stores it unless its document changed in between.
        let ahead = if engine::uploads_anything(request) {
            let rows = engine::rows_for_uploads(&mut Sql(&self.lock()), request)?;
            engine::check_ahead(device, rows, request, limits)?
        } else {
            Vec::new()
        };
        let mut conn = self.lock();
        // A round that stores nothing of the device's writes only bookkeeping (what it holds,
        // its last contact): see `bookkeeping_round`.
        if engine::uploads_anything(request) || !request.purged.is_empty() {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
            let reply = engine::round(&mut Sql(&tx), device, request, limits, now, true, ahead)?;
            tx.commit().map_err(StorageError::from)?;
            Ok(reply)
        } else {
            bookkeeping_round(&mut conn, |tx| engine::round(tx, device, request, limits, now, true, ahead))
        }
    }

    fn push(
        &self,
        device: &Device,
        cursor: u64,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<SyncReply, SyncFailure> {
        let mut conn = self.lock();
        let request = SyncRequest { cursor, ..SyncRequest::default() };
        bookkeeping_round(&mut conn, |tx| engine::round(tx, device, &request, limits, now, false, Vec::new()))
            .map(|s| s.reply)
    }

    fn manifest(&self, device: &Device) -> Result<Vec<ManifestEntry>, StorageError> {
        engine::manifest(&mut Sql(&self.lock()), device)
    }

    fn repair(
        &self,
        device: &Device,
        messages: &[DocSyncMessage],
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Vec<DocSyncMessage>, SyncFailure> {
        let mut conn = self.lock();
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(StorageError::from)?;
        let replies = engine::repair(&mut Sql(&tx), device, messages, limits, now)?;
        tx.commit().map_err(StorageError::from)?;
        Ok(replies)
    }

    fn write_server_documents(
        &self,
        docs: &mut [(DocumentId, AutoCommit)],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        engine::write_server_documents(&mut Sql(&tx), docs, now)?;
        tx.commit()?;
        Ok(())
    }

    fn document(&self, id: DocumentId) -> Result<Option<AutoCommit>, StorageError> {
        engine::load_document(&mut Sql(&self.lock()), id)
    }

    fn revoked_since(&self, since: Timestamp) -> Result<Vec<DeviceId>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT device_id FROM devices WHERE revoked_at >= ?1")?;
        let rows = stmt.query_map([since.millis()], |r| r.get::<_, String>(0))?;
        rows.map(|r| parse(&r?, "device id")).collect()
    }

    fn create_grid(&self, name: &str, community: &str, street: &str) -> Result<GridId, StorageError> {
        let id = GridId::new_random();
        self.lock().execute(
            "INSERT INTO grids (grid_id, name, community, street) VALUES (?1, ?2, ?3, ?4)",
            params![id.to_string(), name, community, street],
        )?;
        Ok(id)
    }

    fn create_member(
        &self,
        name: &str,
        role: Role,
        department: Option<&Code>,
        now: Timestamp,
    ) -> Result<MemberId, StorageError> {
        let id = MemberId::new_random();
        self.lock().execute(
            "INSERT INTO members (member_id, name, role, department, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id.to_string(),
                name,
                role.as_str(),
                department.map(|d| d.as_str().to_owned()),
                now.millis()
            ],
        )?;
        Ok(id)
    }

    fn set_member_grid(&self, member: MemberId, grid: GridId, assigned: bool) -> Result<bool, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let changed = if assigned {
            tx.execute(
                "INSERT OR IGNORE INTO member_grids (member_id, grid_id) VALUES (?1, ?2)",
                params![member.to_string(), grid.to_string()],
            )?
        } else {
            tx.execute(
                "DELETE FROM member_grids WHERE member_id = ?1 AND grid_id = ?2",
                params![member.to_string(), grid.to_string()],
            )?
        };
        if changed > 0 {
            tx.execute(
                "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = ?1",
                [member.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    fn hand_over_grid(
        &self,
        grid: GridId,
        from: MemberId,
        to: MemberId,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let to_exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE member_id = ?1)",
            [to.to_string()],
            |r| r.get(0),
        )?;
        if !to_exists || from == to {
            return Ok(false);
        }
        let taken = tx.execute(
            "DELETE FROM member_grids WHERE member_id = ?1 AND grid_id = ?2",
            params![from.to_string(), grid.to_string()],
        )?;
        if taken == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR IGNORE INTO member_grids (member_id, grid_id) VALUES (?1, ?2)",
            params![to.to_string(), grid.to_string()],
        )?;
        tx.execute(
            "UPDATE members SET scope_version = scope_version + 1 WHERE member_id IN (?1, ?2)",
            params![from.to_string(), to.to_string()],
        )?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'admin', 'grid_handed_over', ?2)",
            params![now.millis(), format!("{grid} {from} -> {to}")],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn requests_of_household(&self, household: HouseholdId) -> Result<Vec<RequestId>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT doc_id FROM documents WHERE household_id = ?1 AND kind = 'request' ORDER BY doc_id",
        )?;
        let rows = stmt.query_map([household.to_string()], |r| r.get::<_, String>(0))?;
        rows.map(|r| r?.parse().map_err(|_| StorageError::Damaged("a stored request id".into()))).collect()
    }

    fn create_enrolment_code(
        &self,
        member: MemberId,
        code_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StorageError> {
        let conn = self.lock();
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE member_id = ?1 AND disabled_at IS NULL)",
            [member.to_string()],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO enrolment_codes (code_hash, member_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![code_hash.as_slice(), member.to_string(), now.millis(), expires_at.millis()],
        )?;
        Ok(true)
    }

    fn revoke_device(&self, device: DeviceId, now: Timestamp) -> Result<bool, StorageError> {
        let conn = self.lock();
        let changed = conn.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
            params![device.to_string(), now.millis()],
        )?;
        if changed > 0 {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, 'admin', 'device_revoked', ?2)",
                params![now.millis(), device.to_string()],
            )?;
        }
        Ok(changed > 0)
    }

    fn grids(&self) -> Result<Vec<GridRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT grid_id, name, community, street FROM grids ORDER BY street, community, name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.map(|r| {
            let (id, name, community, street) = r?;
            Ok(GridRow { id: parse(&id, "grid id")?, name, community, street })
        })
        .collect()
    }

    fn members(&self) -> Result<Vec<MemberRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT m.member_id, m.name, m.role, m.department,
                    (SELECT group_concat(grid_id) FROM member_grids g WHERE g.member_id = m.member_id)
             FROM members m ORDER BY m.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        rows.map(|r| {
            let (id, name, role, department, grids) = r?;
            Ok(MemberRow {
                id: parse(&id, "member id")?,
                name,
                role: parse(&role, "role")?,
                department,
                grids: grids
                    .unwrap_or_default()
                    .split(',')
                    .filter(|g| !g.is_empty())
                    .filter_map(|g| g.parse().ok())
                    .collect(),
            })
        })
        .collect()
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT device_id, member_id, name, enrolled_at, revoked_at, last_seen_at, last_unsynced
             FROM devices ORDER BY enrolled_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get(6)?,
            ))
        })?;
        rows.map(|r| {
            let (id, member, name, enrolled, revoked, seen, unsynced) = r?;
            Ok(DeviceRow {
                id: parse(&id, "device id")?,
                member_id: parse(&member, "member id")?,
                name,
                enrolled_at: Timestamp(enrolled),
                revoked_at: revoked.map(Timestamp),
                last_seen_at: seen.map(Timestamp),
                last_unsynced: unsynced,
            })
        })
        .collect()
    }

    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.lock().query_row(
            "SELECT NOT EXISTS (SELECT 1 FROM grids) AND NOT EXISTS (SELECT 1 FROM members)
                    AND NOT EXISTS (SELECT 1 FROM documents)",
            [],
            |r| r.get(0),
        )?)
    }

    fn export(&self, sink: &mut RowSink<'_>) -> Result<(), StorageError> {
        let mut conn = self.lock();
        // One read transaction: the whole export is one snapshot, even beside a running server.
        let tx = conn.transaction()?;
        for table in TABLES {
            let mut stmt = tx.prepare(&format!(
                "SELECT {} FROM {} ORDER BY {}",
                table.column_list(),
                table.name,
                table.key_list()
            ))?;
            let mut rows = stmt.query([])?;
            let mut batch = Vec::with_capacity(BATCH_ROWS);
            while let Some(row) = rows.next()? {
                let mut cells = Vec::with_capacity(table.columns.len());
                for i in 0..table.columns.len() {
                    cells.push(match row.get_ref(i)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(v) => Cell::Int(v),
                        ValueRef::Real(v) => Cell::Int(v as i64),
                        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                    });
                }
                batch.push(cells);
                if batch.len() == BATCH_ROWS {
                    sink(table, &batch)?;
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                sink(table, &batch)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn import(&self, replace: bool, fill: &mut RowSource<'_>) -> Result<(), StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if replace {
            for table in TABLES.iter().rev() {
                tx.execute(&format!("DELETE FROM {}", table.name), [])?;
            }
        }
        fill(&mut |table: &Table, rows: &[Vec<Cell>]| {
            let placeholders = vec!["?"; table.columns.len()].join(", ");
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO {} ({}) VALUES ({placeholders})",
                table.name,
                table.column_list()
            ))?;
            for row in rows {
                stmt.execute(params_from_iter(row.iter().map(|cell| match cell {
                    Cell::Null => Value::Null,
                    Cell::Int(v) => Value::Integer(*v),
                    Cell::Text(t) => Value::Text(t.clone()),
                    Cell::Blob(b) => Value::Blob(b.clone()),
                })))?;
            }
            Ok(())
        })?;
        // Derived from the documents, not exported: every document counts as moved at its last
        // change, so devices enrolled before the import check each one once.
        tx.execute_batch(
            "DELETE FROM fact_moves;
             INSERT INTO fact_moves (seq, doc_id) SELECT last_seq, doc_id FROM documents;",
        )?;
        tx.commit()?;
        Ok(())
    }

    fn row_counts(&self) -> Result<BTreeMap<&'static str, u64>, StorageError> {
        let conn = self.lock();
        let mut out = BTreeMap::new();
        for table in TABLES {
            let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| r.get(0))?;
            out.insert(table.name, n.unsigned_abs());
        }
        Ok(out)
    }

    fn attachment_in_scope(
        &self,
        device: &Device,
        doc: DocumentId,
        hash: &ContentHash,
    ) -> Result<Option<AttachmentRef>, StorageError> {
        attachment::in_scope(&mut Sql(&self.lock()), device, doc, hash)
    }

    fn attachment_status(&self, hash: &ContentHash) -> Result<Option<BlobStatus>, StorageError> {
        attachment::blob_status(&mut Sql(&self.lock()), hash)
    }

    fn attachment_upload_status(
        &self,
        reference: &AttachmentRef,
        doc: DocumentId,
        device: DeviceId,
    ) -> Result<BlobStatus, StorageError> {
        attachment::upload_status(&mut Sql(&self.lock()), reference, doc, device)
    }

    fn attachment_servable(&self, hash: &ContentHash, doc: DocumentId) -> Result<bool, StorageError> {
        attachment::servable(&mut Sql(&self.lock()), hash, doc)
    }

    fn put_attachment_chunk(
        &self,
        reference: &AttachmentRef,
        doc: DocumentId,
        device: DeviceId,
        offset: u64,
        chunk: &[u8],
        quota: u64,
        now: Timestamp,
    ) -> Result<ChunkOutcome, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome =
            attachment::put_chunk(&mut Sql(&tx), reference, doc, device, offset, chunk, quota, now)?;
        tx.commit()?;
        Ok(outcome)
    }

    fn attachment_range(
        &self,
        hash: &ContentHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        attachment::read_range(&mut Sql(&tx), hash, offset, len)
    }

    fn attachment_thumbnail(&self, hash: &ContentHash) -> Result<Option<(String, Vec<u8>)>, StorageError> {
        Sql(&self.lock()).thumbnail(&hash.to_string())
    }

    fn put_attachment_thumbnail(
        &self,
        hash: &ContentHash,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        Sql(&self.lock()).put_thumbnail(&hash.to_string(), media_type, bytes)
    }

    fn document_heads(&self) -> Result<Vec<(DocumentId, Vec<u8>)>, StorageError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT doc_id, heads FROM documents ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        rows.map(|r| {
            let (id, heads) = r?;
            Ok((parse(&id, "document id")?, heads))
        })
        .collect()
    }

    fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError> {
        let conn = self.lock();
        let select = "SELECT secret FROM server_secrets WHERE name = ?1";
        // Read first: a server on a read-only database (which still serves reads) must start.
        if let Some(secret) = conn.query_row(select, [name], |r| r.get(0)).optional()? {
            return Ok(secret);
        }
        conn.execute(
            "INSERT INTO server_secrets (name, secret) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, fresh],
        )?;
        Ok(conn.query_row(select, [name], |r| r.get(0))?)
    }

    fn latest_seq(&self) -> Result<u64, StorageError> {
        let seq: i64 =
            self.lock().query_row("SELECT COALESCE(max(seq), 0) FROM changes", [], |r| r.get(0))?;
        Ok(seq.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc};
    use doorstep_core::model::{Address, NewHousehold, NewVisit, VisitKind};
    use doorstep_core::store::{Enrolment, Replica};
    use doorstep_core::sync::message::{Upload, wire_id};
    use serde_bytes::ByteBuf;

    use super::*;
    use crate::auth;
    use crate::storage::{Authenticated, Storage, SyncLimits};

    /// A storage with one grid worker's device, enrolled with the replica's actor.
    fn county_with_one_phone(dir: &Path) -> (SqliteStorage, GridId, Device, Replica) {
        let storage = SqliteStorage::open(&dir.join("server")).expect("storage");
        let now = Timestamp(1_700_000_000_000);
        let grid = storage.create_grid("G", "幸福社区", "城关街道").expect("grid");
        let member = storage.create_member("网格员", Role::GridWorker, None, now).expect("member");
        storage.set_member_grid(member, grid, true).expect("assign");
        let code_hash = auth::hash_secret(&auth::normalize_code("ABCD-EFGH"));
        assert!(storage.create_enrolment_code(member, &code_hash, now, now.plus_hours(1)).expect("code"));
        let mut replica = Replica::open(dir.join("phone.db")).expect("replica");
        let token = "device-token";
        let actor = replica.actor_id().to_hex_string();
        let enrolled = storage.enrol(&code_hash, &actor, "phone", token, now).expect("enrol");
        replica
            .set_enrolment(&Enrolment {
                server: "http://127.0.0.1:1".into(),
                device: enrolled.device_id,
                token: token.into(),
                member,
                server_ca_pem: None,
                role: None,
            })
            .expect("enrolment");
        let Authenticated::Device(device) = storage.authenticate(&auth::hash_secret(token)).expect("auth")
        else {
            panic!("the device is not enrolled");
        };
        (storage, grid, device, replica)
    }

    fn upload(replica: &mut Replica, id: DocumentId) -> SyncRequest {
        let changes = replica.unsynced_changes(id).expect("changes").into_iter().map(ByteBuf::from).collect();
        SyncRequest { uploads: vec![Upload { doc: wire_id(id), changes }], ..SyncRequest::default() }
    }

    #[test]
    fn an_upload_checked_ahead_of_a_document_that_changed_meanwhile_is_checked_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, grid, device, mut replica) = county_with_one_phone(dir.path());
        let (limits, now) = (SyncLimits::default(), Timestamp(1_700_000_100_000));
        let address = Address {
            community: "幸福社区".into(),
            grid,
            building: "3栋".into(),
            unit: "1单元".into(),
            room: "501".into(),
        };
        let home = replica
            .create_household(&NewHousehold { address, residents: vec![], notes: String::new() }, now)
            .expect("household");
        let first = upload(&mut replica, home.into());
        storage.sync(&device, &first, &limits, now).expect("stored");
        replica
            .record_visit(
                home,
                &NewVisit { at: now, kind: VisitKind::Routine, notes: "走访".into(), needs: vec![] },
            )
            .expect("visit");
        // The phone's visit is checked outside the lock...
        let request = upload(&mut replica, home.into());
        let rows = engine::rows_for_uploads(&mut Sql(&storage.lock()), &request).expect("rows");
        let ahead = engine::check_ahead(&device, rows, &request, &limits).expect("checked");
        // ...while the dashboard changes the same household...
        let mut doc = storage.document(home.into()).expect("read").expect("stored");
        doc.put(ROOT, "dashboard_note", "已核实").expect("put");
        storage.write_server_documents(&mut [(home.into(), doc)], now).expect("dashboard write");
        // ...then the round stores the visit: the dashboard's change must survive it.
        let mut conn = storage.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).expect("tx");
        engine::round(&mut Sql(&tx), &device, &request, &limits, now, true, ahead).expect("round");
        tx.commit().expect("commit");
        drop(conn);
        let stored = storage.document(home.into()).expect("read").expect("stored");
        assert!(
            stored.get(ROOT, "dashboard_note").expect("read").is_some(),
            "the dashboard's change was lost"
        );
        let visit = replica.unsynced_changes(home.into()).expect("changes");
        let visit_hash = automerge::Change::from_bytes(visit[0].clone()).expect("change").hash();
        assert!(stored.get_change_by_hash(&visit_hash).is_some(), "the visit was not stored");
    }
}
