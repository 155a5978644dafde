//! What an upload may do to the entries of a document, beyond its field rules
//! ([`crate::doc::check`]): the server's check of who wrote what.
//!
//! - **Attribution.** Every entry the upload adds (a visit, a request event, a "same household"
//!   mark, a new document's `created_by`/`raised_by`) names the uploading device's member as its
//!   author. A phone cannot write in the supervisor's name.
//! - **Roles.** Each new request event is one its author's role may take
//!   ([`Role::may_take`]); only grid workers, supervisors and administrators register
//!   households or change a household's helpers.
//! - **Append-only.** Every visit, resident, request event and mark present before the upload is
//!   present after it, with the fields that make the record (when, who, what) unchanged; a map of
//!   entries replaced by a new object (even an empty one) loses them and is refused. A visit's
//!   or event's location and attachments may be added to, by its own author only.
//!
//! The check reads the document before the upload at its old heads, inside the same Automerge
//! document, so nothing is loaded twice.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value};

use crate::doc::{self, DocumentKind};
use crate::ids::{DocumentId, HouseholdId, MemberId};
use crate::model::Role;
use crate::sync::message::ErrorCode;
use crate::sync::validate::Rejection;

/// Who uploads: the device's member and that member's role as the server knows them now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uploader {
    /// The member the uploading device belongs to.
    pub member: MemberId,
    /// Their role now.
    pub role: Role,
}

/// The fields of a visit that make the record and never change.
const VISIT_FIELDS: &[&str] = &["at", "by", "kind", "notes", "needs"];
/// The fields of a request event that make the record and never change.
const EVENT_FIELDS: &[&str] =
    &["kind", "at", "by", "note", "after", "department", "assignee", "satisfaction", "outcome"];
/// The fields of a "same household" mark.
const MARK_FIELDS: &[&str] = &["a", "b", "same", "at", "by", "after"];

/// A document read at given heads (`None`: as it is now).
#[derive(Clone, Copy)]
struct At<'a> {
    doc: &'a AutoCommit,
    heads: Option<&'a [ChangeHash]>,
}

impl At<'_> {
    fn get_all(&self, obj: &ObjId, key: &str) -> Vec<(Value<'_>, ObjId)> {
        match self.heads {
            Some(heads) => self.doc.get_all_at(obj, key, heads),
            None => self.doc.get_all(obj, key),
        }
        .unwrap_or_default()
    }

    fn get(&self, obj: &ObjId, key: &str) -> Option<(Value<'_>, ObjId)> {
        match self.heads {
            Some(heads) => self.doc.get_at(obj, key, heads),
            None => self.doc.get(obj, key),
        }
        .ok()
        .flatten()
    }

    fn keys(&self, obj: &ObjId) -> Vec<String> {
        match self.heads {
            Some(heads) => self.doc.keys_at(obj, heads).collect(),
            None => self.doc.keys(obj).collect(),
        }
    }

    /// The map at `key` as a reader sees it (the winning value), if it is a map.
    fn map(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        match self.get(obj, key)? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        }
    }

    /// A value as a string, if it is one: a scalar string or a Text object's content (what
    /// Automerge JS writes by default), read at these heads, as [`doc`]'s readers read it.
    fn text(&self, value: &Value<'_>, id: &ObjId) -> Option<String> {
        match value {
            Value::Scalar(s) => s.as_str().map(str::to_owned),
            Value::Object(ObjType::Text) => match self.heads {
                Some(heads) => self.doc.text_at(id, heads).ok(),
                None => self.doc.text(id).ok(),
            },
            Value::Object(_) => None,
        }
    }

    /// One value as comparable text. A Text object compares by its content, exactly as the
    /// scalar string with that content (readers read both the same), so rewriting a Text
    /// in place or replacing it is seen.
    fn value_print(&self, value: &Value<'_>, id: &ObjId) -> String {
        match value {
            Value::Object(ObjType::Text) => {
                format!("{:?}", Value::from(self.text(value, id).unwrap_or_default()))
            }
            other => format!("{other:?}"),
        }
    }

    /// A field's value(s) as comparable text: every concurrent value, lists item by item.
    fn fingerprint(&self, obj: &ObjId, key: &str) -> String {
        let mut parts: Vec<String> = self
            .get_all(obj, key)
            .into_iter()
            .map(|(value, id)| match value {
                Value::Object(ObjType::List) => {
                    let items: Vec<String> = match self.heads {
                        Some(heads) => self
                            .doc
                            .list_range_at(&id, .., heads)
                            .map(|i| self.value_print(&Value::from(i.value.clone()), &i.id()))
                            .collect(),
                        None => self
                            .doc
                            .list_range(&id, ..)
                            .map(|i| self.value_print(&Value::from(i.value.clone()), &i.id()))
                            .collect(),
                    };
                    format!("[{}]", items.join(","))
                }
                Value::Object(ObjType::Map) => {
                    let mut keys = self.keys(&id);
                    keys.sort();
                    format!("{{{}}}", keys.join(","))
                }
                other => self.value_print(&other, &id),
            })
            .collect();
        parts.sort();
        parts.join("|")
    }

    /// The entries of the (winning) map at `root.key`: entry key → its object.
    fn entries(&self, key: &str) -> BTreeMap<String, ObjId> {
        let Some(map) = self.map(&ROOT, key) else { return BTreeMap::new() };
        self.keys(&map)
            .into_iter()
            .filter_map(|k| match self.get(&map, &k) {
                Some((Value::Object(ObjType::Map), obj)) => Some((k, obj)),
                _ => None,
            })
            .collect()
    }

    /// The entries of every concurrent map at `root.key` (marks may live in several).
    fn entries_of_all(&self, key: &str) -> BTreeMap<String, ObjId> {
        let mut out = BTreeMap::new();
        for (value, map) in self.get_all(&ROOT, key) {
            if !matches!(value, Value::Object(ObjType::Map)) {
                continue;
            }
            for k in self.keys(&map) {
                if let Some((Value::Object(ObjType::Map), obj)) = self.get(&map, &k) {
                    out.entry(k).or_insert(obj);
                }
            }
        }
        out
    }
}

fn invalid(id: DocumentId, message: String) -> Rejection {
    Rejection { code: ErrorCode::InvalidDocument, message: format!("document {id}: {message}") }
}

fn forged(id: DocumentId, message: String) -> Rejection {
    Rejection { code: ErrorCode::ForgedActor, message: format!("document {id}: {message}") }
}

fn not_allowed(id: DocumentId, message: String) -> Rejection {
    Rejection { code: ErrorCode::OutOfScope, message: format!("document {id}: {message}") }
}

/// Checks what the upload did to document `id`, now `doc`, which had heads `before` before the
/// upload (`None`: the upload creates it). The document has passed [`doc::check::document`].
/// Returns the households the upload newly links to (a new mark's other household, a new
/// request's household): the server checks those are in the uploader's scope too.
pub fn check(
    doc: &AutoCommit,
    id: DocumentId,
    kind: DocumentKind,
    before: Option<&[ChangeHash]>,
    uploader: &Uploader,
) -> Result<Vec<HouseholdId>, Rejection> {
    let now = At { doc, heads: None };
    let then = before.map(|heads| At { doc, heads: Some(heads) });
    match kind {
        DocumentKind::Household => check_household(now, then, id, uploader),
        DocumentKind::Request => check_request(now, then, id, uploader),
    }
}

/// The member id an entry (or the root) names in `field`: a scalar string or a Text.
fn author(at: At<'_>, obj: &ObjId, field: &str) -> Option<MemberId> {
    let (value, id) = at.get(obj, field)?;
    at.text(&value, &id)?.parse().ok()
}

/// Entries of `key` present before must be present now with `fields` unchanged; entries present
/// now and not before are returned, with those whose mutable parts (location, attachments)
/// changed.
struct EntryChanges {
    added: Vec<(String, ObjId)>,
    touched: Vec<(String, ObjId)>,
}

fn compare_entries(
    now: At<'_>,
    then: Option<At<'_>>,
    id: DocumentId,
    key: &str,
    what: &str,
    fields: &[&str],
    all_maps: bool,
) -> Result<EntryChanges, Rejection> {
    if let Some(then) = then {
        // The map itself must stay the same object: one replaced by a new map (even an empty
        // one) drops every entry of the old for whoever reads it.
        let maps = |at: At<'_>| -> Vec<ObjId> {
            at.get_all(&ROOT, key)
                .into_iter()
                .filter(|(v, _)| matches!(v, Value::Object(ObjType::Map)))
                .map(|(_, id)| id)
                .collect()
        };
        let (old, new) = (maps(then), maps(now));
        let kept = if all_maps {
            old.iter().all(|m| new.contains(m))
        } else {
            old.is_empty() || then.map(&ROOT, key) == now.map(&ROOT, key)
        };
        if !kept {
            return Err(invalid(
                id,
                format!("{key} was replaced by a new map; add entries to the existing one"),
            ));
        }
    }
    let read = |at: At<'_>| if all_maps { at.entries_of_all(key) } else { at.entries(key) };
    let after = read(now);
    let mut out = EntryChanges { added: Vec::new(), touched: Vec::new() };
    let before = then.map(read).unwrap_or_default();
    for (entry, old) in before.iter().filter(|_| then.is_some()) {
        let Some(then) = then else { break };
        let Some(new) = after.get(entry) else {
            return Err(invalid(id, format!("{what} {entry} was removed; {key} only grow")));
        };
        for field in fields {
            if then.fingerprint(old, field) != now.fingerprint(new, field) {
                return Err(invalid(id, format!("{what} {entry}: {field} cannot be changed once written")));
            }
        }
        let old_attachments: BTreeSet<String> =
            then.map(old, "attachments").map(|m| then.keys(&m).into_iter().collect()).unwrap_or_default();
        let new_attachments: BTreeSet<String> =
            now.map(new, "attachments").map(|m| now.keys(&m).into_iter().collect()).unwrap_or_default();
        if !old_attachments.is_subset(&new_attachments) {
            return Err(invalid(id, format!("{what} {entry}: an attachment was removed")));
        }
        let attachments_changed = then.fingerprint(old, "attachments") != now.fingerprint(new, "attachments")
            || old_attachments.iter().any(|h| {
                let (Some(a), Some(b)) = (then.map(old, "attachments"), now.map(new, "attachments")) else {
                    return false;
                };
                match (then.map(&a, h), now.map(&b, h)) {
                    (Some(x), Some(y)) => ["size", "media_type", "name", "added_at"]
                        .iter()
                        .any(|f| then.fingerprint(&x, f) != now.fingerprint(&y, f)),
                    _ => true,
                }
            });
        let location_changed = then.fingerprint(old, "location") != now.fingerprint(new, "location")
            || match (then.map(old, "location"), now.map(new, "location")) {
                (Some(x), Some(y)) => ["latitude", "longitude", "accuracy_m", "at"]
                    .iter()
                    .any(|f| then.fingerprint(&x, f) != now.fingerprint(&y, f)),
                (None, None) => false,
                _ => true,
            };
        if attachments_changed || location_changed {
            out.touched.push((entry.clone(), new.clone()));
        }
    }
    for (entry, obj) in after {
        if !before.contains_key(&entry) {
            out.added.push((entry, obj));
        }
    }
    Ok(out)
}

/// The root fields that were written once, when the document was made.
fn check_root_fixed(
    now: At<'_>,
    then: Option<At<'_>>,
    id: DocumentId,
    fields: &[&str],
) -> Result<(), Rejection> {
    let Some(then) = then else { return Ok(()) };
    for field in fields {
        if then.fingerprint(&ROOT, field) != now.fingerprint(&ROOT, field) {
            return Err(invalid(id, format!("{field} cannot be changed once written")));
        }
    }
    Ok(())
}

fn own(
    now: At<'_>,
    id: DocumentId,
    obj: &ObjId,
    field: &str,
    what: &str,
    uploader: &Uploader,
) -> Result<(), Rejection> {
    match author(now, obj, field) {
        Some(m) if m == uploader.member => Ok(()),
        _ => Err(forged(id, format!("{what} is credited to another member than this device's"))),
    }
}

fn check_household(
    now: At<'_>,
    then: Option<At<'_>>,
    id: DocumentId,
    uploader: &Uploader,
) -> Result<Vec<HouseholdId>, Rejection> {
    check_root_fixed(now, then, id, &["created_at", "created_by"])?;
    if then.is_none() {
        if !uploader.role.manages_households() {
            return Err(not_allowed(id, format!("a {} cannot register households", uploader.role)));
        }
        own(now, id, &ROOT, "created_by", "the household", uploader)?;
    }
    compare_entries(now, then, id, "residents", "resident", &[], false)?;
    let visits = compare_entries(now, then, id, "visits", "visit", VISIT_FIELDS, false)?;
    for (entry, obj) in visits.added.iter().chain(&visits.touched) {
        own(now, id, obj, "by", &format!("visit {entry}"), uploader)?;
    }
    // Compared only for the roles that may not change helpers (most uploads skip it).
    if !uploader.role.manages_households()
        && let Some(then) = then
        && helpers_text(then) != helpers_text(now)
    {
        return Err(not_allowed(id, format!("a {} cannot change a household's helpers", uploader.role)));
    }
    let marks = compare_entries(now, then, id, doc::same_household::KEY, "mark", MARK_FIELDS, true)?;
    let own_id = id.as_household();
    let mut links = Vec::new();
    for (entry, obj) in &marks.added {
        own(now, id, obj, "by", &format!("mark {entry}"), uploader)?;
        for end in ["a", "b"] {
            if let Some((value, end_id)) = now.get(obj, end)
                && let Some(other) = now.text(&value, &end_id).and_then(|t| t.parse::<HouseholdId>().ok())
                && other != own_id
            {
                links.push(other);
            }
        }
    }
    Ok(links)
}

/// The helpers map as text: every key with its value(s), so an added helper and a flip of
/// `true` to `false` both count as a change.
fn helpers_text(at: At<'_>) -> String {
    let Some(map) = at.map(&ROOT, "helpers") else { return String::new() };
    at.keys(&map).iter().map(|k| format!("{k}={}", at.fingerprint(&map, k))).collect::<Vec<_>>().join(";")
}

fn check_request(
    now: At<'_>,
    then: Option<At<'_>>,
    id: DocumentId,
    uploader: &Uploader,
) -> Result<Vec<HouseholdId>, Rejection> {
    check_root_fixed(now, then, id, &["raised_at", "raised_by", "category"])?;
    let mut links = Vec::new();
    if then.is_none() {
        own(now, id, &ROOT, "raised_by", "the request", uploader)?;
        if let Some((value, household_id)) = now.get(&ROOT, "household")
            && let Some(household) =
                now.text(&value, &household_id).and_then(|t| t.parse::<HouseholdId>().ok())
        {
            links.push(household);
        }
    }
    let events = compare_entries(now, then, id, "events", "event", EVENT_FIELDS, false)?;
    if events.added.is_empty() && events.touched.is_empty() {
        return Ok(links);
    }
    // The document passed the field rules, so every event reads in full.
    let request = doc::request::read(now.doc, id.as_request()).map_err(|e| invalid(id, e.to_string()))?;
    for (entry, obj) in &events.touched {
        own(now, id, obj, "by", &format!("event {entry}"), uploader)?;
    }
    for (entry, obj) in &events.added {
        own(now, id, obj, "by", &format!("event {entry}"), uploader)?;
        let Some(event) = request.events.iter().find(|e| e.id.to_string() == *entry) else {
            return Err(invalid(id, format!("event {entry} cannot be read")));
        };
        if matches!(event.action, crate::model::EventAction::Raised) && then.is_some() {
            return Err(invalid(id, "a request is raised once, when it is made".into()));
        }
        if !uploader.role.may_take(&event.action) {
            return Err(not_allowed(
                id,
                format!("a {} may not record a {:?} event", uploader.role, event.action.kind_str()),
            ));
        }
    }
    Ok(links)
}
