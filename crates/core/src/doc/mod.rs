//! Automerge documents: how households and requests are laid out, read and edited.
//!
//! Every function here works on an in-memory [`automerge::AutoCommit`] and never commits:
//! the caller (the replica store, a test, the server) decides when a group of edits becomes
//! one change. Ids and times come in as arguments, so the same inputs give the same document.

use automerge::{AutoCommit, ROOT};

use crate::doc::access::str_at;
use crate::error::{CoreError, Result};
use crate::ids::DocumentId;

pub(crate) mod access;
pub mod attachment;
pub mod check;
pub mod household;
pub mod request;
pub mod same_household;
pub mod schema;

/// The schema version this build writes into every document it creates. Readers accept any
/// version: fields they do not know are skipped and left intact.
///
/// - 1: the first format.
/// - 2: households carry `same_as` marks ([`same_household`]); a version 1 document gains the
///   map and the version mark with its first mark.
pub const SCHEMA_VERSION: u32 = 2;

/// The two kinds of synced documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// A household document ([`household`]).
    Household,
    /// A request document ([`request`]).
    Request,
}

impl DocumentKind {
    /// The `type` field value.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Household => household::TYPE,
            DocumentKind::Request => request::TYPE,
        }
    }

    /// Reads a `type` field value.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            household::TYPE => Some(DocumentKind::Household),
            request::TYPE => Some(DocumentKind::Request),
            _ => None,
        }
    }

    /// The kind a document says it is, from its `type` field.
    pub fn of(doc: &AutoCommit) -> Option<Self> {
        Self::from_stored(&str_at(doc, &ROOT, "type")?)
    }
}

pub(crate) fn corrupt(id: DocumentId, reason: String) -> CoreError {
    CoreError::CorruptDocument { id, reason }
}

pub(crate) fn check_type(doc: &AutoCommit, id: DocumentId, expected: &str) -> Result<()> {
    match str_at(doc, &ROOT, "type") {
        Some(t) if t == expected => Ok(()),
        Some(t) => Err(corrupt(id, format!("is a {t:?} document, not a {expected}"))),
        None => Err(corrupt(id, "has no type field".into())),
    }
}

/// The `id` field a document carries (the document's id as text), if any.
pub fn stored_id(doc: &AutoCommit) -> Option<String> {
    str_at(doc, &ROOT, "id")
}
