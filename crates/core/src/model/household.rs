//! Households: where people live, who lives there, and the visits paid to them.

use serde::{Deserialize, Serialize};

use crate::ids::{GridId, HouseholdId, MemberId};
use crate::model::resident::{NewResident, Resident, ResidentTag};
use crate::model::visit::Visit;
use crate::time::Timestamp;

/// Where a household lives: community (社区/村), grid, building (楼栋), unit (单元), room (室).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Community or village name.
    pub community: String,
    /// The grid the household belongs to; this decides who may see it.
    pub grid: GridId,
    /// Building (or village group / 组 in the countryside).
    pub building: String,
    /// Unit (entrance) within the building; may be empty.
    pub unit: String,
    /// Room or house number.
    pub room: String,
}

impl Address {
    /// The address as one line, e.g. `3栋 2单元 501`.
    pub fn short_line(&self) -> String {
        [self.building.as_str(), self.unit.as_str(), self.room.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A household document as read: the current values and the whole visit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Household {
    /// The household's id (also its document id).
    pub id: HouseholdId,
    /// Document schema version it was last written with.
    pub schema: u32,
    /// Address.
    pub address: Address,
    /// Residents, oldest entry first (removed ones included, flagged).
    pub residents: Vec<Resident>,
    /// Free notes about the household.
    pub notes: String,
    /// Volunteers / central households assigned to help it.
    pub helpers: Vec<MemberId>,
    /// Visit log, newest first (by the device time of the visit, then id).
    pub visits: Vec<Visit>,
}

impl Household {
    /// The visit with the latest device time, if any.
    pub fn last_visit(&self) -> Option<&Visit> {
        self.visits.first()
    }

    /// Union of the tags of current residents, sorted.
    pub fn tags(&self) -> Vec<ResidentTag> {
        let mut tags: Vec<ResidentTag> =
            self.residents.iter().filter(|r| !r.removed).flat_map(|r| r.tags.iter().copied()).collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// A label for lists: the first current resident's name, or the address.
    pub fn display_name(&self) -> String {
        self.residents
            .iter()
            .find(|r| !r.removed)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| self.address.short_line())
    }
}

/// What a worker types to register a household.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHousehold {
    /// Address (required: building and room must not be empty).
    pub address: Address,
    /// Residents known at registration.
    pub residents: Vec<NewResident>,
    /// Notes.
    pub notes: String,
}

/// A change to a household's own fields; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HouseholdPatch {
    /// New community name.
    pub community: Option<String>,
    /// New building.
    pub building: Option<String>,
    /// New unit.
    pub unit: Option<String>,
    /// New room.
    pub room: Option<String>,
    /// New notes.
    pub notes: Option<String>,
}

/// One row of a grid's household list, read from the replica's index (no document load).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdSummary {
    /// The household.
    pub id: HouseholdId,
    /// Its grid.
    pub grid: GridId,
    /// Label for lists (first resident's name or the address).
    pub display_name: String,
    /// Address on one line.
    pub address_line: String,
    /// Number of current residents.
    pub resident_count: u32,
    /// Union of current residents' tags.
    pub tags: Vec<ResidentTag>,
    /// Device time of the latest visit, if visited.
    pub last_visit_at: Option<Timestamp>,
    /// Requests of this household that are not closed or cancelled.
    pub open_requests: u32,
    /// True when some field holds concurrent values waiting for a choice.
    pub has_conflict: bool,
}
