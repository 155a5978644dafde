//! The field rules of every document kind, checked over a whole document: each known field
//! has one of the Automerge types the readers take ([`crate::doc::access`]: a string, scalar or
//! Text; an integer, or a timestamp where it holds a time; a boolean; a map; a list), the limits and formats the edit functions apply (text lengths, phone numbers, birth
//! years, locations), one of the allowed values (visit kinds, urgencies, event kinds…), and
//! every key of a map of entries is an id in its canonical spelling (lower-case UUID). Every
//! concurrent value of a field is checked, not only the one a reader would pick.
//!
//! The server runs [`document`] on the result of every upload (`sync::validate`), so what it
//! acknowledges is what the readers in [`crate::doc`] read in full. Keys this build does not
//! know are allowed and left alone: a newer app may add fields.

use std::fmt::Display;
use std::str::FromStr;

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::doc::access::{as_i64, as_string};
use crate::doc::schema::{EVENT_KINDS, SATISFACTIONS, SEXES, URGENCIES, VISIT_KINDS};
use crate::doc::{DocumentKind, household, request, same_household};
use crate::ids::{Code, DocumentId, EventId, GridId, HouseholdId, LinkId, MemberId, ResidentId, VisitId};
use crate::lifecycle::RequestStatus;
use crate::model::attachment::{
    ContentHash, LocationFix, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENT_LABEL, MAX_ATTACHMENTS_PER_ITEM,
};
use crate::model::text::{self, LONG_TEXT_MAX, SHORT_TEXT_MAX};
use crate::time::Timestamp;

/// A field that breaks its rule: where (a dotted path such as `visits.<id>.by`) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("field {path}: {reason}")]
pub struct FieldError {
    /// The field's path from the document's root.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

type Checked = Result<(), FieldError>;

/// Checks every known field of document `id` of `kind`.
pub fn document(doc: &AutoCommit, id: DocumentId, kind: DocumentKind) -> Checked {
    match kind {
        DocumentKind::Household => check_household(doc, id.as_household()),
        DocumentKind::Request => check_request(doc, id.as_request()),
    }
}

/// What an integer field takes.
struct IntRule {
    /// It must be present.
    required: bool,
    /// Null is allowed.
    nullable: bool,
    /// An Automerge timestamp is allowed (a field holding a time).
    timestamps: bool,
    /// The allowed values.
    range: std::ops::RangeInclusive<i64>,
}

impl IntRule {
    /// A required integer in `range`.
    fn required(range: std::ops::RangeInclusive<i64>) -> Self {
        Self { required: true, nullable: false, timestamps: false, range }
    }
}

/// A walk over one document, building paths as it goes.
struct Walk<'a> {
    doc: &'a AutoCommit,
}

fn fail(path: &str, reason: impl Into<String>) -> FieldError {
    FieldError { path: path.to_owned(), reason: reason.into() }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// What kind of value a field must hold, for messages.
fn describe(value: &Value<'_>) -> String {
    match value {
        Value::Object(t) => format!("a {t:?}").to_lowercase(),
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(_) => "a string".into(),
            ScalarValue::Int(_) | ScalarValue::Uint(_) => "an integer".into(),
            ScalarValue::F64(_) => "a float".into(),
            ScalarValue::Boolean(_) => "a boolean".into(),
            ScalarValue::Null => "null".into(),
            ScalarValue::Timestamp(_) => "a timestamp".into(),
            ScalarValue::Counter(_) => "a counter".into(),
            ScalarValue::Bytes(_) => "bytes".into(),
            _ => "a value of another type".into(),
        },
    }
}

/// Whether `key` is the canonical text of a `T` (a lower-case UUID for ids, lower-case hex for
/// content hashes).
fn canonical<T: FromStr + Display>(key: &str) -> bool {
    key.parse::<T>().is_ok_and(|v| v.to_string() == key)
}

impl Walk<'_> {
    /// Every concurrent value at `key` (none when absent).
    fn values(&self, obj: &ObjId, key: &str) -> Vec<(Value<'_>, ObjId)> {
        self.doc.get_all(obj, key).unwrap_or_default()
    }

    /// Every value at `key` must be a string passing `rule`; `required`: it must be present.
    fn string(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
        required: bool,
        rule: impl Fn(&str) -> Result<(), String>,
    ) -> Checked {
        let path = join(path, key);
        let values = self.values(obj, key);
        if values.is_empty() && required {
            return Err(fail(&path, "is missing"));
        }
        for (value, id) in values {
            match as_string(self.doc, &value, &id) {
                Some(text) => rule(&text).map_err(|reason| fail(&path, reason))?,
                None => return Err(fail(&path, format!("must be a string, not {}", describe(&value)))),
            }
        }
        Ok(())
    }

    /// Every value at `key` must be an integer as `rule` says.
    fn integer(&self, obj: &ObjId, key: &str, path: &str, rule: IntRule) -> Checked {
        let IntRule { required, nullable, timestamps, range } = rule;
        let path = join(path, key);
        let values = self.values(obj, key);
        if values.is_empty() && required {
            return Err(fail(&path, "is missing"));
        }
        for (value, _) in values {
            let number = match &value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Null if nullable => continue,
                    ScalarValue::Timestamp(_) if !timestamps => None,
                    ScalarValue::Uint(u) => Some(i64::try_from(*u).unwrap_or(i64::MAX)),
                    _ => as_i64(&value),
                },
                Value::Object(_) => None,
            };
            match number {
                Some(n) if range.contains(&n) => {}
                Some(n) => {
                    return Err(fail(&path, format!("{n} is outside {}..={}", range.start(), range.end())));
                }
                None => return Err(fail(&path, format!("must be an integer, not {}", describe(&value)))),
            }
        }
        Ok(())
    }

    /// Milliseconds since 1970 (a device or server time): an integer, never negative.
    fn time(&self, obj: &ObjId, key: &str, path: &str, required: bool) -> Checked {
        self.integer(
            obj,
            key,
            path,
            IntRule { required, nullable: false, timestamps: true, range: 0..=i64::MAX },
        )
    }

    /// Every value at `key` must be a number (integer or float) passing `rule`.
    fn number(&self, obj: &ObjId, key: &str, path: &str, rule: impl Fn(f64) -> bool) -> Checked {
        let path = join(path, key);
        let values = self.values(obj, key);
        if values.is_empty() {
            return Err(fail(&path, "is missing"));
        }
        for (value, _) in values {
            let number = match &value {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::F64(f) => Some(*f),
                    ScalarValue::Int(i) => Some(*i as f64),
                    ScalarValue::Uint(u) => Some(*u as f64),
                    _ => None,
                },
                Value::Object(_) => None,
            };
            match number {
                Some(n) if rule(n) => {}
                Some(n) => return Err(fail(&path, format!("{n} is out of range"))),
                None => return Err(fail(&path, format!("must be a number, not {}", describe(&value)))),
            }
        }
        Ok(())
    }

    /// Every value at `key` must be a boolean.
    fn boolean(&self, obj: &ObjId, key: &str, path: &str, required: bool) -> Checked {
        let path = join(path, key);
        let values = self.values(obj, key);
        if values.is_empty() && required {
            return Err(fail(&path, "is missing"));
        }
        for (value, _) in values {
            if !matches!(&value, Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Boolean(_))) {
                return Err(fail(&path, format!("must be true or false, not {}", describe(&value))));
            }
        }
        Ok(())
    }

    /// Every value at `key` must be an object of type `kind`; returns them all.
    fn objects(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
        required: bool,
        kind: ObjType,
    ) -> Result<Vec<ObjId>, FieldError> {
        let path = join(path, key);
        let values = self.values(obj, key);
        if values.is_empty() && required {
            return Err(fail(&path, "is missing"));
        }
        let mut out = Vec::with_capacity(values.len());
        for (value, id) in values {
            match value {
                Value::Object(t) if t == kind => out.push(id),
                other => {
                    let wanted = if kind == ObjType::List { "a list" } else { "a map" };
                    return Err(fail(&path, format!("must be {wanted}, not {}", describe(&other))));
                }
            }
        }
        Ok(out)
    }

    /// A list at `key` whose items are all strings passing `rule`, at most `max` of them.
    fn string_list(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
        required: bool,
        max: usize,
        rule: impl Fn(&str) -> Result<(), String>,
    ) -> Checked {
        for list in self.objects(obj, key, path, required, ObjType::List)? {
            let path = join(path, key);
            let items: Vec<_> = self.doc.list_range(&list, ..).collect();
            if items.len() > max {
                return Err(fail(&path, format!("holds {} items; at most {max}", items.len())));
            }
            for (i, item) in items.into_iter().enumerate() {
                let id = item.id();
                let value = Value::from(item.value);
                let item_path = format!("{path}[{i}]");
                match as_string(self.doc, &value, &id) {
                    Some(text) => rule(&text).map_err(|reason| fail(&item_path, reason))?,
                    None => {
                        return Err(fail(&item_path, format!("must be a string, not {}", describe(&value))));
                    }
                }
            }
        }
        Ok(())
    }

    /// The entries of the map(s) at `key`, each key the canonical text of a `K` and each value a
    /// map: `(key, entry object, entry path)`.
    fn entries<K: FromStr + Display>(
        &self,
        obj: &ObjId,
        key: &str,
        path: &str,
        required: bool,
        what: &str,
    ) -> Result<Vec<(String, ObjId, String)>, FieldError> {
        let mut out = Vec::new();
        for map in self.objects(obj, key, path, required, ObjType::Map)? {
            for entry in self.doc.keys(&map) {
                let entry_path = join(&join(path, key), &entry);
                if !canonical::<K>(&entry) {
                    return Err(fail(&entry_path, format!("the key must be a {what} in lower case")));
                }
                for object in self.objects(&map, &entry, &join(path, key), true, ObjType::Map)? {
                    out.push((entry.clone(), object, entry_path.clone()));
                }
            }
        }
        Ok(out)
    }
}

fn short(field: &'static str, required: bool) -> impl Fn(&str) -> Result<(), String> {
    move |v| {
        if required {
            text::required(field, v, SHORT_TEXT_MAX).map(drop).map_err(|e| e.to_string())
        } else {
            text::optional(field, v, SHORT_TEXT_MAX).map(drop).map_err(|e| e.to_string())
        }
    }
}

fn long(field: &'static str, required: bool) -> impl Fn(&str) -> Result<(), String> {
    move |v| {
        if required {
            text::required(field, v, LONG_TEXT_MAX).map(drop).map_err(|e| e.to_string())
        } else {
            text::optional(field, v, LONG_TEXT_MAX).map(drop).map_err(|e| e.to_string())
        }
    }
}

fn id_of<T: FromStr + Display>(what: &'static str) -> impl Fn(&str) -> Result<(), String> {
    move |v| if canonical::<T>(v) { Ok(()) } else { Err(format!("{v:?} is not a {what} in lower case")) }
}

fn one_of(allowed: &'static [&'static str]) -> impl Fn(&str) -> Result<(), String> {
    move |v| {
        if allowed.contains(&v) { Ok(()) } else { Err(format!("{v:?} is not one of {}", allowed.join(", "))) }
    }
}

fn code(v: &str) -> Result<(), String> {
    Code::new(v).map(drop).map_err(|_| format!("{v:?} is not a code (lower-case letters, digits, _)"))
}

/// The root fields every document has: `schema`, `type`, `id`.
fn check_root(w: &Walk<'_>, id: DocumentId, type_name: &'static str) -> Checked {
    w.integer(&ROOT, "schema", "", IntRule::required(1..=i64::from(u32::MAX)))?;
    w.string(&ROOT, "type", "", true, |v| {
        if v == type_name { Ok(()) } else { Err(format!("must be {type_name:?}")) }
    })?;
    let expected = id.to_string();
    w.string(&ROOT, "id", "", true, |v| {
        if v == expected { Ok(()) } else { Err("does not match the document's id".into()) }
    })
}

fn check_household(doc: &AutoCommit, id: HouseholdId) -> Checked {
    let w = Walk { doc };
    check_root(&w, id.into(), household::TYPE)?;
    w.time(&ROOT, "created_at", "", true)?;
    w.string(&ROOT, "created_by", "", true, id_of::<MemberId>("member id"))?;
    w.string(&ROOT, "notes", "", false, long("notes", false))?;
    let addresses = w.objects(&ROOT, "address", "", true, ObjType::Map)?;
    for address in &addresses {
        w.string(address, "community", "address", true, short("community", true))?;
        w.string(address, "grid", "address", true, id_of::<GridId>("grid id"))?;
        w.string(address, "building", "address", false, short("building", false))?;
        w.string(address, "unit", "address", false, short("unit", false))?;
        w.string(address, "room", "address", true, short("room", true))?;
    }
    for (_, resident, path) in w.entries::<ResidentId>(&ROOT, "residents", "", true, "resident id")? {
        w.string(&resident, "name", &path, true, short("name", true))?;
        w.string(&resident, "sex", &path, false, one_of(SEXES))?;
        w.integer(
            &resident,
            "birth_year",
            &path,
            IntRule { required: false, nullable: true, timestamps: false, range: 1900..=2100 },
        )?;
        w.string(&resident, "phone", &path, false, |v| text::phone(v).map(drop).map_err(|e| e.to_string()))?;
        w.time(&resident, "added_at", &path, true)?;
        w.boolean(&resident, "removed", &path, true)?;
        for tags in w.objects(&resident, "tags", &path, false, ObjType::Map)? {
            let tags_path = join(&path, "tags");
            for tag in doc.keys(&tags) {
                code(&tag).map_err(|reason| fail(&join(&tags_path, &tag), reason))?;
                w.boolean(&tags, &tag, &tags_path, true)?;
            }
        }
    }
    for helpers in w.objects(&ROOT, "helpers", "", true, ObjType::Map)? {
        for helper in doc.keys(&helpers) {
            if !canonical::<MemberId>(&helper) {
                return Err(fail(&join("helpers", &helper), "the key must be a member id in lower case"));
            }
            w.boolean(&helpers, &helper, "helpers", true)?;
        }
    }
    for (_, visit, path) in w.entries::<VisitId>(&ROOT, "visits", "", true, "visit id")? {
        w.time(&visit, "at", &path, true)?;
        w.string(&visit, "by", &path, true, id_of::<MemberId>("member id"))?;
        w.string(&visit, "kind", &path, true, one_of(VISIT_KINDS))?;
        w.string(&visit, "notes", &path, false, long("notes", false))?;
        w.string_list(&visit, "needs", &path, false, household::MAX_NEEDS, short("need", true))?;
        check_location(&w, &visit, &path)?;
        check_attachments(&w, &visit, &path)?;
    }
    check_marks(&w, id)
}

fn check_location(w: &Walk<'_>, visit: &ObjId, path: &str) -> Checked {
    for location in w.objects(visit, "location", path, false, ObjType::Map)? {
        let path = join(path, "location");
        let probe = |lat: f64, lon: f64, acc: f64| {
            LocationFix { latitude: lat, longitude: lon, accuracy_m: acc, at: Timestamp(0) }.check().is_ok()
        };
        w.number(&location, "latitude", &path, |v| probe(v, 0.0, 0.0))?;
        w.number(&location, "longitude", &path, |v| probe(0.0, v, 0.0))?;
        w.number(&location, "accuracy_m", &path, |v| probe(0.0, 0.0, v))?;
        w.time(&location, "at", &path, true)?;
    }
    Ok(())
}

fn check_attachments(w: &Walk<'_>, item: &ObjId, path: &str) -> Checked {
    for map in w.objects(item, "attachments", path, false, ObjType::Map)? {
        let path = join(path, "attachments");
        let keys: Vec<String> = w.doc.keys(&map).collect();
        if keys.len() > MAX_ATTACHMENTS_PER_ITEM {
            return Err(fail(&path, format!("at most {MAX_ATTACHMENTS_PER_ITEM} attachments per item")));
        }
        for key in keys {
            if !canonical::<ContentHash>(&key) {
                return Err(fail(&join(&path, &key), "the key must be a SHA-256 in lower-case hex"));
            }
            for attachment in w.objects(&map, &key, &path, true, ObjType::Map)? {
                let path = join(&path, &key);
                let max = i64::try_from(MAX_ATTACHMENT_BYTES).unwrap_or(i64::MAX);
                w.integer(&attachment, "size", &path, IntRule::required(1..=max))?;
                w.string(&attachment, "media_type", &path, true, |v| {
                    let ok = !v.is_empty()
                        && v.chars().count() <= MAX_ATTACHMENT_LABEL
                        && v.contains('/')
                        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
                    if ok { Ok(()) } else { Err(format!("{v:?} is not a media type such as image/jpeg")) }
                })?;
                w.string(&attachment, "name", &path, false, |v| {
                    if v.chars().count() > MAX_ATTACHMENT_LABEL || v.chars().any(char::is_control) {
                        Err(format!("a file name of at most {MAX_ATTACHMENT_LABEL} characters"))
                    } else {
                        Ok(())
                    }
                })?;
                w.time(&attachment, "added_at", &path, true)?;
            }
        }
    }
    Ok(())
}

fn check_marks(w: &Walk<'_>, id: HouseholdId) -> Checked {
    for (_, mark, path) in w.entries::<LinkId>(&ROOT, same_household::KEY, "", false, "mark id")? {
        w.string(&mark, "a", &path, true, id_of::<HouseholdId>("household id"))?;
        w.string(&mark, "b", &path, true, id_of::<HouseholdId>("household id"))?;
        let ends: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|k| w.values(&mark, k))
            .filter_map(|(v, id)| as_string(w.doc, &v, &id))
            .collect();
        let own = id.to_string();
        if !ends.contains(&own) {
            return Err(fail(&path, "a mark must name the household it is written into"));
        }
        if ends.iter().all(|e| *e == own) {
            return Err(fail(&path, "a household cannot be marked as the same as itself"));
        }
        w.boolean(&mark, "same", &path, true)?;
        w.time(&mark, "at", &path, true)?;
        w.string(&mark, "by", &path, true, id_of::<MemberId>("member id"))?;
        w.string_list(&mark, "after", &path, false, usize::MAX, id_of::<LinkId>("mark id"))?;
    }
    Ok(())
}

fn check_request(doc: &AutoCommit, id: crate::ids::RequestId) -> Checked {
    let w = Walk { doc };
    check_root(&w, id.into(), request::TYPE)?;
    for (value, id) in w.values(&ROOT, "household") {
        let ok = match &value {
            Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Null) => true,
            _ => as_string(doc, &value, &id).is_some_and(|v| canonical::<HouseholdId>(&v)),
        };
        if !ok {
            return Err(fail("household", "must be a household id in lower case or null"));
        }
    }
    w.string(&ROOT, "grid", "", true, id_of::<GridId>("grid id"))?;
    w.string(&ROOT, "category", "", true, code)?;
    w.string(&ROOT, "description", "", true, long("description", true))?;
    w.string(&ROOT, "urgency", "", true, one_of(URGENCIES))?;
    w.time(&ROOT, "raised_at", "", true)?;
    w.string(&ROOT, "raised_by", "", true, id_of::<MemberId>("member id"))?;
    w.time(&ROOT, "due_at", "", true)?;
    let mut raised = 0;
    for (_, event, path) in w.entries::<EventId>(&ROOT, "events", "", true, "event id")? {
        w.string(&event, "kind", &path, true, one_of(EVENT_KINDS))?;
        let kinds: Vec<String> =
            w.values(&event, "kind").into_iter().filter_map(|(v, id)| as_string(doc, &v, &id)).collect();
        w.time(&event, "at", &path, true)?;
        w.string(&event, "by", &path, true, id_of::<MemberId>("member id"))?;
        w.string(&event, "note", &path, false, long("note", false))?;
        w.string_list(&event, "after", &path, false, usize::MAX, id_of::<EventId>("event id"))?;
        let needs = |field: &str| kinds.iter().any(|k| k == field);
        if needs("raised") {
            raised += 1;
        }
        w.string(&event, "department", &path, needs("dispatched"), code)?;
        w.string(&event, "assignee", &path, needs("assigned"), id_of::<MemberId>("member id"))?;
        w.string(&event, "satisfaction", &path, needs("followed_up"), one_of(SATISFACTIONS))?;
        w.string(&event, "outcome", &path, false, |v| {
            RequestStatus::from_stored(v).map(drop).ok_or_else(|| format!("{v:?} is not a status"))
        })?;
        check_attachments(&w, &event, &path)?;
    }
    if raised == 0 {
        return Err(fail("events", "a request needs its raised event"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewHousehold, NewResident, NewVisit, Sex, VisitKind};
    use automerge::transaction::Transactable;

    fn household_doc() -> (AutoCommit, HouseholdId) {
        let id = HouseholdId::new_random();
        let mut doc = AutoCommit::new();
        let new = NewHousehold {
            address: crate::model::Address {
                community: "幸福社区".into(),
                grid: GridId::new_random(),
                building: "3".into(),
                unit: "1".into(),
                room: "402".into(),
            },
            residents: vec![NewResident {
                name: "王秀英".into(),
                sex: Sex::Female,
                birth_year: Some(1941),
                phone: "138 0000 0000".into(),
                tags: vec![],
            }],
            notes: String::new(),
        };
        household::create(
            &mut doc,
            id,
            &new,
            &[ResidentId::new_random()],
            MemberId::new_random(),
            Timestamp(5),
        )
        .expect("create");
        let visit = NewVisit {
            at: Timestamp(6),
            kind: VisitKind::Routine,
            notes: "好".into(),
            needs: vec!["送药".into()],
        };
        household::record_visit(&mut doc, id, VisitId::new_random(), &visit, MemberId::new_random())
            .expect("visit");
        (doc, id)
    }

    #[test]
    fn a_document_written_by_the_edit_functions_passes() {
        let (doc, id) = household_doc();
        assert_eq!(document(&doc, id.into(), DocumentKind::Household), Ok(()));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let (mut doc, id) = household_doc();
        let visits = doc.get(ROOT, "visits").expect("get").expect("visits").1;
        let key = doc.keys(&visits).next().expect("a visit");
        let visit = doc.get(&visits, &key).expect("get").expect("visit").1;
        doc.put(&visit, "at", ScalarValue::F64(6.0)).expect("put");
        let err = document(&doc, id.into(), DocumentKind::Household).expect_err("refused");
        assert_eq!(err.path, format!("visits.{key}.at"));
    }

    #[test]
    fn an_upper_case_key_and_a_hostile_phone_are_refused() {
        let (mut doc, id) = household_doc();
        let residents = doc.get(ROOT, "residents").expect("get").expect("residents").1;
        let key = doc.keys(&residents).next().expect("a resident");
        let resident = doc.get(&residents, &key).expect("get").expect("resident").1;
        doc.put(&resident, "phone", "<img src=x onerror=alert(1)>").expect("put");
        let err = document(&doc, id.into(), DocumentKind::Household).expect_err("refused");
        assert_eq!(err.path, format!("residents.{key}.phone"));

        let (mut doc, id) = household_doc();
        let visits = doc.get(ROOT, "visits").expect("get").expect("visits").1;
        let upper = VisitId::new_random().to_string().to_uppercase();
        doc.put_object(&visits, &upper, ObjType::Map).expect("put");
        let err = document(&doc, id.into(), DocumentKind::Household).expect_err("refused");
        assert!(err.reason.contains("lower case"), "{err}");
    }
}
