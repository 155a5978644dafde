//! Duplicate households on the phone: mark two households as the same one, undo the mark, and
//! read a household together with every household marked as the same. Converts and delegates
//! to `doorstep_core::store::Replica`.

use doorstep_core::ids::HouseholdId;
use doorstep_core::store;

use crate::error::DoorstepError;
use crate::replica::{Replica, now};
use crate::types::{Household, RequestSummary, parse};

/// A household as one with every household marked as the same: the canonical household's
/// record with the residents and visits of the others, and all their requests.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct MergedHousehold {
    /// The canonical household, residents and visits of the whole group included.
    pub household: Household,
    /// The other households of the group (their records are kept, never deleted).
    pub merged: Vec<String>,
    /// Requests about any household of the group.
    pub requests: Vec<RequestSummary>,
}

impl From<store::MergedHousehold> for MergedHousehold {
    fn from(m: store::MergedHousehold) -> Self {
        Self {
            household: m.household.into(),
            merged: m.merged.iter().map(ToString::to_string).collect(),
            requests: m.requests.into_iter().map(Into::into).collect(),
        }
    }
}

#[uniffi::export]
impl Replica {
    /// Marks two households as the same household (registered twice). The mark syncs like any
    /// edit; every device then lists them as one, and nothing is deleted. Returns the mark's id.
    pub fn mark_same_household(&self, a: String, b: String) -> Result<String, DoorstepError> {
        let (a, b): (HouseholdId, HouseholdId) = (parse(&a)?, parse(&b)?);
        self.with(|r| Ok(r.mark_same_household(a, b, now())?.to_string()))
    }

    /// Undoes a wrong "same household" mark: the two are listed apart again on every device.
    /// Fails with kind `InvalidInput` when they are not marked as the same.
    pub fn unmark_same_household(&self, a: String, b: String) -> Result<String, DoorstepError> {
        let (a, b): (HouseholdId, HouseholdId) = (parse(&a)?, parse(&b)?);
        self.with(|r| Ok(r.unmark_same_household(a, b, now())?.to_string()))
    }

    /// A household together with every household marked as the same (any of them may be given).
    pub fn merged_household(&self, id: String) -> Result<MergedHousehold, DoorstepError> {
        let id: HouseholdId = parse(&id)?;
        self.with(|r| Ok(r.merged_household(id)?.into()))
    }
}
