//! Copying a whole county from one storage to another, table by table, and checking the copy:
//! `doorstep-server migrate` (SQLite to PostgreSQL), `backup` (anything to a SQLite file) and
//! `restore` (a backup file into the configured storage). Both schemas have the same tables and
//! columns, so a row is copied as a list of plain values.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use doorstep_core::ids::DocumentId;
use doorstep_core::store::heads::decode_heads;

use crate::storage::{Storage, StorageError};

/// One stored value, whatever the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A table as copied: its name, its columns in order, and the columns it is ordered by.
#[derive(Debug)]
pub struct Table {
    /// Name.
    pub name: &'static str,
    /// Every column, in copy order.
    pub columns: &'static [&'static str],
    /// The primary key, to read in a stable order.
    pub key: &'static [&'static str],
}

impl Table {
    /// `a, b, c`.
    pub fn column_list(&self) -> String {
        self.columns.join(", ")
    }

    /// `a, b`.
    pub fn key_list(&self) -> String {
        self.key.join(", ")
    }
}

/// Every table that holds county data, parents before children. Caches that rebuild themselves
/// (a device's digest) are copied too: they are keyed to log positions that the copy keeps.
pub const TABLES: &[Table] = &[
    Table { name: "grids", columns: &["grid_id", "name", "community", "street"], key: &["grid_id"] },
    Table {
        name: "members",
        columns: &["member_id", "name", "role", "department", "scope_version", "created_at", "disabled_at"],
        key: &["member_id"],
    },
    Table { name: "member_grids", columns: &["member_id", "grid_id"], key: &["member_id", "grid_id"] },
    Table {
        name: "enrolment_codes",
        columns: &["code_hash", "member_id", "created_at", "expires_at", "used_at"],
        key: &["code_hash"],
    },
    Table {
        name: "devices",
        columns: &[
            "device_id",
            "member_id",
            "name",
            "actor_id",
            "token_hash",
            "enrolled_at",
            "revoked_at",
            "last_seen_at",
            "last_unsynced",
            "scope_version_seen",
            "digest",
            "digest_seq",
            "digest_scope_version",
        ],
        key: &["device_id"],
    },
    Table {
        name: "device_earlier_actors",
        columns: &["device_id", "actor_id"],
        key: &["device_id", "actor_id"],
    },
    Table {
        name: "documents",
        columns: &[
            "doc_id",
            "kind",
            "grid_id",
            "household_id",
            "department",
            "assignee",
            "heads",
            "snapshot",
            "stored_bytes",
            "last_seq",
            "updated_at",
        ],
        key: &["doc_id"],
    },
    Table { name: "doc_helpers", columns: &["doc_id", "member_id"], key: &["doc_id", "member_id"] },
    Table {
        name: "changes",
        columns: &["seq", "doc_id", "hash", "bytes", "origin_device", "received_at"],
        key: &["seq"],
    },
    Table { name: "device_docs", columns: &["device_id", "doc_id"], key: &["device_id", "doc_id"] },
    Table { name: "audit_log", columns: &["id", "at", "actor", "action", "detail"], key: &["id"] },
    Table {
        name: "staff_accounts",
        columns: &[
            "account_id",
            "member_id",
            "login",
            "password_hash",
            "failed_attempts",
            "locked_until",
            "created_at",
            "disabled_at",
        ],
        key: &["account_id"],
    },
    Table {
        name: "staff_sessions",
        columns: &["session_hash", "account_id", "csrf_token", "created_at", "expires_at"],
        key: &["session_hash"],
    },
    Table { name: "county_taxonomy", columns: &["id", "version", "body", "updated_at"], key: &["id"] },
    Table {
        name: "attachments",
        columns: &["hash", "size", "media_type", "received", "complete", "created_at", "open_to_referrers"],
        key: &["hash"],
    },
    Table {
        name: "attachment_chunks",
        columns: &["hash", "start_byte", "bytes"],
        key: &["hash", "start_byte"],
    },
    Table { name: "attachment_thumbnails", columns: &["hash", "media_type", "bytes"], key: &["hash"] },
    Table {
        name: "attachment_holders",
        columns: &["hash", "doc_id", "device_id", "proved_at"],
        key: &["hash", "doc_id"],
    },
    Table { name: "attachment_possessors", columns: &["hash", "device_id"], key: &["hash", "device_id"] },
    Table { name: "attachment_usage", columns: &["device_id", "bytes"], key: &["device_id"] },
    // Staged uploads are not carried: a device whose upload was cut resumes it from 0.
];

/// Rows read or written per batch.
pub const BATCH_ROWS: usize = 500;

/// Receives batches of rows of one table.
pub type RowSink<'a> = dyn FnMut(&Table, &[Vec<Cell>]) -> Result<(), StorageError> + 'a;

/// Feeds rows into a sink (a source's export, as an import consumes it).
pub type RowSource<'a> = dyn FnMut(&mut RowSink<'_>) -> Result<(), StorageError> + 'a;

/// Why a copy could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target already holds a county.
    #[error(
        "目标数据库已有数据，未做任何更改；如需覆盖请加 --replace / the target already holds data; nothing was changed (use --replace to overwrite it)"
    )]
    TargetNotEmpty,
    /// Storage failed; the target's transaction was rolled back.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a copy read from its source's snapshot: rows per table and every document's heads. The
/// copy is checked against this ([`verify_copy`]), not against the source as it is afterwards,
/// so a source that keeps taking writes (a backup beside a running server) verifies.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Table name to rows copied.
    pub rows: BTreeMap<&'static str, usize>,
    /// Every copied document's heads, sorted, as the snapshot held them.
    pub heads: BTreeMap<DocumentId, Vec<ChangeHash>>,
}

/// The heads of one exported `documents` row.
fn row_heads(table: &Table, row: &[Cell]) -> Result<Option<(DocumentId, Vec<ChangeHash>)>, StorageError> {
    if table.name != "documents" {
        return Ok(None);
    }
    let column = |name: &str| table.columns.iter().position(|c| *c == name).and_then(|i| row.get(i));
    let (Some(Cell::Text(id)), Some(Cell::Blob(encoded))) = (column("doc_id"), column("heads")) else {
        return Err(StorageError::Damaged("a documents row without its id or heads".into()));
    };
    let id: DocumentId = id.parse().map_err(|_| StorageError::Damaged(format!("document id {id:?}")))?;
    let mut heads = decode_heads(encoded).ok_or_else(|| StorageError::Damaged(format!("heads of {id}")))?;
    heads.sort();
    Ok(Some((id, heads)))
}

/// Copies everything in `from` into `to` in one transaction of the target; with `replace`,
/// the target's data is deleted first (in the same transaction), else it must be empty.
pub fn copy(from: &dyn Storage, to: &dyn Storage, replace: bool) -> Result<CopyReport, TransferError> {
    if !replace && !to.is_empty()? {
        return Err(TransferError::TargetNotEmpty);
    }
    let mut report = CopyReport::default();
    to.import(replace, &mut |write: &mut RowSink<'_>| {
        from.export(&mut |table: &Table, rows: &[Vec<Cell>]| {
            *report.rows.entry(table.name).or_default() += rows.len();
            for row in rows {
                if let Some((id, heads)) = row_heads(table, row)? {
                    report.heads.insert(id, heads);
                }
            }
            write(table, rows)
        })
    })?;
    Ok(report)
}

/// Compares the target of a copy with what the copy read (`report`): rows per table, every
/// document's heads, and that every target document's snapshot loads to those heads. Empty
/// means the target holds exactly the snapshot, whatever the source took since.
pub fn verify_copy(report: &CopyReport, to: &dyn Storage) -> Result<Vec<Difference>, StorageError> {
    let mut out = Vec::new();
    let target_counts = to.row_counts()?;
    for table in TABLES {
        let source = report.rows.get(table.name).copied().unwrap_or(0) as u64;
        let target = target_counts.get(table.name).copied().unwrap_or(0);
        if source != target {
            out.push(Difference::RowCount { table: table.name, source, target });
        }
    }
    compare_heads(&report.heads, to, &mut out)?;
    Ok(out)
}

/// A difference found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A table has a different number of rows.
    RowCount {
        /// Table.
        table: &'static str,
        /// Rows in the source.
        source: u64,
        /// Rows in the target.
        target: u64,
    },
    /// A document is in the source only.
    Missing(DocumentId),
    /// A document is in the target only.
    Extra(DocumentId),
    /// A document's heads differ.
    Heads(DocumentId),
    /// A document's stored snapshot does not load to the heads stored beside it.
    Damaged(DocumentId),
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::RowCount { table, source, target } => {
                write!(
                    f,
                    "表 {table} 行数不同 / table {table}: {source} rows in the source, {target} in the target"
                )
            }
            Difference::Missing(id) => write!(f, "目标缺少文档 / document missing from the target: {id}"),
            Difference::Extra(id) => write!(f, "目标多出文档 / document only in the target: {id}"),
            Difference::Heads(id) => write!(f, "文档版本不同 / document heads differ: {id}"),
            Difference::Damaged(id) => {
                write!(f, "目标文档无法读取或版本不符 / target document does not load to its heads: {id}")
            }
        }
    }
}

/// Compares the target with the source as it is now: rows per table, every document's heads,
/// and that every target document's snapshot loads to those heads. Empty means identical. Only
/// meaningful while the source takes no writes; a copy is checked with [`verify_copy`].
pub fn verify(from: &dyn Storage, to: &dyn Storage) -> Result<Vec<Difference>, StorageError> {
    let mut out = Vec::new();
    let (source_counts, target_counts) = (from.row_counts()?, to.row_counts()?);
    for table in TABLES {
        let source = source_counts.get(table.name).copied().unwrap_or(0);
        let target = target_counts.get(table.name).copied().unwrap_or(0);
        if source != target {
            out.push(Difference::RowCount { table: table.name, source, target });
        }
    }
    compare_heads(&heads_by_document(from)?, to, &mut out)?;
    Ok(out)
}

/// Adds the differences between `source` heads and the target's documents to `out`.
fn compare_heads(
    source: &BTreeMap<DocumentId, Vec<ChangeHash>>,
    to: &dyn Storage,
    out: &mut Vec<Difference>,
) -> Result<(), StorageError> {
    let target = heads_by_document(to)?;
    for (id, heads) in source {
        match target.get(id) {
            None => out.push(Difference::Missing(*id)),
            Some(other) if other != heads => out.push(Difference::Heads(*id)),
            Some(_) => {}
        }
    }
    for (id, heads) in &target {
        if !source.contains_key(id) {
            out.push(Difference::Extra(*id));
        }
        let loaded = to.document(*id).ok().flatten().map(|mut doc| {
            let mut actual = doc.get_heads();
            actual.sort();
            actual
        });
        if loaded.as_ref() != Some(heads) {
            out.push(Difference::Damaged(*id));
        }
    }
    Ok(())
}

fn heads_by_document(storage: &dyn Storage) -> Result<BTreeMap<DocumentId, Vec<ChangeHash>>, StorageError> {
    let mut out = BTreeMap::new();
    for (id, encoded) in storage.document_heads()? {
        let mut heads =
            decode_heads(&encoded).ok_or_else(|| StorageError::Damaged(format!("heads of {id}")))?;
        heads.sort();
        out.insert(id, heads);
    }
    Ok(out)
}
