//! Resident requests (群众诉求): what was asked, and the append-only log of what was done.

use serde::{Deserialize, Serialize};

use crate::ids::{CategoryCode, DepartmentCode, EventId, GridId, HouseholdId, MemberId, RequestId};
use crate::lifecycle::{Derived, RequestStatus};
use crate::time::Timestamp;

/// How urgent a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// 一般
    Normal,
    /// 紧急
    Urgent,
    /// 特急: danger to life or property.
    Critical,
}

impl Urgency {
    /// The stable text stored in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Urgent => "urgent",
            Urgency::Critical => "critical",
        }
    }

    /// Reads stored text; unknown text reads as [`Urgency::Normal`].
    pub fn from_stored(s: &str) -> Self {
        match s {
            "urgent" => Urgency::Urgent,
            "critical" => Urgency::Critical,
            _ => Urgency::Normal,
        }
    }
}

/// A resident's answer at the follow-up visit (回访).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    /// 满意
    Satisfied,
    /// 基本满意
    BasicallySatisfied,
    /// 不满意
    Unsatisfied,
}

impl Satisfaction {
    /// The stable text stored in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "satisfied",
            Satisfaction::BasicallySatisfied => "basically_satisfied",
            Satisfaction::Unsatisfied => "unsatisfied",
        }
    }

    /// Reads stored text.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "satisfied" => Some(Satisfaction::Satisfied),
            "basically_satisfied" => Some(Satisfaction::BasicallySatisfied),
            "unsatisfied" => Some(Satisfaction::Unsatisfied),
            _ => None,
        }
    }
}

/// What an event does. Events carrying data hold it here; every event may also carry a note.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventAction {
    /// 提出: the request was raised (always the first event).
    Raised,
    /// 即时办理: solved on the spot by the person who took it.
    ResolvedOnSpot,
    /// 受理: accepted by the community.
    Accepted,
    /// 议事: discussed (e.g. at a residents' council).
    Discussed,
    /// 转办: dispatched to a department.
    Dispatched {
        /// The department it goes to.
        department: DepartmentCode,
    },
    /// 指派: assigned to a volunteer or worker.
    Assigned {
        /// Who is to handle it.
        assignee: MemberId,
    },
    /// 认领: claimed by the volunteer who records the event.
    Claimed,
    /// 进展: progress report.
    Progress,
    /// 督办: put under supervision.
    Supervised,
    /// 办结: resolved.
    Resolved,
    /// 回访: follow-up visit with the resident's satisfaction.
    FollowedUp {
        /// The resident's answer.
        satisfaction: Satisfaction,
    },
    /// 重新打开: reopened.
    Reopened,
    /// 销号: closed (crossed off the ledger).
    Closed,
    /// 撤销: cancelled.
    Cancelled,
    /// 复核: a supervisor reviewed a conflict between concurrent events; `outcome`, if given,
    /// is the status the request takes from here on.
    Reviewed {
        /// The chosen status, or `None` to keep the derived one.
        outcome: Option<RequestStatus>,
    },
    /// An event kind written by a newer app version: kept and shown, never interpreted.
    Unknown {
        /// The stored kind text.
        stored_kind: String,
    },
}

impl EventAction {
    /// The stable text stored in documents.
    pub fn kind_str(&self) -> &str {
        match self {
            EventAction::Raised => "raised",
            EventAction::ResolvedOnSpot => "resolved_on_spot",
            EventAction::Accepted => "accepted",
            EventAction::Discussed => "discussed",
            EventAction::Dispatched { .. } => "dispatched",
            EventAction::Assigned { .. } => "assigned",
            EventAction::Claimed => "claimed",
            EventAction::Progress => "progress",
            EventAction::Supervised => "supervised",
            EventAction::Resolved => "resolved",
            EventAction::FollowedUp { .. } => "followed_up",
            EventAction::Reopened => "reopened",
            EventAction::Closed => "closed",
            EventAction::Cancelled => "cancelled",
            EventAction::Reviewed { .. } => "reviewed",
            EventAction::Unknown { stored_kind } => stored_kind,
        }
    }

    /// A verb for error messages ("dispatch", "close"…).
    pub fn verb(&self) -> &'static str {
        match self {
            EventAction::Raised => "raise",
            EventAction::ResolvedOnSpot => "resolve on the spot",
            EventAction::Accepted => "accept",
            EventAction::Discussed => "discuss",
            EventAction::Dispatched { .. } => "dispatch",
            EventAction::Assigned { .. } => "assign",
            EventAction::Claimed => "claim",
            EventAction::Progress => "report progress on",
            EventAction::Supervised => "supervise",
            EventAction::Resolved => "resolve",
            EventAction::FollowedUp { .. } => "follow up",
            EventAction::Reopened => "reopen",
            EventAction::Closed => "close",
            EventAction::Cancelled => "cancel",
            EventAction::Reviewed { .. } => "review",
            EventAction::Unknown { .. } => "apply an unknown event to",
        }
    }
}

/// One event of a request's log, as read from the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// The event's id.
    pub id: EventId,
    /// What it does.
    pub action: EventAction,
    /// Free note (may be empty).
    pub note: String,
    /// Who recorded it.
    pub by: MemberId,
    /// When, by the recording device's clock (display only; never used for ordering).
    pub at: Timestamp,
    /// The events the recording device had already seen: the causal order of the log.
    pub after: Vec<EventId>,
    /// Photos and files attached to it (references; the bytes are in the store).
    #[serde(default)]
    pub attachments: Vec<crate::model::attachment::AttachmentRef>,
}

/// A request document as read, with its status derived from the event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The request's id (also its document id).
    pub id: RequestId,
    /// Document schema version it was last written with.
    pub schema: u32,
    /// The household it concerns, if any (a broken streetlight has none).
    pub household: Option<HouseholdId>,
    /// The grid it belongs to; this decides who may see it.
    pub grid: GridId,
    /// Category code from the county taxonomy.
    pub category: CategoryCode,
    /// What the resident asked for.
    pub description: String,
    /// Urgency.
    pub urgency: Urgency,
    /// When it was raised (device clock).
    pub raised_at: Timestamp,
    /// Who raised it.
    pub raised_by: MemberId,
    /// When it is due, fixed at raising from the category's due time.
    pub due_at: Timestamp,
    /// The event log in causal order (see [`crate::lifecycle`]).
    pub events: Vec<RequestEvent>,
    /// Status and other facts derived from the log.
    pub derived: Derived,
}

impl Request {
    /// The derived status.
    pub fn status(&self) -> RequestStatus {
        self.derived.status
    }
}

/// What a worker types to raise a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    /// The household concerned, if any (it must be in the replica).
    pub household: Option<HouseholdId>,
    /// The grid (taken from the household when one is given and this is `None`).
    pub grid: Option<GridId>,
    /// Category code (must be in the taxonomy).
    pub category: String,
    /// What the resident asked for (required).
    pub description: String,
    /// Urgency.
    pub urgency: Urgency,
    /// When it was raised, by this device's clock.
    pub at: Timestamp,
}

/// What a worker records on a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The action.
    pub action: EventAction,
    /// Note (may be empty).
    pub note: String,
    /// When, by this device's clock.
    pub at: Timestamp,
}

/// One row of a request list, read from the replica's index (no document load).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The request.
    pub id: RequestId,
    /// Household, if any.
    pub household: Option<HouseholdId>,
    /// Grid.
    pub grid: GridId,
    /// Category code.
    pub category: CategoryCode,
    /// Derived status.
    pub status: RequestStatus,
    /// Urgency.
    pub urgency: Urgency,
    /// First line of the description.
    pub title: String,
    /// Raised at (device clock).
    pub raised_at: Timestamp,
    /// Due at.
    pub due_at: Timestamp,
    /// Current assignee, if any.
    pub assignee: Option<MemberId>,
    /// Department it is dispatched to, if any.
    pub department: Option<DepartmentCode>,
    /// Under supervision (督办).
    pub supervised: bool,
    /// Concurrent events wait for a supervisor's review.
    pub has_conflict: bool,
}
