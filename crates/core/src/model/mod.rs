//! The domain types: what grid workers record and what the screens show.

pub mod attachment;
pub mod grid;
pub mod household;
pub mod request;
pub mod resident;
pub mod role;
pub mod same_household;
pub mod taxonomy;
pub mod text;
pub mod visit;

pub use attachment::{
    AttachmentOwner, AttachmentRef, AttachmentState, ContentHash, LocationFix, NewAttachment,
};
pub use grid::Grid;
pub use household::{Address, Household, HouseholdPatch, HouseholdSummary, NewHousehold};
pub use request::{
    EventAction, NewEvent, NewRequest, Request, RequestEvent, RequestSummary, Satisfaction, Urgency,
};
pub use resident::{NewResident, Resident, ResidentPatch, ResidentTag, Sex};
pub use role::Role;
pub use same_household::{HouseholdGroups, SameAsMark};
pub use taxonomy::{Category, Department, Taxonomy};
pub use visit::{NewVisit, Visit, VisitKind};
