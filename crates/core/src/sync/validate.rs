//! What the server checks before it stores an upload, as pure functions: every change is a
//! well-formed Automerge change written by the uploading device's actor (or one the server
//! already has), nothing depends on changes the server lacks, and the result is a valid
//! Doorstep document of the same kind and id, within the size limit.
//!
//! Scope (may this member write this document?) is the server's decision and is made on the
//! [`DocFacts`] returned here, before and after the upload.

use std::collections::HashSet;

use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use crate::doc::{self, DocumentKind};
use crate::ids::{DepartmentCode, DocumentId, GridId, HouseholdId, MemberId};
use crate::sync::entries::{self, Uploader};
use crate::sync::message::ErrorCode;

/// The facts about a document that scope rules look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocFacts {
    /// Household or request.
    pub kind: DocumentKind,
    /// The grid it belongs to.
    pub grid: GridId,
    /// For a request: the household it concerns.
    pub household: Option<HouseholdId>,
    /// For a request: the department it is dispatched to.
    pub department: Option<DepartmentCode>,
    /// For a request: who holds it.
    pub assignee: Option<MemberId>,
    /// For a household: its assigned helpers (volunteers, central households).
    pub helpers: Vec<MemberId>,
}

/// Reads the scope facts of a document, checking that it is a valid document with this id.
pub fn facts(doc: &AutoCommit, id: DocumentId) -> Result<DocFacts, Rejection> {
    let invalid = |message: String| Rejection { code: ErrorCode::InvalidDocument, message };
    let kind = DocumentKind::of(doc).ok_or_else(|| invalid("the document has no known type".into()))?;
    if doc::stored_id(doc).as_deref() != Some(id.to_string().as_str()) {
        return Err(invalid("the document's id field does not match the document".into()));
    }
    Ok(match kind {
        DocumentKind::Household => {
            let (grid, helpers) =
                doc::household::scope_facts(doc, id.as_household()).map_err(|e| invalid(e.to_string()))?;
            DocFacts { kind, grid, household: None, department: None, assignee: None, helpers }
        }
        DocumentKind::Request => {
            let r = doc::request::read(doc, id.as_request()).map_err(|e| invalid(e.to_string()))?;
            DocFacts {
                kind,
                grid: r.grid,
                household: r.household,
                department: r.derived.department,
                assignee: r.derived.assignee,
                helpers: Vec::new(),
            }
        }
    })
}

/// Why an upload was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// The protocol error code.
    pub code: ErrorCode,
    /// Detail for the device (no internal error text).
    pub message: String,
}

/// An upload that passed every check.
pub struct CheckedUpload {
    /// The document with the upload applied.
    pub doc: AutoCommit,
    /// The changes the server did not have, in causal order: `(hash, raw bytes)`.
    pub new_changes: Vec<(ChangeHash, Vec<u8>)>,
    /// The heads of everything uploaded (to acknowledge with).
    pub upload_heads: Vec<ChangeHash>,
    /// The document's facts before the upload (`None` for a new document).
    pub before: Option<DocFacts>,
    /// The document's facts after the upload.
    pub after: DocFacts,
    /// Households the upload newly links this document to (a new "same household" mark's other
    /// household, a new request's household): the server checks they are in the uploader's
    /// scope as well.
    pub links: Vec<HouseholdId>,
}

/// A document as the server holds it, before an upload is applied to it.
pub struct Stored {
    /// Its current state.
    pub doc: AutoCommit,
    /// Its facts as stored beside it (what [`facts`] returned when it was last stored), so an
    /// upload does not read the whole document twice.
    pub facts: DocFacts,
    /// The bytes it takes in storage, counted against the document size limit.
    pub bytes: usize,
}

/// Checks an upload of `changes` to document `id`, whose current server state is `existing`
/// (`None` if the server does not have it), made by a device with Automerge actor
/// `device_actor` belonging to `uploader`. The document is taken, not copied: the upload is
/// applied to it. Besides the changes' own form, the resulting document must pass the field
/// rules ([`doc::check`]) and the entry rules ([`entries`]: attribution, roles, append-only).
pub fn check_upload(
    id: DocumentId,
    existing: Option<Stored>,
    changes: &[Vec<u8>],
    device_actor: &ActorId,
    uploader: &Uploader,
    max_document_bytes: usize,
) -> Result<CheckedUpload, Rejection> {
    check_upload_by(id, existing, changes, std::slice::from_ref(device_actor), uploader, max_document_bytes)
}

/// [`check_upload`] for a device that writes with any of `device_actors`: its own actor, and
/// the actors of the devices it replaced on the same replica (re-enrolment, PROTOCOL §2.4),
/// whose changes may still be waiting on the phone.
pub fn check_upload_by(
    id: DocumentId,
    existing: Option<Stored>,
    changes: &[Vec<u8>],
    device_actors: &[ActorId],
    uploader: &Uploader,
    max_document_bytes: usize,
) -> Result<CheckedUpload, Rejection> {
    let (mut doc, before, existing_bytes) = match existing {
        Some(stored) => (stored.doc, Some(stored.facts), stored.bytes),
        None => (AutoCommit::default(), None, 0),
    };
    let heads_before = before.as_ref().map(|_| doc.get_heads());
    let mut parsed = Vec::with_capacity(changes.len());
    let mut added_bytes = 0;
    let mut uploaded: Vec<ChangeHash> = Vec::with_capacity(changes.len());
    let mut deps_within: HashSet<ChangeHash> = HashSet::new();
    for bytes in changes {
        let change = Change::from_bytes(bytes.clone()).map_err(|_| Rejection {
            code: ErrorCode::MalformedChange,
            message: "an upload item is not a single Automerge change".into(),
        })?;
        uploaded.push(change.hash());
        deps_within.extend(change.deps().iter().copied());
        if doc.get_change_by_hash(&change.hash()).is_some() {
            continue;
        }
        if !device_actors.contains(change.actor_id()) {
            return Err(Rejection {
                code: ErrorCode::ForgedActor,
                message: format!(
                    "change {} was written by actor {}, not by this device",
                    change.hash(),
                    change.actor_id()
                ),
            });
        }
        added_bytes += bytes.len();
        parsed.push(change);
    }
    if existing_bytes + added_bytes > max_document_bytes {
        return Err(Rejection {
            code: ErrorCode::DocumentTooLarge,
            message: format!("the document would exceed {max_document_bytes} bytes"),
        });
    }
    let new_changes: Vec<(ChangeHash, Vec<u8>)> =
        parsed.iter().map(|c| (c.hash(), c.raw_bytes().to_vec())).collect();
    doc.apply_changes(parsed).map_err(|_| Rejection {
        code: ErrorCode::MalformedChange,
        message: "the changes could not be applied".into(),
    })?;
    if !doc.get_missing_deps(&[]).is_empty() {
        return Err(Rejection {
            code: ErrorCode::MissingDependencies,
            message: "the upload depends on changes the server does not have; upload them first".into(),
        });
    }
    let after = facts(&doc, id)?;
    if let Some(before) = &before
        && before.kind != after.kind
    {
        return Err(Rejection {
            code: ErrorCode::InvalidDocument,
            message: "an upload cannot change a document's kind".into(),
        });
    }
    let mut links = Vec::new();
    if !new_changes.is_empty() {
        doc::check::document(&doc, id, after.kind).map_err(|e| Rejection {
            code: ErrorCode::InvalidDocument,
            message: format!("document {id}: {e}"),
        })?;
        links = entries::check(&doc, id, after.kind, heads_before.as_deref(), uploader)?;
    }
    let mut upload_heads: Vec<ChangeHash> =
        uploaded.into_iter().filter(|h| !deps_within.contains(h)).collect();
    upload_heads.sort();
    upload_heads.dedup();
    Ok(CheckedUpload { doc, new_changes, upload_heads, before, after, links })
}
