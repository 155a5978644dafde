//! `doorstep-server check`: reads every stored document with the core's field rules and
//! readers, as an upload is checked today. Documents stored before a rule existed, written by
//! an older server, or brought back from an old backup are found and named, with the field that
//! breaks its rule; nothing is changed.

use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::DocumentId;
use doorstep_core::sync::validate;

use crate::storage::{Storage, StorageError};

/// A stored document that cannot be read in full, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The document.
    pub id: DocumentId,
    /// Why (the failing field's path where there is one).
    pub reason: String,
}

/// What [`check_all`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Documents read.
    pub documents: usize,
    /// Those that cannot be read in full.
    pub unreadable: Vec<Unreadable>,
}

/// Reads one stored document as phones and the dashboard read it; `Err` says why it cannot be
/// read in full.
pub fn check_document(storage: &dyn Storage, id: DocumentId) -> Result<(), String> {
    let stored = match storage.document(id) {
        Ok(Some(doc)) => doc,
        Ok(None) => return Err("listed but not stored".into()),
        Err(e) => return Err(format!("cannot be loaded: {e}")),
    };
    let facts = validate::facts(&stored, id).map_err(|r| r.message)?;
    doc::check::document(&stored, id, facts.kind).map_err(|e| e.to_string())?;
    match facts.kind {
        DocumentKind::Household => doc::household::read(&stored, id.as_household()).map(drop),
        DocumentKind::Request => doc::request::read(&stored, id.as_request()).map(drop),
    }
    .map_err(|e| e.to_string())
}

/// Reads every stored document, one at a time (memory follows one document, not the county).
pub fn check_all(storage: &dyn Storage) -> Result<CheckReport, StorageError> {
    let mut report = CheckReport::default();
    for (id, _) in storage.document_heads()? {
        report.documents += 1;
        if let Err(reason) = check_document(storage, id) {
            report.unreadable.push(Unreadable { id, reason });
        }
    }
    Ok(report)
}
