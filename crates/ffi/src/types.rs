//! Plain records and enums that cross the boundary, and their conversions. Ids travel as
//! UUID strings and times as milliseconds since the Unix epoch.

use doorstep_core::conflict::{Conflict as CoreConflict, HouseholdField};
use doorstep_core::ids::ResidentId;
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::model::{self as core, EventAction, ResidentTag, Satisfaction, Sex, Urgency, VisitKind};
use doorstep_core::store::{TimelineEntry as CoreTimelineEntry, TimelineItem};

use crate::error::DoorstepError;

#[uniffi::remote(Enum)]
pub enum Sex {
    Male,
    Female,
    Unknown,
}

#[uniffi::remote(Enum)]
pub enum ResidentTag {
    ElderlyAlone,
    Disabled,
    LowIncome,
    LeftBehindChild,
    PartyMember,
    SeriousIllness,
    Veteran,
}

#[uniffi::remote(Enum)]
pub enum VisitKind {
    Routine,
    FollowUp,
    Care,
    SafetyCheck,
}

#[uniffi::remote(Enum)]
pub enum Urgency {
    Normal,
    Urgent,
    Critical,
}

#[uniffi::remote(Enum)]
pub enum Satisfaction {
    Satisfied,
    BasicallySatisfied,
    Unsatisfied,
}

#[uniffi::remote(Enum)]
pub enum RequestStatus {
    Raised,
    Accepted,
    Discussing,
    Dispatched,
    Assigned,
    InProgress,
    Resolved,
    FollowedUp,
    Reopened,
    Closed,
    Cancelled,
}

/// Parses an id given as text.
pub(crate) fn parse<T: std::str::FromStr<Err = doorstep_core::CoreError>>(
    text: &str,
) -> Result<T, DoorstepError> {
    text.parse::<T>().map_err(DoorstepError::from)
}

/// Where a household lives.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Address {
    /// Community or village.
    pub community: String,
    /// Grid id.
    pub grid: String,
    /// Building (楼栋).
    pub building: String,
    /// Unit (单元), may be empty.
    pub unit: String,
    /// Room (室).
    pub room: String,
}

impl Address {
    pub(crate) fn to_core(&self) -> Result<core::Address, DoorstepError> {
        Ok(core::Address {
            community: self.community.clone(),
            grid: parse(&self.grid)?,
            building: self.building.clone(),
            unit: self.unit.clone(),
            room: self.room.clone(),
        })
    }
}

impl From<core::Address> for Address {
    fn from(a: core::Address) -> Self {
        Self {
            community: a.community,
            grid: a.grid.to_string(),
            building: a.building,
            unit: a.unit,
            room: a.room,
        }
    }
}

/// A resident to add.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NewResident {
    /// Name (required).
    pub name: String,
    /// Sex.
    pub sex: Sex,
    /// Year of birth.
    pub birth_year: Option<i32>,
    /// Phone, may be empty.
    pub phone: String,
    /// Care tags.
    pub tags: Vec<ResidentTag>,
}

impl From<NewResident> for core::NewResident {
    fn from(r: NewResident) -> Self {
        core::NewResident { name: r.name, sex: r.sex, birth_year: r.birth_year, phone: r.phone, tags: r.tags }
    }
}

/// A household to register.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NewHousehold {
    /// Address.
    pub address: Address,
    /// Residents.
    pub residents: Vec<NewResident>,
    /// Notes.
    pub notes: String,
}

/// Changes to a household; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct HouseholdPatch {
    /// New community.
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

impl From<HouseholdPatch> for core::HouseholdPatch {
    fn from(p: HouseholdPatch) -> Self {
        core::HouseholdPatch {
            community: p.community,
            building: p.building,
            unit: p.unit,
            room: p.room,
            notes: p.notes,
        }
    }
}

/// Changes to a resident; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct ResidentPatch {
    /// New name.
    pub name: Option<String>,
    /// New sex.
    pub sex: Option<Sex>,
    /// New birth year.
    pub birth_year: Option<i32>,
    /// Clear the birth year.
    pub clear_birth_year: bool,
    /// New phone.
    pub phone: Option<String>,
    /// Tags to add.
    pub add_tags: Vec<ResidentTag>,
    /// Tags to remove.
    pub remove_tags: Vec<ResidentTag>,
}

impl From<ResidentPatch> for core::ResidentPatch {
    fn from(p: ResidentPatch) -> Self {
        let birth_year = if p.clear_birth_year { Some(None) } else { p.birth_year.map(Some) };
        core::ResidentPatch {
            name: p.name,
            sex: p.sex,
            birth_year,
            phone: p.phone,
            add_tags: p.add_tags,
            remove_tags: p.remove_tags,
        }
    }
}

/// A resident as stored.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Resident {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Sex.
    pub sex: Sex,
    /// Year of birth.
    pub birth_year: Option<i32>,
    /// Phone.
    pub phone: String,
    /// Care tags.
    pub tags: Vec<ResidentTag>,
    /// Moved out (kept for the history).
    pub removed: bool,
}

/// A visit as stored.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Visit {
    /// Id.
    pub id: String,
    /// When (device clock), ms since the epoch.
    pub at_ms: i64,
    /// Member who visited.
    pub by: String,
    /// Kind.
    pub kind: VisitKind,
    /// Notes.
    pub notes: String,
    /// Needs seen.
    pub needs: Vec<String>,
    /// Where it took place, if the app supplied a fix.
    pub location: Option<crate::attachments::LocationFix>,
    /// Hashes of its photos and files (see `Replica::attachments` for their state).
    pub attachment_hashes: Vec<String>,
}

/// A visit to record.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NewVisit {
    /// Kind.
    pub kind: VisitKind,
    /// Notes.
    pub notes: String,
    /// Needs seen.
    pub needs: Vec<String>,
    /// When, ms since the epoch; `None` for now.
    pub at_ms: Option<i64>,
}

impl NewVisit {
    /// The core's form; `None` times become `now`.
    pub(crate) fn into_core(self, now: doorstep_core::time::Timestamp) -> doorstep_core::model::NewVisit {
        doorstep_core::model::NewVisit {
            at: self.at_ms.map(doorstep_core::time::Timestamp).unwrap_or(now),
            kind: self.kind,
            notes: self.notes,
            needs: self.needs,
        }
    }
}

/// A household with its residents and visit log (newest first).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Household {
    /// Id.
    pub id: String,
    /// Address.
    pub address: Address,
    /// Residents.
    pub residents: Vec<Resident>,
    /// Notes.
    pub notes: String,
    /// Assigned helpers (member ids).
    pub helpers: Vec<String>,
    /// Visits, newest first.
    pub visits: Vec<Visit>,
}

impl From<core::Household> for Household {
    fn from(h: core::Household) -> Self {
        Self {
            id: h.id.to_string(),
            address: h.address.into(),
            residents: h
                .residents
                .into_iter()
                .map(|r| Resident {
                    id: r.id.to_string(),
                    name: r.name,
                    sex: r.sex,
                    birth_year: r.birth_year,
                    phone: r.phone,
                    tags: r.tags,
                    removed: r.removed,
                })
                .collect(),
            notes: h.notes,
            helpers: h.helpers.iter().map(ToString::to_string).collect(),
            visits: h
                .visits
                .into_iter()
                .map(|v| Visit {
                    id: v.id.to_string(),
                    at_ms: v.at.millis(),
                    by: v.by.to_string(),
                    kind: v.kind,
                    notes: v.notes,
                    needs: v.needs,
                    location: v.location.map(crate::attachments::LocationFix::from_core),
                    attachment_hashes: v.attachments.iter().map(|a| a.hash.to_string()).collect(),
                })
                .collect(),
        }
    }
}

/// A row of the grid's household list.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct HouseholdSummary {
    /// Id.
    pub id: String,
    /// Grid id.
    pub grid: String,
    /// First resident's name, or the address.
    pub display_name: String,
    /// Address on one line.
    pub address_line: String,
    /// Current residents.
    pub resident_count: u32,
    /// Care tags of current residents.
    pub tags: Vec<ResidentTag>,
    /// Last visit, ms since the epoch.
    pub last_visit_at_ms: Option<i64>,
    /// Requests not yet resolved.
    pub open_requests: u32,
    /// A field has concurrent values to choose from.
    pub has_conflict: bool,
}

impl From<core::HouseholdSummary> for HouseholdSummary {
    fn from(h: core::HouseholdSummary) -> Self {
        Self {
            id: h.id.to_string(),
            grid: h.grid.to_string(),
            display_name: h.display_name,
            address_line: h.address_line,
            resident_count: h.resident_count,
            tags: h.tags,
            last_visit_at_ms: h.last_visit_at.map(|t| t.millis()),
            open_requests: h.open_requests,
            has_conflict: h.has_conflict,
        }
    }
}

/// A request to raise.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct NewRequest {
    /// Household id, if the request concerns one.
    pub household: Option<String>,
    /// Grid id (needed when there is no household).
    pub grid: Option<String>,
    /// Category code (see `categories()`).
    pub category: String,
    /// What the resident asks for.
    pub description: String,
    /// Urgency.
    pub urgency: Urgency,
    /// When, ms since the epoch; `None` for now.
    pub at_ms: Option<i64>,
}

/// What to do on a request.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum RequestAction {
    /// 受理
    Accept,
    /// 即时办理
    ResolveOnSpot,
    /// 议事
    Discuss,
    /// 转办 to a department (code).
    Dispatch {
        /// Department code.
        department: String,
    },
    /// 指派 to a member (id).
    Assign {
        /// Member id.
        assignee: String,
    },
    /// 认领 by the signed-in member.
    Claim,
    /// 进展
    Progress,
    /// 督办
    Supervise,
    /// 办结
    Resolve,
    /// 回访 with the resident's satisfaction.
    FollowUp {
        /// The answer.
        satisfaction: Satisfaction,
    },
    /// 重新打开
    Reopen,
    /// 销号
    Close,
    /// 撤销
    Cancel,
}

impl RequestAction {
    pub(crate) fn to_core(&self) -> Result<EventAction, DoorstepError> {
        Ok(match self {
            RequestAction::Accept => EventAction::Accepted,
            RequestAction::ResolveOnSpot => EventAction::ResolvedOnSpot,
            RequestAction::Discuss => EventAction::Discussed,
            RequestAction::Dispatch { department } => {
                EventAction::Dispatched { department: parse(department)? }
            }
            RequestAction::Assign { assignee } => EventAction::Assigned { assignee: parse(assignee)? },
            RequestAction::Claim => EventAction::Claimed,
            RequestAction::Progress => EventAction::Progress,
            RequestAction::Supervise => EventAction::Supervised,
            RequestAction::Resolve => EventAction::Resolved,
            RequestAction::FollowUp { satisfaction } => {
                EventAction::FollowedUp { satisfaction: *satisfaction }
            }
            RequestAction::Reopen => EventAction::Reopened,
            RequestAction::Close => EventAction::Closed,
            RequestAction::Cancel => EventAction::Cancelled,
        })
    }
}

/// One event of a request's log.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RequestEvent {
    /// Id.
    pub id: String,
    /// Kind as stored (`dispatched`, `resolved_on_spot`…).
    pub kind: String,
    /// Note.
    pub note: String,
    /// Member who recorded it.
    pub by: String,
    /// When (device clock), ms since the epoch.
    pub at_ms: i64,
    /// Did not apply in causal order (usually the losing side of a conflict).
    pub not_applied: bool,
    /// Hashes of its photos and files (see `Replica::attachments` for their state).
    pub attachment_hashes: Vec<String>,
}

/// A request with its derived status and log.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Request {
    /// Id.
    pub id: String,
    /// Household id, if any.
    pub household: Option<String>,
    /// Grid id.
    pub grid: String,
    /// Category code.
    pub category: String,
    /// Description.
    pub description: String,
    /// Urgency.
    pub urgency: Urgency,
    /// Status, derived from the log.
    pub status: RequestStatus,
    /// Raised at, ms.
    pub raised_at_ms: i64,
    /// Due at, ms.
    pub due_at_ms: i64,
    /// Holder, if any.
    pub assignee: Option<String>,
    /// Department, if dispatched.
    pub department: Option<String>,
    /// Under supervision.
    pub supervised: bool,
    /// Latest follow-up answer.
    pub satisfaction: Option<Satisfaction>,
    /// Concurrent decisions wait for a review.
    pub has_conflict: bool,
    /// The log in causal order.
    pub events: Vec<RequestEvent>,
}

impl From<core::Request> for Request {
    fn from(r: core::Request) -> Self {
        let d = r.derived;
        Self {
            id: r.id.to_string(),
            household: r.household.map(|h| h.to_string()),
            grid: r.grid.to_string(),
            category: r.category.to_string(),
            description: r.description,
            urgency: r.urgency,
            status: d.status,
            raised_at_ms: r.raised_at.millis(),
            due_at_ms: r.due_at.millis(),
            assignee: d.assignee.map(|a| a.to_string()),
            department: d.department.map(|c| c.to_string()),
            supervised: d.supervised,
            satisfaction: d.satisfaction,
            has_conflict: !d.conflicts.is_empty(),
            events: r.events.into_iter().map(|e| event(e, &d.not_applied)).collect(),
        }
    }
}

fn event(e: core::RequestEvent, not_applied: &[doorstep_core::ids::EventId]) -> RequestEvent {
    RequestEvent {
        id: e.id.to_string(),
        kind: e.action.kind_str().to_owned(),
        note: e.note,
        by: e.by.to_string(),
        at_ms: e.at.millis(),
        not_applied: not_applied.contains(&e.id),
        attachment_hashes: e.attachments.iter().map(|a| a.hash.to_string()).collect(),
    }
}

/// A row of a request list.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RequestSummary {
    /// Id.
    pub id: String,
    /// Household id, if any.
    pub household: Option<String>,
    /// Grid id.
    pub grid: String,
    /// Category code.
    pub category: String,
    /// Status.
    pub status: RequestStatus,
    /// Urgency.
    pub urgency: Urgency,
    /// First line of the description.
    pub title: String,
    /// Due at, ms.
    pub due_at_ms: i64,
    /// Holder.
    pub assignee: Option<String>,
    /// Concurrent decisions wait for a review.
    pub has_conflict: bool,
}

impl From<core::RequestSummary> for RequestSummary {
    fn from(r: core::RequestSummary) -> Self {
        Self {
            id: r.id.to_string(),
            household: r.household.map(|h| h.to_string()),
            grid: r.grid.to_string(),
            category: r.category.to_string(),
            status: r.status,
            urgency: r.urgency,
            title: r.title,
            due_at_ms: r.due_at.millis(),
            assignee: r.assignee.map(|a| a.to_string()),
            has_conflict: r.has_conflict,
        }
    }
}

/// Which requests to list.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct RequestFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<RequestStatus>,
    /// Only open ones.
    pub open_only: bool,
    /// Only overdue ones (open and past their due time now).
    pub overdue: bool,
    /// Only those held by the signed-in member.
    pub assigned_to_me: bool,
    /// Only this grid.
    pub grid: Option<String>,
    /// Only this household's.
    pub household: Option<String>,
    /// Only this category.
    pub category: Option<String>,
}

/// One line of a household's timeline.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct TimelineEntry {
    /// When, ms.
    pub at_ms: i64,
    /// A visit (`true`) or a request (`false`).
    pub is_visit: bool,
    /// Visit or request id.
    pub item_id: String,
    /// The request's status, for requests.
    pub status: Option<RequestStatus>,
    /// The visit's kind, for visits.
    pub visit_kind: Option<VisitKind>,
    /// First line of the notes or description.
    pub summary: String,
}

impl From<CoreTimelineEntry> for TimelineEntry {
    fn from(e: CoreTimelineEntry) -> Self {
        let (is_visit, item_id, status, visit_kind) = match e.item {
            TimelineItem::Visit { id, kind } => (true, id.to_string(), None, Some(kind)),
            TimelineItem::Request { id, status } => (false, id.to_string(), Some(status), None),
        };
        Self { at_ms: e.at.millis(), is_visit, item_id, status, visit_kind, summary: e.summary }
    }
}

/// A household field that can hold concurrent values.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ConflictField {
    /// Community.
    Community,
    /// Grid.
    Grid,
    /// Building.
    Building,
    /// Unit.
    Unit,
    /// Room.
    Room,
    /// Household notes.
    Notes,
    /// A resident's name.
    ResidentName {
        /// Resident id.
        resident: String,
    },
    /// A resident's sex.
    ResidentSex {
        /// Resident id.
        resident: String,
    },
    /// A resident's birth year.
    ResidentBirthYear {
        /// Resident id.
        resident: String,
    },
    /// A resident's phone.
    ResidentPhone {
        /// Resident id.
        resident: String,
    },
}

impl ConflictField {
    pub(crate) fn to_core(&self) -> Result<HouseholdField, DoorstepError> {
        let rid = |r: &String| parse::<ResidentId>(r);
        Ok(match self {
            ConflictField::Community => HouseholdField::Community,
            ConflictField::Grid => HouseholdField::Grid,
            ConflictField::Building => HouseholdField::Building,
            ConflictField::Unit => HouseholdField::Unit,
            ConflictField::Room => HouseholdField::Room,
            ConflictField::Notes => HouseholdField::Notes,
            ConflictField::ResidentName { resident } => HouseholdField::ResidentName(rid(resident)?),
            ConflictField::ResidentSex { resident } => HouseholdField::ResidentSex(rid(resident)?),
            ConflictField::ResidentBirthYear { resident } => {
                HouseholdField::ResidentBirthYear(rid(resident)?)
            }
            ConflictField::ResidentPhone { resident } => HouseholdField::ResidentPhone(rid(resident)?),
        })
    }
}

impl From<HouseholdField> for ConflictField {
    fn from(f: HouseholdField) -> Self {
        match f {
            HouseholdField::Community => ConflictField::Community,
            HouseholdField::Grid => ConflictField::Grid,
            HouseholdField::Building => ConflictField::Building,
            HouseholdField::Unit => ConflictField::Unit,
            HouseholdField::Room => ConflictField::Room,
            HouseholdField::Notes => ConflictField::Notes,
            HouseholdField::ResidentName(r) => ConflictField::ResidentName { resident: r.to_string() },
            HouseholdField::ResidentSex(r) => ConflictField::ResidentSex { resident: r.to_string() },
            HouseholdField::ResidentBirthYear(r) => {
                ConflictField::ResidentBirthYear { resident: r.to_string() }
            }
            HouseholdField::ResidentPhone(r) => ConflictField::ResidentPhone { resident: r.to_string() },
        }
    }
}

/// Something a person must choose.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Conflict {
    /// Concurrent values in a household field.
    Field {
        /// Household id.
        household: String,
        /// The field.
        field: ConflictField,
        /// The values to choose from.
        values: Vec<String>,
    },
    /// Concurrent decisions on a request.
    Request {
        /// Request id.
        request: String,
        /// The concurrent events.
        events: Vec<RequestEvent>,
    },
}

impl From<CoreConflict> for Conflict {
    fn from(c: CoreConflict) -> Self {
        match c {
            CoreConflict::Field(f) => Conflict::Field {
                household: f.household.to_string(),
                field: f.field.into(),
                values: f.values,
            },
            CoreConflict::Request(r) => Conflict::Request {
                request: r.request.to_string(),
                events: r.events.into_iter().map(|e| event(e, &[])).collect(),
            },
        }
    }
}

/// A request category of the county's taxonomy.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Category {
    /// Code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// Default department code.
    pub department: String,
    /// Hours until due.
    pub due_hours: u32,
}

impl From<&core::Category> for Category {
    fn from(c: &core::Category) -> Self {
        Self {
            code: c.code.to_string(),
            name_zh: c.name_zh.clone(),
            name_en: c.name_en.clone(),
            department: c.department.to_string(),
            due_hours: c.due_hours,
        }
    }
}
