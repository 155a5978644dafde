//! The request document: how a [`Request`] is laid out in Automerge, and how events are added.
//!
//! ```text
//! { schema: 2, type: "request", id, household: "<id>" | null, grid, category,
//!   description, urgency, raised_at, raised_by, due_at,
//!   events: { <event id>: { kind, at, by, note, after: ["<event id>", …],
//!                           department?, assignee?, satisfaction?, outcome?,
//!                           attachments? } } }   (see [`crate::doc::attachment`])
//! ```
//! Events are a map keyed by id: concurrent events from two offline devices both survive a
//! merge. Each event lists the events its device had seen (`after`), which gives the causal
//! order the status is derived from ([`crate::lifecycle`]); no status is stored.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ScalarValue, transaction::Transactable};

use crate::conflict::RequestConflict;
use crate::doc::access::{i64_at, keys_of, obj_at, str_at, strs_at};
use crate::doc::{SCHEMA_VERSION, attachment, check_type, corrupt};
use crate::error::{CoreError, Result};
use crate::ids::{Code, DocumentId, EventId, GridId, HouseholdId, MemberId, RequestId};
use crate::lifecycle::{self, RequestStatus};
use crate::model::request::{
    EventAction, NewEvent, NewRequest, Request, RequestEvent, Satisfaction, Urgency,
};
use crate::model::taxonomy::Category;
use crate::model::text::{self, LONG_TEXT_MAX};
use crate::time::Timestamp;

/// The `type` field of request documents.
pub const TYPE: &str = "request";

/// Writes a new request into an empty document, with its `raised` event.
pub fn create(
    doc: &mut AutoCommit,
    id: RequestId,
    raised_event: EventId,
    new: &NewRequest,
    grid: GridId,
    category: &Category,
    by: MemberId,
) -> Result<()> {
    let description = text::required("description", &new.description, LONG_TEXT_MAX)?;
    doc.put(ROOT, "schema", SCHEMA_VERSION as i64)?;
    doc.put(ROOT, "type", TYPE)?;
    doc.put(ROOT, "id", id.to_string())?;
    match new.household {
        Some(h) => doc.put(ROOT, "household", h.to_string())?,
        None => doc.put(ROOT, "household", ScalarValue::Null)?,
    }
    doc.put(ROOT, "grid", grid.to_string())?;
    doc.put(ROOT, "category", category.code.as_str())?;
    doc.put(ROOT, "description", description)?;
    doc.put(ROOT, "urgency", new.urgency.as_str())?;
    doc.put(ROOT, "raised_at", new.at.millis())?;
    doc.put(ROOT, "raised_by", by.to_string())?;
    doc.put(ROOT, "due_at", new.at.plus_hours(category.due_hours).millis())?;
    let events = doc.put_object(ROOT, "events", ObjType::Map)?;
    let raised = NewEvent { action: EventAction::Raised, note: String::new(), at: new.at };
    write_event(doc, &events, raised_event, &raised, "", by, &[])
}

/// Attaches a file (by reference) to an event of the request.
pub fn attach_to_event(
    doc: &mut AutoCommit,
    id: RequestId,
    eid: EventId,
    attached: &crate::model::attachment::AttachmentRef,
) -> Result<()> {
    let events = events_obj(doc, id)?;
    let event = obj_at(doc, &events, &eid.to_string(), ObjType::Map).ok_or_else(|| {
        CoreError::InvalidValue { field: "event", reason: format!("request {id} has no event {eid}") }
    })?;
    attachment::put_ref(doc, &event, attached)
}

fn events_obj(doc: &AutoCommit, id: RequestId) -> Result<ObjId> {
    obj_at(doc, &ROOT, "events", ObjType::Map).ok_or_else(|| corrupt(id.into(), "no events map".into()))
}

fn write_event(
    doc: &mut AutoCommit,
    events: &ObjId,
    eid: EventId,
    event: &NewEvent,
    note: &str,
    by: MemberId,
    after: &[EventId],
) -> Result<()> {
    let obj = doc.put_object(events, eid.to_string(), ObjType::Map)?;
    doc.put(&obj, "kind", event.action.kind_str())?;
    doc.put(&obj, "at", event.at.millis())?;
    doc.put(&obj, "by", by.to_string())?;
    doc.put(&obj, "note", note)?;
    let list = doc.put_object(&obj, "after", ObjType::List)?;
    for (i, parent) in after.iter().enumerate() {
        doc.insert(&list, i, parent.to_string())?;
    }
    match &event.action {
        EventAction::Dispatched { department } => doc.put(&obj, "department", department.as_str())?,
        EventAction::Assigned { assignee } => doc.put(&obj, "assignee", assignee.to_string())?,
        EventAction::FollowedUp { satisfaction } => doc.put(&obj, "satisfaction", satisfaction.as_str())?,
        EventAction::Reviewed { outcome: Some(status) } => doc.put(&obj, "outcome", status.as_str())?,
        _ => {}
    }
    Ok(())
}

/// Appends an event after checking it against the status derived from the log so far.
/// Returns the status the request now has.
pub fn add_event(
    doc: &mut AutoCommit,
    id: RequestId,
    eid: EventId,
    event: &NewEvent,
    by: MemberId,
) -> Result<RequestStatus> {
    if matches!(event.action, EventAction::Raised | EventAction::Unknown { .. }) {
        return Err(CoreError::InvalidValue {
            field: "action",
            reason: format!("{} cannot be recorded by hand", event.action.kind_str()),
        });
    }
    let note = text::optional("note", &event.note, LONG_TEXT_MAX)?;
    let current = read(doc, id)?;
    let next = lifecycle::check_transition(current.status(), &event.action)?;
    if let EventAction::Reviewed { .. } = event.action
        && current.derived.conflicts.is_empty()
    {
        return Err(CoreError::NoSuchConflict(format!("request {id} has no conflict to review")));
    }
    let events = events_obj(doc, id)?;
    write_event(doc, &events, eid, event, &note, by, &current.derived.heads)?;
    Ok(next)
}

/// Moves the request to another grid (it follows its household when households are handed
/// over to another worker).
pub fn set_grid(doc: &mut AutoCommit, id: RequestId, grid: GridId) -> Result<()> {
    check_type(doc, id.into(), TYPE)?;
    doc.put(ROOT, "grid", grid.to_string())?;
    Ok(())
}

/// Reads the request in `doc`, which must hold request `id`, and derives its status.
pub fn read(doc: &AutoCommit, id: RequestId) -> Result<Request> {
    let doc_id: DocumentId = id.into();
    check_type(doc, doc_id, TYPE)?;
    let grid = str_at(doc, &ROOT, "grid")
        .and_then(|g| g.parse::<GridId>().ok())
        .ok_or_else(|| corrupt(doc_id, "no grid".into()))?;
    let category = str_at(doc, &ROOT, "category")
        .and_then(|c| Code::new(c).ok())
        .ok_or_else(|| corrupt(doc_id, "no category".into()))?;
    let raised_by = str_at(doc, &ROOT, "raised_by")
        .and_then(|m| m.parse::<MemberId>().ok())
        .ok_or_else(|| corrupt(doc_id, "no raiser".into()))?;
    let events_obj = events_obj(doc, id)?;
    let mut events: Vec<RequestEvent> = keys_of(doc, &events_obj)
        .into_iter()
        .filter_map(|key| {
            let eid = key.parse::<EventId>().ok()?;
            let obj = obj_at(doc, &events_obj, &key, ObjType::Map)?;
            read_event(doc, &obj, eid)
        })
        .collect();
    let derived = lifecycle::derive(&mut events);
    Ok(Request {
        id,
        schema: i64_at(doc, &ROOT, "schema").and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        household: str_at(doc, &ROOT, "household").and_then(|h| h.parse::<HouseholdId>().ok()),
        grid,
        category,
        description: str_at(doc, &ROOT, "description").unwrap_or_default(),
        urgency: Urgency::from_stored(&str_at(doc, &ROOT, "urgency").unwrap_or_default()),
        raised_at: Timestamp(i64_at(doc, &ROOT, "raised_at").unwrap_or(0)),
        raised_by,
        due_at: Timestamp(i64_at(doc, &ROOT, "due_at").unwrap_or(0)),
        events,
        derived,
    })
}

fn read_event(doc: &AutoCommit, obj: &ObjId, id: EventId) -> Option<RequestEvent> {
    let kind = str_at(doc, obj, "kind")?;
    let by = str_at(doc, obj, "by")?.parse::<MemberId>().ok()?;
    let unknown = || EventAction::Unknown { stored_kind: kind.clone() };
    let action = match kind.as_str() {
        "raised" => EventAction::Raised,
        "resolved_on_spot" => EventAction::ResolvedOnSpot,
        "accepted" => EventAction::Accepted,
        "discussed" => EventAction::Discussed,
        "dispatched" => match str_at(doc, obj, "department").and_then(|d| Code::new(d).ok()) {
            Some(department) => EventAction::Dispatched { department },
            None => unknown(),
        },
        "assigned" => match str_at(doc, obj, "assignee").and_then(|a| a.parse().ok()) {
            Some(assignee) => EventAction::Assigned { assignee },
            None => unknown(),
        },
        "claimed" => EventAction::Claimed,
        "progress" => EventAction::Progress,
        "supervised" => EventAction::Supervised,
        "resolved" => EventAction::Resolved,
        "followed_up" => match str_at(doc, obj, "satisfaction").and_then(|s| Satisfaction::from_stored(&s)) {
            Some(satisfaction) => EventAction::FollowedUp { satisfaction },
            None => unknown(),
        },
        "reopened" => EventAction::Reopened,
        "closed" => EventAction::Closed,
        "cancelled" => EventAction::Cancelled,
        "reviewed" => EventAction::Reviewed {
            outcome: str_at(doc, obj, "outcome").and_then(|s| RequestStatus::from_stored(&s)),
        },
        _ => unknown(),
    };
    Some(RequestEvent {
        id,
        action,
        note: str_at(doc, obj, "note").unwrap_or_default(),
        by,
        at: Timestamp(i64_at(doc, obj, "at").unwrap_or(0)),
        after: strs_at(doc, obj, "after").into_iter().filter_map(|s| s.parse().ok()).collect(),
        attachments: attachment::refs_of(doc, obj),
    })
}

/// The request's unreviewed conflicts, with the events of each side.
pub fn conflicts(request: &Request) -> Vec<RequestConflict> {
    request
        .derived
        .conflicts
        .iter()
        .map(|ids| RequestConflict {
            request: request.id,
            events: request.events.iter().filter(|e| ids.contains(&e.id)).cloned().collect(),
        })
        .collect()
}
