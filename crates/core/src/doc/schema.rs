//! The published document schema: every field of every document kind, with the Automerge types
//! readers accept, whether it is required, its limits and allowed values, and the schema version
//! that added it. `docs/SCHEMA.md` holds [`markdown`] of this table; a test keeps the two equal,
//! and another writes every field in every Automerge representation to show that the field rules
//! ([`crate::doc::check`]) and the readers agree with it.
//!
//! Paths are dotted from the document's root; `<visit id>` and the like stand for a map's keys.

use crate::doc::DocumentKind;
use crate::lifecycle::RequestStatus;

/// What a field holds, as readers and the field rules take it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldType {
    /// Text: a scalar string or an Automerge Text object, at most `max` characters, no control
    /// characters but newline and tab; `nonempty`: not blank.
    Text {
        /// Most characters.
        max: usize,
        /// Must not be blank.
        nonempty: bool,
    },
    /// A phone number: text of digits, spaces and `+ - ( )`, at most 24 characters.
    Phone,
    /// An id: text holding a lower-case UUID of this kind.
    Id(&'static str),
    /// A code: text of lower-case letters, digits and `_`, at most 64 characters.
    Code,
    /// A time: milliseconds since 1970 as an integer (signed or unsigned) or an Automerge
    /// timestamp, never negative.
    Time,
    /// An integer (signed or unsigned) in a range, or null where `nullable`.
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
        /// Null allowed.
        nullable: bool,
    },
    /// A number (float or integer) in a range.
    Number {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// Text holding one of these values.
    OneOf(&'static [&'static str]),
    /// Exactly this text.
    Exactly(&'static str),
    /// A map (of entries, or of the fields listed under it).
    Map,
    /// A list of text items, each as `item` says, at most `max` of them.
    List {
        /// Most items.
        max: usize,
        /// What each item is.
        item: &'static str,
    },
}

/// One field of the schema.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    /// The document kind.
    pub kind: DocumentKind,
    /// Its path (see the module docs).
    pub path: &'static str,
    /// What it holds.
    pub ty: FieldType,
    /// Whether it must be present (in its parent, when the parent is).
    pub required: bool,
    /// The schema version that added it.
    pub since: u32,
    /// What it means.
    pub meaning: &'static str,
}

const H: DocumentKind = DocumentKind::Household;
const R: DocumentKind = DocumentKind::Request;
const NAME: FieldType = FieldType::Text { max: 64, nonempty: true };
const SHORT: FieldType = FieldType::Text { max: 64, nonempty: false };
const LONG: FieldType = FieldType::Text { max: 4_000, nonempty: false };
const STATUSES: &[&str] = &[
    RequestStatus::Raised.as_str(),
    RequestStatus::Accepted.as_str(),
    RequestStatus::Discussing.as_str(),
    RequestStatus::Dispatched.as_str(),
    RequestStatus::Assigned.as_str(),
    RequestStatus::InProgress.as_str(),
    RequestStatus::Resolved.as_str(),
    RequestStatus::FollowedUp.as_str(),
    RequestStatus::Reopened.as_str(),
    RequestStatus::Closed.as_str(),
    RequestStatus::Cancelled.as_str(),
];

/// Visit kinds (`VisitKind`).
pub const VISIT_KINDS: &[&str] = &["routine", "follow_up", "care", "safety_check"];
/// Sexes (`Sex`).
pub const SEXES: &[&str] = &["male", "female", "unknown"];
/// Urgencies (`Urgency`).
pub const URGENCIES: &[&str] = &["normal", "urgent", "critical"];
/// Follow-up answers (`Satisfaction`).
pub const SATISFACTIONS: &[&str] = &["satisfied", "basically_satisfied", "unsatisfied"];
/// Request event kinds (`EventAction`).
pub const EVENT_KINDS: &[&str] = &[
    "raised",
    "resolved_on_spot",
    "accepted",
    "discussed",
    "dispatched",
    "assigned",
    "claimed",
    "progress",
    "supervised",
    "resolved",
    "followed_up",
    "reopened",
    "closed",
    "cancelled",
    "reviewed",
];

const fn f(
    kind: DocumentKind,
    path: &'static str,
    ty: FieldType,
    required: bool,
    meaning: &'static str,
) -> Field {
    Field { kind, path, ty, required, since: 1, meaning }
}

/// Every field of every document kind.
pub const FIELDS: &[Field] = &[
    f(
        H,
        "schema",
        FieldType::Integer { min: 1, max: u32::MAX as i64, nullable: false },
        true,
        "schema version of the build that last raised it",
    ),
    f(H, "type", FieldType::Exactly("household"), true, "document kind"),
    f(H, "id", FieldType::Id("household id"), true, "the document's own id"),
    f(H, "created_at", FieldType::Time, true, "when the household was registered (device clock)"),
    f(H, "created_by", FieldType::Id("member id"), true, "who registered it; the uploading member"),
    f(H, "notes", LONG, false, "notes about the household"),
    f(H, "address", FieldType::Map, true, "where it is"),
    f(H, "address.community", NAME, true, "community (社区) or village"),
    f(H, "address.grid", FieldType::Id("grid id"), true, "the grid it belongs to; decides scope"),
    f(H, "address.building", SHORT, false, "building (栋) or village group (组)"),
    f(H, "address.unit", SHORT, false, "stairwell unit (单元)"),
    f(H, "address.room", NAME, true, "room or house number (室 / 门牌)"),
    f(H, "residents", FieldType::Map, true, "residents by resident id; entries are never removed"),
    f(H, "residents.<resident id>.name", NAME, true, "full name"),
    f(H, "residents.<resident id>.sex", FieldType::OneOf(SEXES), false, "sex"),
    f(
        H,
        "residents.<resident id>.birth_year",
        FieldType::Integer { min: 1900, max: 2100, nullable: true },
        false,
        "year of birth; null when unknown",
    ),
    f(H, "residents.<resident id>.phone", FieldType::Phone, false, "phone number as typed; empty when none"),
    f(H, "residents.<resident id>.added_at", FieldType::Time, true, "when the resident was added"),
    f(
        H,
        "residents.<resident id>.removed",
        FieldType::Bool,
        true,
        "moved away or died; kept for the history",
    ),
    f(H, "residents.<resident id>.tags", FieldType::Map, false, "care tags by code"),
    f(
        H,
        "residents.<resident id>.tags.<tag code>",
        FieldType::Bool,
        false,
        "whether the tag applies; unknown codes are kept",
    ),
    f(H, "helpers", FieldType::Map, true, "helpers (volunteers, central households) by member id"),
    f(H, "helpers.<member id>", FieldType::Bool, false, "whether the member is a helper now"),
    f(H, "visits", FieldType::Map, true, "the visit log by visit id; entries are never removed or rewritten"),
    f(H, "visits.<visit id>.at", FieldType::Time, true, "when the visit happened (device clock)"),
    f(H, "visits.<visit id>.by", FieldType::Id("member id"), true, "who visited; the uploading member"),
    f(H, "visits.<visit id>.kind", FieldType::OneOf(VISIT_KINDS), true, "why"),
    f(H, "visits.<visit id>.notes", LONG, false, "what was seen"),
    f(
        H,
        "visits.<visit id>.needs",
        FieldType::List { max: 20, item: "text, not blank, ≤ 64 characters" },
        false,
        "needs the household has",
    ),
    f(
        H,
        "visits.<visit id>.location",
        FieldType::Map,
        false,
        "where the phone was; added once, by the visit's author",
    ),
    f(H, "visits.<visit id>.location.latitude", FieldType::Number { min: -90.0, max: 90.0 }, true, "degrees"),
    f(
        H,
        "visits.<visit id>.location.longitude",
        FieldType::Number { min: -180.0, max: 180.0 },
        true,
        "degrees",
    ),
    f(
        H,
        "visits.<visit id>.location.accuracy_m",
        FieldType::Number { min: 0.0, max: f64::MAX },
        true,
        "metres",
    ),
    f(H, "visits.<visit id>.location.at", FieldType::Time, true, "when the fix was taken"),
    f(
        H,
        "visits.<visit id>.attachments",
        FieldType::Map,
        false,
        "photos and scans by SHA-256 (lower-case hex), at most 20; only grow",
    ),
    f(
        H,
        "visits.<visit id>.attachments.<sha-256>.size",
        FieldType::Integer { min: 1, max: 10 * 1024 * 1024, nullable: false },
        true,
        "bytes",
    ),
    f(
        H,
        "visits.<visit id>.attachments.<sha-256>.media_type",
        FieldType::Text { max: 120, nonempty: true },
        true,
        "declared media type such as image/jpeg (the server serves by the bytes' own type)",
    ),
    f(
        H,
        "visits.<visit id>.attachments.<sha-256>.name",
        FieldType::Text { max: 120, nonempty: false },
        false,
        "file name",
    ),
    f(H, "visits.<visit id>.attachments.<sha-256>.added_at", FieldType::Time, true, "when it was attached"),
    Field {
        since: 2,
        ..f(
            H,
            "same_as",
            FieldType::Map,
            false,
            "same-household marks by mark id (several concurrent maps are read together)",
        )
    },
    Field {
        since: 2,
        ..f(H, "same_as.<mark id>.a", FieldType::Id("household id"), true, "one household of the pair")
    },
    Field {
        since: 2,
        ..f(
            H,
            "same_as.<mark id>.b",
            FieldType::Id("household id"),
            true,
            "the other; one of a and b is this document",
        )
    },
    Field {
        since: 2,
        ..f(H, "same_as.<mark id>.same", FieldType::Bool, true, "true: one household; false: undoes a mark")
    },
    Field {
        since: 2,
        ..f(H, "same_as.<mark id>.at", FieldType::Time, true, "when (device clock; never used for order)")
    },
    Field {
        since: 2,
        ..f(
            H,
            "same_as.<mark id>.by",
            FieldType::Id("member id"),
            true,
            "who marked it; the uploading member",
        )
    },
    Field {
        since: 2,
        ..f(
            H,
            "same_as.<mark id>.after",
            FieldType::List { max: usize::MAX, item: "a mark id" },
            false,
            "the marks of this pair its device had seen",
        )
    },
    f(
        R,
        "schema",
        FieldType::Integer { min: 1, max: u32::MAX as i64, nullable: false },
        true,
        "schema version of the build that wrote it",
    ),
    f(R, "type", FieldType::Exactly("request"), true, "document kind"),
    f(R, "id", FieldType::Id("request id"), true, "the document's own id"),
    f(
        R,
        "household",
        FieldType::Id("household id, or null"),
        false,
        "the household it concerns; null for a streetlight",
    ),
    f(R, "grid", FieldType::Id("grid id"), true, "the grid it belongs to; decides scope"),
    f(R, "category", FieldType::Code, true, "the county's category code"),
    f(R, "description", FieldType::Text { max: 4_000, nonempty: true }, true, "what the resident asks"),
    f(R, "urgency", FieldType::OneOf(URGENCIES), true, "how urgent"),
    f(R, "raised_at", FieldType::Time, true, "when it was raised (device clock)"),
    f(R, "raised_by", FieldType::Id("member id"), true, "who raised it; the uploading member"),
    f(R, "due_at", FieldType::Time, true, "when it is due, from the category's due time"),
    f(
        R,
        "events",
        FieldType::Map,
        true,
        "the event log by event id, with exactly one raised event at least; entries are never removed or rewritten",
    ),
    f(R, "events.<event id>.kind", FieldType::OneOf(EVENT_KINDS), true, "what happened"),
    f(R, "events.<event id>.at", FieldType::Time, true, "when (device clock; never used for order)"),
    f(
        R,
        "events.<event id>.by",
        FieldType::Id("member id"),
        true,
        "who; the uploading member, whose role must allow the kind",
    ),
    f(R, "events.<event id>.note", LONG, false, "note"),
    f(
        R,
        "events.<event id>.after",
        FieldType::List { max: usize::MAX, item: "an event id" },
        false,
        "the events its device had seen: the causal order status is derived from",
    ),
    f(R, "events.<event id>.department", FieldType::Code, false, "required for dispatched: the department"),
    f(
        R,
        "events.<event id>.assignee",
        FieldType::Id("member id"),
        false,
        "required for assigned: who holds it",
    ),
    f(
        R,
        "events.<event id>.satisfaction",
        FieldType::OneOf(SATISFACTIONS),
        false,
        "required for followed_up: the resident's answer",
    ),
    f(
        R,
        "events.<event id>.outcome",
        FieldType::OneOf(STATUSES),
        false,
        "for reviewed: the status chosen from here on",
    ),
    f(R, "events.<event id>.attachments", FieldType::Map, false, "as a visit's attachments"),
    f(
        R,
        "events.<event id>.attachments.<sha-256>.size",
        FieldType::Integer { min: 1, max: 10 * 1024 * 1024, nullable: false },
        true,
        "bytes",
    ),
    f(
        R,
        "events.<event id>.attachments.<sha-256>.media_type",
        FieldType::Text { max: 120, nonempty: true },
        true,
        "declared media type",
    ),
    f(
        R,
        "events.<event id>.attachments.<sha-256>.name",
        FieldType::Text { max: 120, nonempty: false },
        false,
        "file name",
    ),
    f(R, "events.<event id>.attachments.<sha-256>.added_at", FieldType::Time, true, "when it was attached"),
];

impl FieldType {
    /// The type as SCHEMA.md states it.
    pub fn describe(&self) -> String {
        match self {
            FieldType::Text { max, nonempty: true } => format!("text, not blank, ≤ {max} characters"),
            FieldType::Text { max, nonempty: false } => format!("text, ≤ {max} characters"),
            FieldType::Phone => "text: digits, spaces, `+ - ( )`, ≤ 24 characters".into(),
            FieldType::Id(what) => format!("text: {what} (lower-case UUID)"),
            FieldType::Code => "text: code (`a-z 0-9 _`, ≤ 64)".into(),
            FieldType::Time => "time: integer ms since 1970, or timestamp".into(),
            FieldType::Integer { min, max, nullable } => {
                format!("integer {min}–{max}{}", if *nullable { ", or null" } else { "" })
            }
            FieldType::Number { min, max } if *max == f64::MAX => format!("number ≥ {min}"),
            FieldType::Number { min, max } => format!("number {min}–{max}"),
            FieldType::Bool => "boolean".into(),
            FieldType::OneOf(values) => {
                format!(
                    "text, one of {}",
                    values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(" ")
                )
            }
            FieldType::Exactly(value) => format!("text `{value}`"),
            FieldType::Map => "map".into(),
            FieldType::List { max: usize::MAX, item } => format!("list of {item}"),
            FieldType::List { max, item } => format!("list (≤ {max}) of {item}"),
        }
    }
}

/// The schema as the Markdown tables of `docs/SCHEMA.md` (one per document kind).
pub fn markdown() -> String {
    let mut out = String::new();
    for (kind, title) in [(H, "Household (`type: \"household\"`)"), (R, "Request (`type: \"request\"`)")] {
        out.push_str(&format!(
            "### {title}\n\n| field | type | required | since | meaning |\n|---|---|---|---|---|\n"
        ));
        for field in FIELDS.iter().filter(|f| f.kind == kind) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                field.path,
                field.ty.describe(),
                if field.required { "yes" } else { "no" },
                field.since,
                field.meaning
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventAction, Satisfaction, Sex, Urgency, VisitKind};

    #[test]
    fn the_allowed_values_are_the_models_own() {
        let visit: Vec<&str> = VisitKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(visit, VISIT_KINDS);
        let sexes: Vec<&str> = [Sex::Male, Sex::Female, Sex::Unknown].iter().map(|s| s.as_str()).collect();
        assert_eq!(sexes, SEXES);
        let urgencies: Vec<&str> =
            [Urgency::Normal, Urgency::Urgent, Urgency::Critical].iter().map(|u| u.as_str()).collect();
        assert_eq!(urgencies, URGENCIES);
        let answers: Vec<&str> =
            [Satisfaction::Satisfied, Satisfaction::BasicallySatisfied, Satisfaction::Unsatisfied]
                .iter()
                .map(|s| s.as_str())
                .collect();
        assert_eq!(answers, SATISFACTIONS);
        let code = crate::ids::Code::new("civil_affairs").expect("code");
        let member = crate::ids::MemberId::new_random();
        let events = [
            EventAction::Raised,
            EventAction::ResolvedOnSpot,
            EventAction::Accepted,
            EventAction::Discussed,
            EventAction::Dispatched { department: code },
            EventAction::Assigned { assignee: member },
            EventAction::Claimed,
            EventAction::Progress,
            EventAction::Supervised,
            EventAction::Resolved,
            EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
            EventAction::Reopened,
            EventAction::Closed,
            EventAction::Cancelled,
            EventAction::Reviewed { outcome: None },
        ];
        let kinds: Vec<&str> = events.iter().map(|e| e.kind_str()).collect();
        assert_eq!(kinds, EVENT_KINDS);
    }
}
