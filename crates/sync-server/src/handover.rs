//! Handing households over from one worker to another (DESIGN §2). A whole grid changes hands
//! with [`crate::storage::Storage::hand_over_grid`]; some of a grid's households move with
//! [`hand_over_households`]: each household and its requests are moved, as the server's own
//! change, into a grid of the new worker. Either way the old worker's phones upload what they
//! changed while they held the documents (those changes were made in scope and are accepted),
//! then purge them; the new worker's phones receive them with their open requests.

use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{DocumentId, GridId, HouseholdId};
use doorstep_core::time::Timestamp;

use crate::storage::{Storage, StorageError};

/// Why a hand-over of households was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum HandOverError {
    /// No household has this id.
    #[error("没有这一户 / no such household: {0}")]
    UnknownHousehold(HouseholdId),
    /// No grid has this id.
    #[error("没有这个网格 / no such grid: {0}")]
    UnknownGrid(GridId),
    /// A stored document could not be edited.
    #[error("无法修改记录 / a stored document could not be changed: {0}")]
    Document(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What [`hand_over_households`] moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HandedOver {
    /// Households moved to the new grid.
    pub households: usize,
    /// Their requests, moved with them.
    pub requests: usize,
}

/// Moves `households` and their requests to grid `to`, in one transaction. Households already
/// in `to` are left as they are.
pub fn hand_over_households(
    storage: &dyn Storage,
    households: &[HouseholdId],
    to: GridId,
    now: Timestamp,
) -> Result<HandedOver, HandOverError> {
    if !storage.grids()?.iter().any(|g| g.id == to) {
        return Err(HandOverError::UnknownGrid(to));
    }
    let edit = |e: doorstep_core::CoreError| HandOverError::Document(e.to_string());
    let mut writes: Vec<(DocumentId, automerge::AutoCommit)> = Vec::new();
    let mut out = HandedOver::default();
    for &household in households {
        let mut document = storage
            .document(household.into())?
            .filter(|d| DocumentKind::of(d) == Some(DocumentKind::Household))
            .ok_or(HandOverError::UnknownHousehold(household))?;
        if doc::household::read(&document, household).map_err(edit)?.address.grid == to {
            continue;
        }
        doc::household::set_grid(&mut document, household, to).map_err(edit)?;
        document.commit();
        writes.push((household.into(), document));
        out.households += 1;
        for request in storage.requests_of_household(household)? {
            let Some(mut document) = storage.document(request.into())? else { continue };
            doc::request::set_grid(&mut document, request, to).map_err(edit)?;
            document.commit();
            writes.push((request.into(), document));
            out.requests += 1;
        }
    }
    if !writes.is_empty() {
        storage.write_server_documents(&mut writes, now)?;
    }
    tracing::info!(households = out.households, requests = out.requests, grid = %to, "households handed over");
    Ok(out)
}
