//! PostgreSQL, for counties that run several server nodes: every node is stateless and shares
//! one database. Connections come from a pool; every storage call is one transaction.
//!
//! Two things differ from SQLite, where one connection writes at a time:
//! - **Log order.** A transaction that appends to the change log first locks the single row of
//!   `log_head` and numbers its changes from it; the lock is held until commit. Sequence numbers
//!   therefore commit in order, and a device's cursor can never pass a change that a slower
//!   transaction commits later (a plain sequence would allow exactly that).
//! - **Fan-out.** The appending transaction also calls `pg_notify('doorstep_changes', …)`,
//!   delivered at commit to every node's listener ([`PostgresStorage::watch_changes`]), which
//!   wakes that node's WebSockets.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::postgres::fallible_iterator::FallibleIterator;
use ::postgres::types::ToSql;
use ::postgres::{NoTls, Row, Transaction};
use automerge::{ActorId, AutoCommit, ChangeHash};
use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::{Code, DeviceId, DocumentId, GridId, HouseholdId, MemberId, RequestId};
use doorstep_core::model::attachment::{AttachmentRef, ContentHash};
use doorstep_core::sync::message::{DocSyncMessage, ManifestEntry, SyncReply, SyncRequest};
use doorstep_core::time::Timestamp;
use r2d2_postgres::PostgresConnectionManager;

use crate::scope::{Role, Scope};
use crate::storage::attachment::{self, BlobStatus, BlobTx, ChunkOutcome};
use crate::storage::engine::{
    self, DocumentRow, LogRow, LogTx, ScopeRule, Snapshot, StoredRow, Unheld, damaged, kind, parse,
};
use crate::storage::transfer::{BATCH_ROWS, Cell, RowSink, RowSource, TABLES, Table};
use crate::storage::{
    Authenticated, Device, DeviceRow, EnrolError, Enrolled, GridRow, MemberRow, Storage, StorageError,
    SyncFailure, SyncLimits, Synced,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_dashboard.sql"),
    include_str!("../../migrations/postgres/0003_county_taxonomy.sql"),
    // Numbered by position in this list, so the order is the history.
    include_str!("../../migrations/postgres/0005_attachments.sql"),
    include_str!("../../migrations/postgres/0007_catch_up_by_scope.sql"),
    include_str!("../../migrations/postgres/0009_fact_moves.sql"),
    include_str!("../../migrations/postgres/0010_attachment_possession.sql"),
    include_str!("../../migrations/postgres/0011_disabled_staff.sql"),
    include_str!("../../migrations/postgres/0012_device_earlier_actors.sql"),
];

/// The channel nodes announce new changes on.
pub const CHANGES_CHANNEL: &str = "doorstep_changes";

/// Key of the advisory lock that serialises schema migrations between nodes starting at once.
const MIGRATION_LOCK: i64 = 0x646f_6f72_7374_6570; // "doorstep"

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// A hook run inside every log-appending transaction just before it commits (tests use it to
/// hold a writer open and force interleavings).
pub type BeforeCommit = Arc<dyn Fn() + Send + Sync>;

/// Storage on a PostgreSQL database shared by any number of server nodes.
pub struct PostgresStorage {
    /// Always `Some` until dropped (see `Drop`).
    pool: Option<Pool>,
    url: String,
    /// Tells this node's own notifications from other nodes'.
    node: String,
    before_commit: Mutex<Option<BeforeCommit>>,
}

impl From<::postgres::Error> for StorageError {
    fn from(e: ::postgres::Error) -> Self {
        StorageError::Postgres(e.to_string())
    }
}

impl From<r2d2::Error> for StorageError {
    fn from(e: r2d2::Error) -> Self {
        StorageError::Postgres(format!("no database connection: {e}"))
    }
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of up to
    /// `max_connections`, and brings the schema up to date.
    pub fn connect(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        off_runtime(|| Self::connect_here(url, max_connections))
    }

    fn connect_here(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        let config: ::postgres::Config =
            url.parse().map_err(|e| StorageError::Postgres(format!("bad database URL: {e}")))?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(2))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        let storage = Self {
            pool: Some(pool),
            url: url.to_owned(),
            node: crate::auth::new_token().map_err(|e| damaged(format!("no randomness: {e}")))?,
            before_commit: Mutex::new(None),
        };
        storage.migrate()?;
        Ok(storage)
    }

    fn migrate(&self) -> Result<(), StorageError> {
        let mut conn = self.connection()?;
        let mut tx = conn.transaction()?;
        // Nodes starting together take turns; the lock ends with the transaction.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
        let current: Option<i64> =
            tx.query_opt("SELECT max(version) FROM schema_version", &[])?.and_then(|r| r.get(0));
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(usize::MAX);
        if current > MIGRATIONS.len() {
            return Err(damaged(format!("database schema {current} is newer than this server knows")));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&(index as i64 + 1)])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StorageError> {
        let pool = self.pool.as_ref().ok_or_else(|| damaged("the storage is closed"))?;
        Ok(pool.get()?)
    }

    /// Sets (or clears) a hook run in every log-appending transaction right before it commits.
    #[doc(hidden)]
    pub fn set_before_commit(&self, hook: Option<BeforeCommit>) {
        *self.before_commit.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    fn before_commit(&self) {
        let hook = self.before_commit.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Runs `f` in one transaction. With `append`, the transaction first takes the log lock
    /// (see the module docs) and announces its new changes to every node at commit.
    fn in_tx<T: Send, E: From<StorageError> + Send>(
        &self,
        append: bool,
        f: impl FnOnce(&mut Pg<'_, '_>) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        off_runtime(|| self.in_tx_here(append, f))
    }

    fn in_tx_here<T, E: From<StorageError>>(
        &self,
        append: bool,
        f: impl FnOnce(&mut Pg<'_, '_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.connection()?;
        let mut tx = conn.transaction().map_err(StorageError::from)?;
        if append {
            tx.execute("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE", &[])
                .map_err(StorageError::from)?;
        }
        let mut pg = Pg { tx: &mut tx, appended: None };
        let out = f(&mut pg)?;
        if let Some(seq) = pg.appended {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &format!("{}:{seq}", self.node)])
                .map_err(StorageError::from)?;
            self.before_commit();
        }
        tx.commit().map_err(StorageError::from)?;
        Ok(out)
    }

    /// Runs `f` with a plain connection from the pool (admin queries, backups, migration).
    pub fn with_client<T: Send, E: From<StorageError> + Send>(
        &self,
        f: impl FnOnce(&mut ::postgres::Client) -> Result<T, E> + Send,
    ) -> Result<T, E> {
        off_runtime(|| {
            let mut conn = self.connection()?;
            f(&mut conn)
        })
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // Closing a connection blocks on the client's own runtime: not inside a tokio worker.
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

/// Calls `on_change` for every change notification from another node (or an admin command)
/// until the connection fails.
fn listen(url: &str, node: &str, on_change: &dyn Fn(u64)) -> Result<(), ::postgres::Error> {
    let mut client = ::postgres::Client::connect(url, NoTls)?;
    client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))?;
    // Anything committed before LISTEN took effect is announced once, as a catch-up.
    on_change(0);
    let mut notifications = client.notifications();
    let mut iter = notifications.blocking_iter();
    while let Some(notification) = iter.next()? {
        let (from, seq) = notification.payload().split_once(':').unwrap_or(("", "0"));
        // This node already woke its own connections when it committed.
        if from != node {
            on_change(seq.parse().unwrap_or(0));
        }
    }
    Ok(())
}

/// Runs blocking database work where the `postgres` client may block: it drives each
/// connection with a runtime of its own, which must not start inside a tokio worker. The
/// server calls storage from tokio's blocking pool (runs `f` as is); async code on a
/// multi-threaded runtime gets `block_in_place`; on a single-threaded one, a scoped thread.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(f).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
    }
}

/// Like [`off_runtime`] for work that cannot move to another thread (copies that stream into
/// another database): refused on a single-threaded runtime.
fn off_runtime_here<T>(f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => Err(damaged("copying a county needs a thread of its own, not a single-threaded runtime")),
    }
}

// ---- the sync engine's primitives over PostgreSQL --------------------------------------------

/// The SQL condition (on `documents d`) matching a scope rule, its placeholders numbered from
/// `first`, and their values.
fn rule_sql(rule: &ScopeRule, first: usize) -> (String, Vec<String>) {
    match rule {
        ScopeRule::All => ("TRUE".into(), vec![]),
        ScopeRule::Grids(member) => (
            format!("d.grid_id IN (SELECT grid_id FROM member_grids WHERE member_id = ${first})"),
            vec![member.to_string()],
        ),
        ScopeRule::Helper(member) => (
            format!(
                "((d.kind = 'household' AND d.doc_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ${first}))
                  OR (d.kind = 'request' AND (d.assignee = ${first}
                      OR d.household_id IN (SELECT doc_id FROM doc_helpers WHERE member_id = ${first}))))"
            ),
            vec![member.to_string()],
        ),
        ScopeRule::Department(department) => {
            (format!("(d.kind = 'request' AND d.department = ${first})"), vec![department.clone()])
        }
    }
}

/// Borrowed parameters: fixed ones, then the scope rule's.
fn args<'a>(fixed: &[&'a (dyn ToSql + Sync)], rule: &'a [String]) -> Vec<&'a (dyn ToSql + Sync)> {
    let mut out: Vec<&(dyn ToSql + Sync)> = fixed.to_vec();
    out.extend(rule.iter().map(|r| r as &(dyn ToSql + Sync)));
    out
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn size(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// One open PostgreSQL transaction, as the sync engine sees it.
struct Pg<'t, 'c> {
    tx: &'t mut Transaction<'c>,
    /// The last sequence number this transaction appended, if any.
    appended: Option<i64>,
}

impl LogTx for Pg<'_, '_> {
    fn holds(&mut self, device: DeviceId, doc: DocumentId) -> Result<bool, StorageError> {
        let row = self.tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM device_docs WHERE device_id = $1 AND doc_id = $2)",
            &[&device.to_string(), &doc.to_string()],
        )?;
        Ok(row.get(0))
    }

    fn set_held(&mut self, device: DeviceId, doc: DocumentId, held: bool) -> Result<(), StorageError> {
        let sql = if held {
            "INSERT INTO device_docs (device_id, doc_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM device_docs WHERE device_id = $1 AND doc_id = $2"
        };
        self.tx.execute(sql, &[&device.to_string(), &doc.to_string()])?;
        Ok(())
    }

    fn helps(&mut self, member: MemberId, household: HouseholdId) -> Result<bool, StorageError> {
        let row = self.tx.query_one(
            "SELECT EXISTS (SELECT 1 FROM doc_helpers WHERE doc_id = $1 AND member_id = $2)",
            &[&household.to_string(), &member.to_string()],
        )?;
        Ok(row.get(0))
    }

    fn load(&mut self, doc: DocumentId) -> Result<Option<StoredRow>, StorageError> {
        let row = self.tx.query_opt(
            "SELECT snapshot, stored_bytes, kind, grid_id, household_id, department, assignee
             FROM documents WHERE doc_id = $1",
            &[&doc.to_string()],
        )?;
        row.map(|r| {
            StoredRow::from_columns(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))
        })
        .transpose()
    }

    fn stored_heads(&mut self, doc: DocumentId) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self.tx.query_opt("SELECT heads FROM documents WHERE doc_id = $1", &[&doc.to_string()])?;
        Ok(row.map(|r| r.get(0)))
    }

    fn append_changes(
        &mut self,
        doc: DocumentId,
        changes: &[(ChangeHash, Vec<u8>)],
        origin: Option<DeviceId>,
        now: Timestamp,
    ) -> Result<Option<(i64, usize)>, StorageError> {
        let doc_id = doc.to_string();
        let origin = origin.map(|d| d.to_string());
        // One statement, prepared once per call and one round trip per change: a change the log
        // already has (by hash) takes no number; a new one takes the next number of `log_head`,
        // whose row this transaction has locked (see `in_tx`), so numbers commit in order.
        let append = self.tx.prepare(
            "WITH next AS (
                 UPDATE log_head SET seq = seq + 1
                 WHERE id = 1 AND NOT EXISTS (SELECT 1 FROM changes WHERE hash = $2::bytea)
                 RETURNING seq
             )
             INSERT INTO changes (seq, doc_id, hash, bytes, origin_device, received_at)
             SELECT seq, $1::text, $2::bytea, $3::bytea, $4::text, $5::bigint FROM next
             RETURNING seq",
        )?;
        let mut last = None;
        let mut added = 0usize;
        for (hash, bytes) in changes {
            let row =
                self.tx.query_opt(&append, &[&doc_id, &hash.0.as_slice(), bytes, &origin, &now.millis()])?;
            if let Some(row) = row {
                last = Some(row.get::<_, i64>(0));
                added += bytes.len();
            }
        }
        if last.is_some() {
            self.appended = last;
        }
        Ok(last.map(|seq| (seq, added)))
    }

    fn put_document(&mut self, row: &DocumentRow<'_>) -> Result<(), StorageError> {
        let facts = row.facts;
        self.tx.execute(
            "INSERT INTO documents (doc_id, kind, grid_id, household_id, department, assignee, heads, snapshot,
                                    stored_bytes, last_seq, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (doc_id) DO UPDATE SET grid_id = excluded.grid_id, household_id = excluded.household_id,
                 department = excluded.department, assignee = excluded.assignee, heads = excluded.heads,
                 snapshot = excluded.snapshot, stored_bytes = documents.stored_bytes + $12,
                 last_seq = excluded.last_seq, updated_at = excluded.updated_at",
            &[
                &row.doc.to_string(),
                &facts.kind.as_str(),
                &facts.grid.to_string(),
                &facts.household.map(|h| h.to_string()),
                &facts.department.as_ref().map(|d| d.as_str().to_owned()),
                &facts.assignee.map(|a| a.to_string()),
                &row.heads,
                &row.snapshot,
                &count(row.snapshot.len()),
                &row.last_seq,
                &row.now.millis(),
                &count(row.added),
            ],
        )?;
        Ok(())
    }

    fn helpers(&mut self, doc: DocumentId) -> Result<HashSet<MemberId>, StorageError> {
        let rows =
            self.tx.query("SELECT member_id FROM doc_helpers WHERE doc_id = $1", &[&doc.to_string()])?;
        rows.iter().map(|r| parse(r.get(0), "member id")).collect()
    }

    fn set_helpers(&mut self, doc: DocumentId, helpers: &HashSet<MemberId>) -> Result<(), StorageError> {
        self.tx.execute("DELETE FROM doc_helpers WHERE doc_id = $1", &[&doc.to_string()])?;
        for helper in helpers {
            self.tx.execute(
                "INSERT INTO doc_helpers (doc_id, member_id) VALUES ($1, $2)",
                &[&doc.to_string(), &helper.to_string()],
            )?;
        }
        Ok(())
    }

    fn bump_scope_version(&mut self, member: MemberId) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = $1",
            &[&member.to_string()],
        )?;
        Ok(())
    }

    fn max_seq(&mut self) -> Result<i64, StorageError> {
        // Committed numbers form a prefix of the log (the log lock), so the head is the cursor.
        Ok(self.tx.query_one("SELECT seq FROM log_head WHERE id = 1", &[])?.get(0))
    }

    fn snapshots(&mut self, rule: &ScopeRule, docs: &[DocumentId]) -> Result<Vec<Snapshot>, StorageError> {
        if docs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = docs.iter().map(ToString::to_string).collect();
        let (cond, rule_args) = rule_sql(rule, 2);
        let rows = self.tx.query(
            &format!(
                "SELECT d.doc_id, d.kind, d.snapshot FROM documents d WHERE d.doc_id = ANY($1) AND {cond}"
            ),
            &args(&[&ids], &rule_args),
        )?;
        let mut found = std::collections::HashMap::new();
        for row in rows {
            let id: DocumentId = parse(row.get(0), "document id")?;
            found.insert(id, Snapshot { doc: id, kind: kind(row.get(1))?, bytes: row.get(2) });
        }
        Ok(docs.iter().filter_map(|id| found.remove(id)).collect())
    }

    fn unheld(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        after: Option<DocumentId>,
        limit: usize,
    ) -> Result<Vec<Unheld>, StorageError> {
        let (cond, rule_args) = rule_sql(rule, 4);
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let rows = self.tx.query(
            &format!(
                "SELECT d.doc_id, octet_length(d.snapshot)::BIGINT FROM documents d
                 WHERE {cond} AND d.doc_id > $1
                   AND NOT EXISTS (SELECT 1 FROM device_docs dd WHERE dd.device_id = $2 AND dd.doc_id = d.doc_id)
                 ORDER BY d.doc_id LIMIT $3"
            ),
            &args(&[&after, &device.to_string(), &count(limit)], &rule_args),
        )?;
        rows.iter()
            .map(|r| Ok(Unheld { doc: parse(r.get(0), "document id")?, snapshot_bytes: size(r.get(1)) }))
            .collect()
    }

    fn held_outside(
        &mut self,
        rule: &ScopeRule,
        device: DeviceId,
        moved_after: Option<i64>,
    ) -> Result<Vec<DocumentId>, StorageError> {
        let rows = match moved_after {
            // Driven from the documents whose facts moved after the cursor: almost always none.
            Some(seq) => {
                let (cond, rule_args) = rule_sql(rule, 3);
                self.tx.query(
                    &format!(
                        "SELECT DISTINCT d.doc_id FROM fact_moves m
                             JOIN device_docs dd ON dd.device_id = $1 AND dd.doc_id = m.doc_id
                             JOIN documents d ON d.doc_id = m.doc_id
                         WHERE m.seq > $2 AND NOT ({cond})"
                    ),
                    &args(&[&device.to_string(), &seq], &rule_args),
                )?
            }
            None => {
                let (cond, rule_args) = rule_sql(rule, 2);
                self.tx.query(
                    &format!(
                        "SELECT d.doc_id FROM device_docs dd JOIN documents d ON d.doc_id = dd.doc_id
                         WHERE dd.device_id = $1 AND NOT ({cond})"
                    ),
                    &args(&[&device.to_string()], &rule_args),
                )?
            }
        };
        rows.iter().map(|r| parse(r.get(0), "document id")).collect()
    }

    fn note_facts_moved(&mut self, doc: DocumentId, seq: i64) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO fact_moves (seq, doc_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&seq, &doc.to_string()],
        )?;
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
        let (cond, rule_args) = rule_sql(rule, 5);
        let rows = self.tx.query(
            &format!(
                "SELECT c.seq, c.doc_id, d.kind, c.bytes, c.origin_device, octet_length(d.snapshot)::BIGINT,
                        EXISTS (SELECT 1 FROM device_docs dd WHERE dd.device_id = $1 AND dd.doc_id = c.doc_id)
                 FROM changes c JOIN documents d ON d.doc_id = c.doc_id
                 WHERE d.last_seq > $2 AND c.seq > $2 AND c.seq <= $3 AND {cond}
                 ORDER BY c.seq LIMIT $4"
            ),
            &args(&[&device.to_string(), &after, &upto, &count(limit)], &rule_args),
        )?;
        rows.iter().map(log_row).collect()
    }

    fn heads_in(
        &mut self,
        rule: &ScopeRule,
    ) -> Result<Vec<(DocumentId, DocumentKind, Vec<u8>)>, StorageError> {
        let (cond, rule_args) = rule_sql(rule, 1);
        let rows = self.tx.query(
            &format!("SELECT d.doc_id, d.kind, d.heads FROM documents d WHERE {cond} ORDER BY d.doc_id"),
            &args(&[], &rule_args),
        )?;
        rows.iter().map(|r| Ok((parse(r.get(0), "document id")?, kind(r.get(1))?, r.get(2)))).collect()
    }

    fn set_scope_version_seen(&mut self, device: DeviceId, seen: i64) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE devices SET scope_version_seen = $2 WHERE device_id = $1",
            &[&device.to_string(), &seen],
        )?;
        Ok(())
    }

    fn cached_digest(&mut self, device: DeviceId) -> Result<Option<(Vec<u8>, i64, i64)>, StorageError> {
        let row = self.tx.query_opt(
            "SELECT digest, digest_seq, digest_scope_version FROM devices WHERE device_id = $1",
            &[&device.to_string()],
        )?;
        Ok(row.and_then(|r| match (r.get(0), r.get(1), r.get(2)) {
            (Some(bytes), Some(seq), Some(version)) => Some((bytes, seq, version)),
            _ => None,
        }))
    }

    fn save_digest(
        &mut self,
        device: DeviceId,
        digest: &[u8],
        seq: i64,
        version: i64,
    ) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE devices SET digest = $2, digest_seq = $3, digest_scope_version = $4 WHERE device_id = $1",
            &[&device.to_string(), &digest, &seq, &version],
        )?;
        Ok(())
    }

    fn record_contact(
        &mut self,
        device: DeviceId,
        now: Timestamp,
        unsynced: i64,
    ) -> Result<(), StorageError> {
        self.tx.execute(
            "UPDATE devices SET last_seen_at = $2, last_unsynced = $3 WHERE device_id = $1",
            &[&device.to_string(), &now.millis(), &unsynced],
        )?;
        Ok(())
    }
}

fn log_row(r: &Row) -> Result<LogRow, StorageError> {
    let origin: Option<String> = r.get(4);
    Ok(LogRow {
        seq: r.get(0),
        doc: parse(r.get(1), "document id")?,
        kind: kind(r.get(2))?,
        bytes: r.get(3),
        origin: origin.map(|o| parse(&o, "device id")).transpose()?,
        snapshot_bytes: size(r.get(5)),
        held: r.get(6),
    })
}

fn authenticate(conn: &mut ::postgres::Client, token_hash: &[u8; 32]) -> Result<Authenticated, StorageError> {
    let row = conn.query_opt(
        "SELECT d.device_id, d.member_id, d.actor_id, d.revoked_at, d.scope_version_seen,
                    m.role, m.department, m.scope_version
             FROM devices d JOIN members m ON m.member_id = d.member_id WHERE d.token_hash = $1",
        &[&token_hash.as_slice()],
    )?;
    let Some(row) = row else { return Ok(Authenticated::Unknown) };
    let device: DeviceId = parse(row.get(0), "device id")?;
    if row.get::<_, Option<i64>>(3).is_some() {
        return Ok(Authenticated::Revoked(device));
    }
    let member: MemberId = parse(row.get(1), "member id")?;
    let grids = conn
        .query("SELECT grid_id FROM member_grids WHERE member_id = $1", &[&member.to_string()])?
        .iter()
        .map(|g| parse::<GridId>(g.get(0), "grid id"))
        .collect::<Result<Vec<_>, _>>()?;
    let department: Option<String> = row.get(6);
    let earlier_actors = conn
        .query("SELECT actor_id FROM device_earlier_actors WHERE device_id = $1", &[&device.to_string()])?
        .iter()
        .map(|a| ActorId::try_from(a.get::<_, &str>(0)).map_err(|_| damaged("actor id")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Authenticated::Device(Device {
        id: device,
        actor: ActorId::try_from(row.get::<_, &str>(2)).map_err(|_| damaged("actor id"))?,
        earlier_actors,
        scope: Scope {
            member,
            role: parse(row.get(5), "role")?,
            grids,
            department: department.and_then(|d| Code::new(d).ok()),
        },
        scope_version: row.get(7),
        scope_version_seen: row.get(4),
    }))
}

fn enrol(
    conn: &mut ::postgres::Client,
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
    let mut tx = conn.transaction().map_err(StorageError::from)?;
    let taken = tx
        .query_one("SELECT EXISTS (SELECT 1 FROM devices WHERE actor_id = $1)", &[&actor_id.to_hex_string()])
        .map_err(StorageError::from)?;
    if taken.get::<_, bool>(0) {
        return Err(EnrolError::BadActor);
    }
    // Claiming the code is one statement: two nodes cannot both use it.
    let member = tx
        .query_opt(
            "UPDATE enrolment_codes SET used_at = $2
                 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING member_id",
            &[&code_hash.as_slice(), &now.millis()],
        )
        .map_err(StorageError::from)?
        .ok_or(EnrolError::InvalidCode)?;
    let member: String = member.get(0);
    let who = tx
        .query_one("SELECT name, role FROM members WHERE member_id = $1", &[&member])
        .map_err(StorageError::from)?;
    let (name, role): (String, String) = (who.get(0), who.get(1));
    // The device this replica was, proven by its token (PROTOCOL §2.4); locked, so two
    // enrolments cannot both replace it.
    let previous = match previous_token_hash {
        None => None,
        Some(hash) => tx
            .query_opt(
                "SELECT device_id, member_id, revoked_at FROM devices WHERE token_hash = $1 FOR UPDATE",
                &[&hash.as_slice()],
            )
            .map_err(StorageError::from)?,
    };
    let previous: Option<(String, String, Option<i64>)> = previous.map(|r| (r.get(0), r.get(1), r.get(2)));
    match &previous {
        Some((_, _, Some(_))) => return Err(EnrolError::PreviousRevoked),
        Some((_, owner, None)) if *owner != member => return Err(EnrolError::PreviousOtherMember),
        _ => {}
    }
    let device = DeviceId::new_random();
    let token_hash = crate::auth::hash_secret(token);
    let device_name: String = device_name.trim().chars().take(64).collect();
    tx.execute(
        "INSERT INTO devices (device_id, member_id, name, actor_id, token_hash, enrolled_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &device.to_string(),
            &member,
            &device_name,
            &actor_id.to_hex_string(),
            &token_hash.as_slice(),
            &now.millis(),
        ],
    )
    .map_err(StorageError::from)?;
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, 'device_enrolled', $3)",
        &[&now.millis(), &member, &device.to_string()],
    )
    .map_err(StorageError::from)?;
    if let Some((old, _, _)) = &previous {
        tx.execute(
            "INSERT INTO device_earlier_actors (device_id, actor_id)
             SELECT $1, actor_id FROM devices WHERE device_id = $2
             UNION SELECT $1, actor_id FROM device_earlier_actors WHERE device_id = $2",
            &[&device.to_string(), old],
        )
        .map_err(StorageError::from)?;
        tx.execute("UPDATE devices SET revoked_at = $2 WHERE device_id = $1", &[old, &now.millis()])
            .map_err(StorageError::from)?;
        tx.execute(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, 'device_replaced', $3)",
            &[&now.millis(), &member, &format!("{old} -> {device}")],
        )
        .map_err(StorageError::from)?;
    }
    tx.commit().map_err(StorageError::from)?;
    Ok(Enrolled {
        device_id: device,
        token: token.to_owned(),
        member_id: parse(&member, "member id")?,
        member_name: name,
        role: parse(&role, "role")?,
    })
}

impl BlobTx for Pg<'_, '_> {
    fn blob(&mut self, hash: &str) -> Result<Option<(i64, i64, bool)>, StorageError> {
        let row = self.tx.query_opt(
            "SELECT size, received, complete FROM attachments WHERE hash = $1 FOR UPDATE",
            &[&hash],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) != 0)))
    }

    fn chunks(&mut self, hash: &str, from: i64, to: i64) -> Result<Vec<(i64, Vec<u8>)>, StorageError> {
        let rows = self.tx.query(
            "SELECT start_byte, bytes FROM attachment_chunks
             WHERE hash = $1 AND start_byte < $3 AND start_byte + length(bytes) > $2 ORDER BY start_byte",
            &[&hash, &from, &to],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn servable(&mut self, hash: &str, doc: &str) -> Result<bool, StorageError> {
        Ok(self
            .tx
            .query_opt(
                "SELECT 1 FROM attachments a WHERE a.hash = $1 AND a.complete = 1 AND (a.open_to_referrers = 1
                 OR EXISTS (SELECT 1 FROM attachment_holders h WHERE h.hash = a.hash AND h.doc_id = $2)
                 OR EXISTS (SELECT 1 FROM changes c JOIN attachment_possessors p ON p.device_id = c.origin_device
                            WHERE c.doc_id = $2 AND p.hash = a.hash))",
                &[&hash, &doc],
            )?
            .is_some())
    }

    fn upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<Option<(i64, i64)>, StorageError> {
        let row = self.tx.query_opt(
            "SELECT size, received FROM attachment_uploads WHERE hash = $1 AND doc_id = $2 AND device_id = $3
             FOR UPDATE",
            &[&hash, &doc, &device],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn furthest_upload(&mut self, hash: &str) -> Result<Option<(i64, i64)>, StorageError> {
        let row = self.tx.query_opt(
            "SELECT size, received FROM attachment_uploads WHERE hash = $1 ORDER BY received DESC LIMIT 1",
            &[&hash],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
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
        self.tx.execute(
            "DELETE FROM attachment_upload_chunks WHERE hash = $1 AND doc_id = $2 AND device_id = $3",
            &[&hash, &doc, &device],
        )?;
        self.tx.execute(
            "INSERT INTO attachment_uploads (hash, doc_id, device_id, size, media_type, received, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, $6)
             ON CONFLICT (hash, doc_id, device_id) DO UPDATE SET size = excluded.size, received = 0,
                 media_type = excluded.media_type",
            &[&hash, &doc, &device, &size, &media_type, &now.millis()],
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
        self.tx.execute(
            "INSERT INTO attachment_upload_chunks (hash, doc_id, device_id, start_byte, bytes)
             VALUES ($1, $2, $3, $4, $5)",
            &[&hash, &doc, &device, &start, &bytes],
        )?;
        let end = start + i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        self.tx.execute(
            "UPDATE attachment_uploads SET received = $4 WHERE hash = $1 AND doc_id = $2 AND device_id = $3",
            &[&hash, &doc, &device, &end],
        )?;
        Ok(())
    }

    fn upload_chunks(&mut self, hash: &str, doc: &str, device: &str) -> Result<Vec<Vec<u8>>, StorageError> {
        let rows = self.tx.query(
            "SELECT bytes FROM attachment_upload_chunks WHERE hash = $1 AND doc_id = $2 AND device_id = $3
             ORDER BY start_byte",
            &[&hash, &doc, &device],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
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
        self.tx.execute("DELETE FROM attachment_chunks WHERE hash = $1", &[&hash])?;
        self.tx.execute(
            "INSERT INTO attachments (hash, size, media_type, received, complete, created_at)
             VALUES ($1, $2, $3, $2, 1, $4)
             ON CONFLICT (hash) DO UPDATE SET size = excluded.size, media_type = excluded.media_type,
                 received = excluded.received, complete = 1",
            &[&hash, &size, &media_type, &now.millis()],
        )?;
        self.tx.execute(
            "INSERT INTO attachment_chunks (hash, start_byte, bytes)
             SELECT hash, start_byte, bytes FROM attachment_upload_chunks
             WHERE hash = $1 AND doc_id = $2 AND device_id = $3",
            &[&hash, &doc, &device],
        )?;
        self.drop_upload(hash, doc, device)
    }

    fn drop_upload(&mut self, hash: &str, doc: &str, device: &str) -> Result<(), StorageError> {
        self.tx.execute(
            "DELETE FROM attachment_upload_chunks WHERE hash = $1 AND doc_id = $2 AND device_id = $3",
            &[&hash, &doc, &device],
        )?;
        self.tx.execute(
            "DELETE FROM attachment_uploads WHERE hash = $1 AND doc_id = $2 AND device_id = $3",
            &[&hash, &doc, &device],
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
        self.tx.execute(
            "INSERT INTO attachment_holders (hash, doc_id, device_id, proved_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash, doc_id) DO NOTHING",
            &[&hash, &doc, &device, &now.millis()],
        )?;
        self.tx.execute(
            "INSERT INTO attachment_possessors (hash, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&hash, &device],
        )?;
        Ok(())
    }

    fn usage(&mut self, device: &str) -> Result<i64, StorageError> {
        let row = self
            .tx
            .query_opt("SELECT bytes FROM attachment_usage WHERE device_id = $1 FOR UPDATE", &[&device])?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    fn add_usage(&mut self, device: &str, delta: i64) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO attachment_usage (device_id, bytes) VALUES ($1, GREATEST($2::BIGINT, 0))
             ON CONFLICT (device_id) DO UPDATE SET bytes = GREATEST(attachment_usage.bytes + $2::BIGINT, 0)",
            &[&device, &delta],
        )?;
        Ok(())
    }

    fn thumbnail(&mut self, hash: &str) -> Result<Option<(String, Vec<u8>)>, StorageError> {
        let row = self
            .tx
            .query_opt("SELECT media_type, bytes FROM attachment_thumbnails WHERE hash = $1", &[&hash])?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn put_thumbnail(&mut self, hash: &str, media_type: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO attachment_thumbnails (hash, media_type, bytes) VALUES ($1, $2, $3)
             ON CONFLICT (hash) DO UPDATE SET media_type = excluded.media_type, bytes = excluded.bytes",
            &[&hash, &media_type, &bytes],
        )?;
        Ok(())
    }
}

impl Storage for PostgresStorage {
    fn authenticate(&self, token_hash: &[u8; 32]) -> Result<Authenticated, StorageError> {
        self.with_client(|conn| authenticate(conn, token_hash))
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
        self.with_client(|conn| enrol(conn, code_hash, actor, device_name, token, previous_token_hash, now))
    }
    fn sync(
        &self,
        device: &Device,
        request: &SyncRequest,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Synced, SyncFailure> {
        self.in_tx(engine::uploads_anything(request), |tx| {
            engine::round(tx, device, request, limits, now, true, Vec::new())
        })
    }

    fn push(
        &self,
        device: &Device,
        cursor: u64,
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<SyncReply, SyncFailure> {
        let request = SyncRequest { cursor, ..SyncRequest::default() };
        self.in_tx(false, |tx| engine::round(tx, device, &request, limits, now, false, Vec::new()))
            .map(|s| s.reply)
    }

    fn manifest(&self, device: &Device) -> Result<Vec<ManifestEntry>, StorageError> {
        self.in_tx(false, |tx| engine::manifest(tx, device))
    }

    fn repair(
        &self,
        device: &Device,
        messages: &[DocSyncMessage],
        limits: &SyncLimits,
        now: Timestamp,
    ) -> Result<Vec<DocSyncMessage>, SyncFailure> {
        self.in_tx(engine::repair_writes(messages), |tx| engine::repair(tx, device, messages, limits, now))
    }

    fn write_server_documents(
        &self,
        docs: &mut [(DocumentId, AutoCommit)],
        now: Timestamp,
    ) -> Result<(), StorageError> {
        self.in_tx(true, |tx| engine::write_server_documents(tx, docs, now))
    }

    fn document(&self, id: DocumentId) -> Result<Option<AutoCommit>, StorageError> {
        self.in_tx(false, |tx| engine::load_document(tx, id))
    }

    fn revoked_since(&self, since: Timestamp) -> Result<Vec<DeviceId>, StorageError> {
        self.with_client(|conn| {
            let rows =
                conn.query("SELECT device_id FROM devices WHERE revoked_at >= $1", &[&since.millis()])?;
            rows.iter().map(|r| parse(r.get(0), "device id")).collect()
        })
    }

    fn create_grid(&self, name: &str, community: &str, street: &str) -> Result<GridId, StorageError> {
        let id = GridId::new_random();
        self.with_client(|conn| {
            conn.execute(
                "INSERT INTO grids (grid_id, name, community, street) VALUES ($1, $2, $3, $4)",
                &[&id.to_string(), &name, &community, &street],
            )?;
            Ok(id)
        })
    }

    fn create_member(
        &self,
        name: &str,
        role: Role,
        department: Option<&Code>,
        now: Timestamp,
    ) -> Result<MemberId, StorageError> {
        let id = MemberId::new_random();
        let department = department.map(|d| d.as_str().to_owned());
        self.with_client(|conn| {
            conn.execute(
                "INSERT INTO members (member_id, name, role, department, created_at) VALUES ($1, $2, $3, $4, $5)",
                &[&id.to_string(), &name, &role.as_str(), &department, &now.millis()],
            )?;
            Ok(id)
        })
    }

    fn set_member_grid(&self, member: MemberId, grid: GridId, assigned: bool) -> Result<bool, StorageError> {
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            let sql = if assigned {
                "INSERT INTO member_grids (member_id, grid_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM member_grids WHERE member_id = $1 AND grid_id = $2"
            };
            let changed = tx.execute(sql, &[&member.to_string(), &grid.to_string()])?;
            if changed > 0 {
                tx.execute(
                    "UPDATE members SET scope_version = scope_version + 1 WHERE member_id = $1",
                    &[&member.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    fn hand_over_grid(
        &self,
        grid: GridId,
        from: MemberId,
        to: MemberId,
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        if from == to {
            return Ok(false);
        }
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            let to_exists: bool = tx
                .query_one("SELECT EXISTS (SELECT 1 FROM members WHERE member_id = $1)", &[&to.to_string()])?
                .get(0);
            if !to_exists {
                return Ok(false);
            }
            let taken = tx.execute(
                "DELETE FROM member_grids WHERE member_id = $1 AND grid_id = $2",
                &[&from.to_string(), &grid.to_string()],
            )?;
            if taken == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO member_grids (member_id, grid_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&to.to_string(), &grid.to_string()],
            )?;
            tx.execute(
                "UPDATE members SET scope_version = scope_version + 1 WHERE member_id IN ($1, $2)",
                &[&from.to_string(), &to.to_string()],
            )?;
            tx.execute(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, 'admin', 'grid_handed_over', $2)",
                &[&now.millis(), &format!("{grid} {from} -> {to}")],
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn requests_of_household(&self, household: HouseholdId) -> Result<Vec<RequestId>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT doc_id FROM documents WHERE household_id = $1 AND kind = 'request' ORDER BY doc_id",
                &[&household.to_string()],
            )?;
            rows.iter()
                .map(|r| {
                    r.get::<_, String>(0)
                        .parse()
                        .map_err(|_| StorageError::Damaged("a stored request id".into()))
                })
                .collect()
        })
    }

    fn create_enrolment_code(
        &self,
        member: MemberId,
        code_hash: &[u8; 32],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StorageError> {
        self.with_client(|conn| {
            let inserted = conn.execute(
                "INSERT INTO enrolment_codes (code_hash, member_id, created_at, expires_at)
                 SELECT $1, member_id, $3, $4 FROM members WHERE member_id = $2 AND disabled_at IS NULL",
                &[&code_hash.as_slice(), &member.to_string(), &now.millis(), &expires_at.millis()],
            )?;
            Ok(inserted > 0)
        })
    }

    fn revoke_device(&self, device: DeviceId, now: Timestamp) -> Result<bool, StorageError> {
        self.with_client(|conn| {
            let mut tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE devices SET revoked_at = $2 WHERE device_id = $1 AND revoked_at IS NULL",
                &[&device.to_string(), &now.millis()],
            )?;
            if changed > 0 {
                tx.execute(
                    "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, 'admin', 'device_revoked', $2)",
                    &[&now.millis(), &device.to_string()],
                )?;
            }
            tx.commit()?;
            Ok(changed > 0)
        })
    }

    fn grids(&self) -> Result<Vec<GridRow>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT grid_id, name, community, street FROM grids ORDER BY street, community, name",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(GridRow {
                        id: parse(r.get(0), "grid id")?,
                        name: r.get(1),
                        community: r.get(2),
                        street: r.get(3),
                    })
                })
                .collect()
        })
    }

    fn members(&self) -> Result<Vec<MemberRow>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT m.member_id, m.name, m.role, m.department,
                        ARRAY(SELECT grid_id FROM member_grids g WHERE g.member_id = m.member_id ORDER BY grid_id)
                 FROM members m ORDER BY m.name",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let grids: Vec<String> = r.get(4);
                    Ok(MemberRow {
                        id: parse(r.get(0), "member id")?,
                        name: r.get(1),
                        role: parse(r.get(2), "role")?,
                        department: r.get(3),
                        grids: grids.iter().filter_map(|g| g.parse().ok()).collect(),
                    })
                })
                .collect()
        })
    }

    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query(
                "SELECT device_id, member_id, name, enrolled_at, revoked_at, last_seen_at, last_unsynced
                 FROM devices ORDER BY enrolled_at",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(DeviceRow {
                        id: parse(r.get(0), "device id")?,
                        member_id: parse(r.get(1), "member id")?,
                        name: r.get(2),
                        enrolled_at: Timestamp(r.get(3)),
                        revoked_at: r.get::<_, Option<i64>>(4).map(Timestamp),
                        last_seen_at: r.get::<_, Option<i64>>(5).map(Timestamp),
                        last_unsynced: r.get(6),
                    })
                })
                .collect()
        })
    }

    fn watch_changes(&self, on_change: Box<dyn Fn(u64) + Send>) -> Result<(), StorageError> {
        let url = self.url.clone();
        let node = self.node.clone();
        std::thread::Builder::new()
            .name("doorstep-pg-listen".into())
            .spawn(move || {
                loop {
                    if let Err(e) = listen(&url, &node, on_change.as_ref()) {
                        tracing::warn!(error = %e, "change notifications interrupted; reconnecting");
                    }
                    // Wait before reconnecting to a database that is down.
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .map_err(|e| damaged(format!("cannot start the notification listener: {e}")))?;
        Ok(())
    }

    fn is_empty(&self) -> Result<bool, StorageError> {
        self.with_client(|conn| {
            Ok(conn
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM grids) AND NOT EXISTS (SELECT 1 FROM members)
                            AND NOT EXISTS (SELECT 1 FROM documents)",
                    &[],
                )?
                .get(0))
        })
    }

    fn export(&self, sink: &mut RowSink<'_>) -> Result<(), StorageError> {
        off_runtime_here(|| {
            let mut conn = self.connection()?;
            // One snapshot for the whole export, even while nodes keep writing.
            let mut tx = conn
                .build_transaction()
                .isolation_level(::postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            for table in TABLES {
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
                    table.column_list(),
                    table.name,
                    table.key_list()
                );
                let mut offset = 0i64;
                loop {
                    let rows = tx.query(&sql, &[&count(BATCH_ROWS), &offset])?;
                    if rows.is_empty() {
                        break;
                    }
                    let batch: Vec<Vec<Cell>> = rows
                        .iter()
                        .map(|r| (0..table.columns.len()).map(|i| r.try_get::<_, Cell>(i)).collect())
                        .collect::<Result<_, _>>()?;
                    sink(table, &batch)?;
                    offset += count(rows.len());
                    if rows.len() < BATCH_ROWS {
                        break;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn import(&self, replace: bool, fill: &mut RowSource<'_>) -> Result<(), StorageError> {
        off_runtime_here(|| {
            let mut conn = self.connection()?;
            let mut tx = conn.transaction()?;
            // Nodes running on this database wait while the county is replaced.
            tx.execute("SELECT seq FROM log_head WHERE id = 1 FOR UPDATE", &[])?;
            if replace {
                let all: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
                tx.batch_execute(&format!("TRUNCATE {}", all.join(", ")))?;
            }
            fill(&mut |table: &Table, rows: &[Vec<Cell>]| {
                let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
                let stmt = tx.prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table.name,
                    table.column_list(),
                    placeholders.join(", ")
                ))?;
                for row in rows {
                    let params: Vec<&(dyn ToSql + Sync)> =
                        row.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                    tx.execute(&stmt, &params)?;
                }
                Ok(())
            })?;
            // Derived from the documents, not exported: every document counts as moved at its
            // last change, so devices enrolled before the import check each one once.
            tx.batch_execute(
                "TRUNCATE fact_moves;
                 INSERT INTO fact_moves (seq, doc_id) SELECT last_seq, doc_id FROM documents;",
            )?;
            // The log continues after the copied changes; so does the audit trail.
            tx.execute(
                "UPDATE log_head SET seq = (SELECT COALESCE(max(seq), 0) FROM changes) WHERE id = 1",
                &[],
            )?;
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), COALESCE(max(id), 1), max(id) IS NOT NULL)
                 FROM audit_log",
                &[],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn row_counts(&self) -> Result<BTreeMap<&'static str, u64>, StorageError> {
        self.with_client(|conn| {
            let mut out = BTreeMap::new();
            for table in TABLES {
                let n: i64 = conn.query_one(&format!("SELECT count(*) FROM {}", table.name), &[])?.get(0);
                out.insert(table.name, n.unsigned_abs());
            }
            Ok(out)
        })
    }

    fn attachment_in_scope(
        &self,
        device: &Device,
        doc: DocumentId,
        hash: &ContentHash,
    ) -> Result<Option<AttachmentRef>, StorageError> {
        self.in_tx(false, |tx| attachment::in_scope(tx, device, doc, hash))
    }

    fn attachment_status(&self, hash: &ContentHash) -> Result<Option<BlobStatus>, StorageError> {
        self.in_tx(false, |tx| attachment::blob_status(tx, hash))
    }

    fn attachment_upload_status(
        &self,
        reference: &AttachmentRef,
        doc: DocumentId,
        device: DeviceId,
    ) -> Result<BlobStatus, StorageError> {
        self.in_tx(false, |tx| attachment::upload_status(tx, reference, doc, device))
    }

    fn attachment_servable(&self, hash: &ContentHash, doc: DocumentId) -> Result<bool, StorageError> {
        self.in_tx(false, |tx| attachment::servable(tx, hash, doc))
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
        self.in_tx(false, |tx| attachment::put_chunk(tx, reference, doc, device, offset, chunk, quota, now))
    }

    fn attachment_range(
        &self,
        hash: &ContentHash,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.in_tx(false, |tx| attachment::read_range(tx, hash, offset, len))
    }

    fn attachment_thumbnail(&self, hash: &ContentHash) -> Result<Option<(String, Vec<u8>)>, StorageError> {
        self.in_tx(false, |tx| tx.thumbnail(&hash.to_string()))
    }

    fn put_attachment_thumbnail(
        &self,
        hash: &ContentHash,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        self.in_tx(false, |tx| tx.put_thumbnail(&hash.to_string(), media_type, bytes))
    }

    fn document_heads(&self) -> Result<Vec<(DocumentId, Vec<u8>)>, StorageError> {
        self.with_client(|conn| {
            let rows = conn.query("SELECT doc_id, heads FROM documents ORDER BY doc_id", &[])?;
            rows.iter().map(|r| Ok((parse(r.get(0), "document id")?, r.get(1)))).collect()
        })
    }

    fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StorageError> {
        self.in_tx(false, |tx| {
            // Read first: a node on a read-only database (which still serves reads) must start.
            if let Some(row) =
                tx.tx.query_opt("SELECT secret FROM server_secrets WHERE name = $1", &[&name])?
            {
                return Ok(row.get(0));
            }
            tx.tx.execute(
                "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh],
            )?;
            let row = tx.tx.query_one("SELECT secret FROM server_secrets WHERE name = $1", &[&name])?;
            Ok(row.get(0))
        })
    }

    fn latest_seq(&self) -> Result<u64, StorageError> {
        self.with_client(|conn| {
            let seq: i64 = conn.query_one("SELECT seq FROM log_head WHERE id = 1", &[])?.get(0);
            Ok(seq.unsigned_abs())
        })
    }
}

// ---- copying rows (see `transfer`) ------------------------------------------------------------

impl ToSql for Cell {
    fn to_sql(
        &self,
        ty: &::postgres::types::Type,
        out: &mut ::postgres::types::private::BytesMut,
    ) -> Result<::postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use ::postgres::types::{IsNull, Type};
        match self {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Int(v) if *ty == Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
            Cell::Int(v) => v.to_sql(ty, out),
            Cell::Text(t) => t.to_sql(ty, out),
            Cell::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &::postgres::types::Type) -> bool {
        true
    }

    ::postgres::types::to_sql_checked!();
}

impl<'a> ::postgres::types::FromSql<'a> for Cell {
    fn from_sql(
        ty: &::postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        use ::postgres::types::Type;
        Ok(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Cell::Blob(Vec::<u8>::from_sql(ty, raw)?),
            _ => Cell::Text(String::from_sql(ty, raw)?),
        })
    }

    fn from_sql_null(_: &::postgres::types::Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell::Null)
    }

    fn accepts(_: &::postgres::types::Type) -> bool {
        true
    }
}
