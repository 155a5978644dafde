//! Every field of every document kind, written in every Automerge representation another client
//! might choose, is either refused by the server's field rules with the field's path, or
//! accepted and read back exactly as the canonical document reads — never accepted and read as
//! a default. The fields come from the published schema (`doc::schema::FIELDS`, which
//! docs/SCHEMA.md shows), so the schema, the field rules and the readers are checked against
//! each other; a last test checks docs/SCHEMA.md itself.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use doorstep_core::doc::schema::{FIELDS, Field, FieldType};
use doorstep_core::doc::{self, DocumentKind, check};
use doorstep_core::ids::{
    Code, DocumentId, EventId, GridId, HouseholdId, LinkId, MemberId, RequestId, ResidentId, VisitId,
};
use doorstep_core::model::taxonomy::Category;
use doorstep_core::model::{
    Address, AttachmentRef, ContentHash, EventAction, LocationFix, NewEvent, NewHousehold, NewRequest,
    NewResident, NewVisit, ResidentTag, SameAsMark, Satisfaction, Sex, Urgency, VisitKind,
};
use doorstep_core::time::Timestamp;

/// How a field's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rep {
    Str,
    Text,
    Int,
    Uint,
    F64,
    Timestamp,
    Counter,
    Bytes,
    Bool,
    Null,
    List,
    Map,
    Missing,
}

const REPS: [Rep; 13] = [
    Rep::Str,
    Rep::Text,
    Rep::Int,
    Rep::Uint,
    Rep::F64,
    Rep::Timestamp,
    Rep::Counter,
    Rep::Bytes,
    Rep::Bool,
    Rep::Null,
    Rep::List,
    Rep::Map,
    Rep::Missing,
];

fn member() -> MemberId {
    "0b7e4f1a-2c3d-4e5f-8a9b-aabbccddeeff".parse().expect("id")
}

fn attachment(n: u8) -> AttachmentRef {
    AttachmentRef {
        hash: ContentHash::of(&[n; 3]),
        size: 3,
        media_type: "image/jpeg".into(),
        name: "门口.jpg".into(),
        added_at: Timestamp(1_780_000_000_500),
    }
}

/// A household with every field filled: a tagged resident, a visit with needs, a location and
/// a photo, a helper and a same-household mark.
fn household() -> (AutoCommit, DocumentId) {
    let id = HouseholdId::new_random();
    let mut doc = AutoCommit::new();
    let new = NewHousehold {
        address: Address {
            community: "幸福社区".into(),
            grid: GridId::new_random(),
            building: "3栋".into(),
            unit: "2单元".into(),
            room: "501".into(),
        },
        residents: vec![NewResident {
            name: "陈奶奶".into(),
            sex: Sex::Female,
            birth_year: Some(1941),
            phone: "138 0013 8000".into(),
            tags: vec![ResidentTag::ElderlyAlone],
        }],
        notes: "独居".into(),
    };
    let at = Timestamp(1_780_000_000_000);
    doc::household::create(&mut doc, id, &new, &[ResidentId::new_random()], member(), at).expect("create");
    let vid = VisitId::new_random();
    let visit = NewVisit { at, kind: VisitKind::Care, notes: "送药".into(), needs: vec!["助餐".into()] };
    doc::household::record_visit(&mut doc, id, vid, &visit, member()).expect("visit");
    let fix = LocationFix { latitude: 30.0, longitude: 114.0, accuracy_m: 8.0, at };
    doc::household::set_visit_location(&mut doc, id, vid, &fix).expect("location");
    doc::household::attach_to_visit(&mut doc, id, vid, &attachment(1)).expect("photo");
    doc::household::set_helper(&mut doc, id, MemberId::new_random(), true).expect("helper");
    let mark =
        SameAsMark::new(LinkId::new_random(), id, HouseholdId::new_random(), true, member(), at, vec![]);
    doc::same_household::write_mark(&mut doc, id, &mark).expect("mark");
    // A second mark that saw the first, so `after` is not empty.
    let later =
        SameAsMark::new(LinkId::new_random(), mark.pair.0, mark.pair.1, false, member(), at, vec![mark.id]);
    doc::same_household::write_mark(&mut doc, id, &later).expect("mark");
    doc.commit();
    (doc, id.into())
}

/// A request with an event carrying each kind of data: department, assignee, satisfaction,
/// outcome, and a photo.
fn request() -> (AutoCommit, DocumentId) {
    let id = RequestId::new_random();
    let mut doc = AutoCommit::new();
    let category = Category {
        code: Code::new("facility_repair").expect("code"),
        name_zh: "设施维修".into(),
        name_en: "Repairs".into(),
        department: Code::new("housing_construction").expect("code"),
        due_hours: 72,
        retired: false,
    };
    let new = NewRequest {
        household: Some(HouseholdId::new_random()),
        grid: None,
        category: "facility_repair".into(),
        description: "楼道灯坏了".into(),
        urgency: Urgency::Urgent,
        at: Timestamp(1_780_000_000_000),
    };
    doc::request::create(
        &mut doc,
        id,
        EventId::new_random(),
        &new,
        GridId::new_random(),
        &category,
        member(),
    )
    .expect("create");
    let steps = [
        EventAction::Dispatched { department: Code::new("civil_affairs").expect("code") },
        EventAction::Assigned { assignee: MemberId::new_random() },
        EventAction::Resolved,
        EventAction::FollowedUp { satisfaction: Satisfaction::BasicallySatisfied },
    ];
    let mut last = EventId::new_random();
    for (n, action) in steps.into_iter().enumerate() {
        last = EventId::new_random();
        let event =
            NewEvent { action, note: format!("第{n}步"), at: Timestamp(1_780_000_001_000 + n as i64) };
        doc::request::add_event(&mut doc, id, last, &event, member()).expect("event");
    }
    doc::request::attach_to_event(&mut doc, id, last, &attachment(2)).expect("photo");
    // A review with an outcome, written as another client would (the core writes reviews only
    // where there is a conflict).
    let events = doc.get(ROOT, "events").expect("get").expect("events").1;
    let review = doc.put_object(&events, EventId::new_random().to_string(), ObjType::Map).expect("review");
    doc.put(&review, "kind", "reviewed").expect("put");
    doc.put(&review, "at", 1_780_000_009_000_i64).expect("put");
    doc.put(&review, "by", member().to_string()).expect("put");
    doc.put(&review, "note", "").expect("put");
    let after = doc.put_object(&review, "after", ObjType::List).expect("after");
    doc.insert(&after, 0, last.to_string()).expect("insert");
    doc.put(&review, "outcome", "followed_up").expect("put");
    doc.commit();
    (doc, id.into())
}

/// The parent object and key of `path` in `doc`; a `<…>` segment takes the first key of its
/// map under which the rest of the path exists.
fn locate(doc: &AutoCommit, obj: &ObjId, segments: &[&str]) -> Option<(ObjId, String)> {
    let (first, rest) = segments.split_first()?;
    let keys: Vec<String> =
        if first.starts_with('<') { doc.keys(obj).collect() } else { vec![(*first).to_owned()] };
    for key in keys {
        if rest.is_empty() {
            if doc.get(obj, key.as_str()).ok()?.is_some() {
                return Some((obj.clone(), key));
            }
            continue;
        }
        if let Some((Value::Object(_), child)) = doc.get(obj, key.as_str()).ok()?
            && let Some(found) = locate(doc, &child, rest)
        {
            return Some(found);
        }
    }
    None
}

/// The field's value as text and as a number, as the canonical document holds it.
fn canonical(doc: &AutoCommit, obj: &ObjId, key: &str) -> (String, i64) {
    match doc.get(obj, key).expect("get").expect("present") {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(t) => (t.to_string(), 5),
            ScalarValue::Int(i) => (i.to_string(), *i),
            ScalarValue::Uint(u) => (u.to_string(), *u as i64),
            ScalarValue::F64(f) => (f.to_string(), *f as i64),
            ScalarValue::Boolean(b) => (b.to_string(), 1),
            ScalarValue::Null => (String::new(), 5),
            other => panic!("unexpected canonical value {other:?}"),
        },
        (Value::Object(_), _) => (String::new(), 5),
    }
}

/// Writes the field at `obj.key` in representation `rep`, keeping its value where the
/// representation can hold it.
fn write(doc: &mut AutoCommit, obj: &ObjId, key: &str, rep: Rep, text: &str, number: i64) {
    let items: Vec<String> = match doc.get(obj, key).expect("get") {
        Some((Value::Object(ObjType::List), list)) => doc
            .list_range(&list, ..)
            .filter_map(|i| match Value::from(i.value) {
                Value::Scalar(s) => s.as_str().map(str::to_owned),
                _ => None,
            })
            .collect(),
        _ => vec![text.to_owned()],
    };
    match rep {
        Rep::Str => doc.put(obj, key, text).map(drop),
        Rep::Text => doc.put_object(obj, key, ObjType::Text).and_then(|t| doc.splice_text(&t, 0, 0, text)),
        Rep::Int => doc.put(obj, key, ScalarValue::Int(number)).map(drop),
        Rep::Uint => doc.put(obj, key, ScalarValue::Uint(number.unsigned_abs())).map(drop),
        Rep::F64 => doc.put(obj, key, ScalarValue::F64(number as f64)).map(drop),
        Rep::Timestamp => doc.put(obj, key, ScalarValue::Timestamp(number)).map(drop),
        Rep::Counter => doc.put(obj, key, ScalarValue::counter(number)).map(drop),
        Rep::Bytes => doc.put(obj, key, ScalarValue::Bytes(text.as_bytes().to_vec())).map(drop),
        Rep::Bool => doc.put(obj, key, text != "false").map(drop),
        Rep::Null => doc.put(obj, key, ScalarValue::Null).map(drop),
        Rep::List => doc.put_object(obj, key, ObjType::List).and_then(|list| {
            for (i, item) in items.iter().enumerate() {
                doc.insert(&list, i, item.as_str())?;
            }
            Ok(())
        }),
        Rep::Map => doc.put_object(obj, key, ObjType::Map).map(drop),
        Rep::Missing => doc.delete(obj, key),
    }
    .expect("write");
}

/// Whether the field rules must accept `rep` for `field` (with the value kept).
fn accepted(field: &Field, rep: Rep, number_is_integral: bool) -> bool {
    let conditional = field.meaning.starts_with("required for");
    match rep {
        Rep::Missing => !field.required && !conditional,
        Rep::Null => {
            matches!(field.ty, FieldType::Integer { nullable: true, .. }) || field.path == "household"
        }
        _ => match field.ty {
            FieldType::Text { .. }
            | FieldType::Phone
            | FieldType::Id(_)
            | FieldType::Code
            | FieldType::OneOf(_)
            | FieldType::Exactly(_) => matches!(rep, Rep::Str | Rep::Text),
            FieldType::Time => matches!(rep, Rep::Int | Rep::Uint | Rep::Timestamp),
            FieldType::Integer { .. } => matches!(rep, Rep::Int | Rep::Uint),
            FieldType::Number { .. } => {
                matches!(rep, Rep::F64) || (number_is_integral && matches!(rep, Rep::Int | Rep::Uint))
            }
            FieldType::Bool => rep == Rep::Bool,
            FieldType::List { .. } => rep == Rep::List,
            FieldType::Map => false,
        },
    }
}

/// Everything a reader shows of the document.
fn read(doc: &AutoCommit, id: DocumentId, kind: DocumentKind) -> String {
    match kind {
        DocumentKind::Household => format!(
            "{:?} {:?} {:?}",
            doc::household::read(doc, id.as_household()),
            doc::household::conflicts(doc, id.as_household()),
            doc::same_household::marks(doc)
        ),
        DocumentKind::Request => format!("{:?}", doc::request::read(doc, id.as_request())),
    }
}

#[test]
fn every_field_in_every_representation_is_refused_by_path_or_read_back_exactly() {
    let mut checked = 0;
    for (kind, (sample, id)) in [(DocumentKind::Household, household()), (DocumentKind::Request, request())] {
        assert_eq!(check::document(&sample, id, kind), Ok(()), "the sample {kind:?} is valid");
        let expected = read(&sample, id, kind);
        for field in FIELDS.iter().filter(|f| f.kind == kind) {
            let segments: Vec<&str> = field.path.split('.').collect();
            let (parent, key) = locate(&sample, &ROOT, &segments)
                .unwrap_or_else(|| panic!("the sample {kind:?} has no {}", field.path));
            let (text, number) = canonical(&sample, &parent, &key);
            let integral = text.parse::<f64>().is_ok_and(|f| f.fract() == 0.0);
            for rep in REPS {
                if field.ty == FieldType::Map && rep == Rep::Map {
                    continue; // a new map in place of the old is the entry rules' concern
                }
                let mut doc = sample.clone();
                let (parent, key) = locate(&doc, &ROOT, &segments).expect("located");
                write(&mut doc, &parent, &key, rep, &text, number);
                doc.commit();
                let outcome = check::document(&doc, id, kind);
                let what = format!("{kind:?} {} as {rep:?}", field.path);
                if accepted(field, rep, integral) {
                    assert_eq!(outcome, Ok(()), "{what} must be accepted");
                    if !matches!(rep, Rep::Missing | Rep::Null) {
                        assert_eq!(read(&doc, id, kind), expected, "{what} must read back exactly");
                    }
                } else {
                    let error = outcome.expect_err(&format!("{what} must be refused"));
                    let concrete: Vec<String> = field
                        .path
                        .split('.')
                        .map(|s| if s.starts_with('<') { "*".to_owned() } else { s.to_owned() })
                        .collect();
                    let named: Vec<String> = error.path.split('.').map(str::to_owned).collect();
                    let prefix_matches = named.len() >= concrete.len().min(named.len())
                        && concrete
                            .iter()
                            .zip(&named)
                            .all(|(want, got)| want == "*" || got.starts_with(want.as_str()));
                    assert!(
                        prefix_matches && !error.path.is_empty(),
                        "{what}: the error names {:?}",
                        error.path
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 800, "{checked} cases");
}

#[test]
fn keys_in_upper_case_or_not_ids_are_refused_in_every_map_of_entries() {
    for (kind, (sample, id)) in [(DocumentKind::Household, household()), (DocumentKind::Request, request())] {
        let maps: &[&str] = match kind {
            DocumentKind::Household => &["residents", "visits", "helpers", "same_as"],
            DocumentKind::Request => &["events"],
        };
        for map in maps {
            for bad in [uuid_upper(), "not-an-id".to_owned()] {
                let mut doc = sample.clone();
                let obj = doc.get(ROOT, *map).expect("get").expect("map").1;
                let entry = doc.put_object(&obj, bad.as_str(), ObjType::Map).expect("entry");
                doc.put(&entry, "x", 1).expect("put");
                doc.commit();
                let error = check::document(&doc, id, kind).expect_err(&format!("{map}.{bad} refused"));
                assert!(error.path.starts_with(map), "{error}");
            }
        }
    }
}

fn uuid_upper() -> String {
    VisitId::new_random().to_string().to_uppercase()
}

#[test]
fn unknown_fields_from_a_newer_build_are_accepted_and_kept() {
    let (mut doc, id) = household();
    doc.put(ROOT, "future_field", ScalarValue::Counter(3.into())).expect("put");
    let visits = doc.get(ROOT, "visits").expect("get").expect("visits").1;
    let visit = doc.keys(&visits).next().expect("a visit");
    let visit = doc.get(&visits, visit.as_str()).expect("get").expect("visit").1;
    doc.put(&visit, "mood", "好").expect("put");
    doc.commit();
    assert_eq!(check::document(&doc, id, DocumentKind::Household), Ok(()));
}

#[test]
fn docs_schema_md_shows_the_schema_the_code_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/SCHEMA.md");
    let text = std::fs::read_to_string(&path).expect("docs/SCHEMA.md");
    let start = text.find("<!-- schema:start -->").expect("start marker") + "<!-- schema:start -->\n".len();
    let end = text.find("<!-- schema:end -->").expect("end marker");
    let generated = doc::schema::markdown();
    assert!(
        text[start..end].trim() == generated.trim(),
        "docs/SCHEMA.md is out of date; replace the part between the markers with:\n{generated}"
    );
}

/// Every leaf path in `obj`, with the keys of maps of entries replaced by their placeholder.
fn leaf_paths(doc: &AutoCommit, obj: &ObjId, prefix: &str, out: &mut Vec<String>) {
    let entry_maps = [
        ("residents", "<resident id>"),
        ("visits", "<visit id>"),
        ("events", "<event id>"),
        ("same_as", "<mark id>"),
        ("helpers", "<member id>"),
        ("tags", "<tag code>"),
        ("attachments", "<sha-256>"),
    ];
    let placeholder = entry_maps.iter().find(|(m, _)| prefix.ends_with(m)).map(|(_, p)| *p);
    for key in doc.keys(obj).collect::<Vec<_>>() {
        let name = placeholder.unwrap_or(key.as_str());
        let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
        match doc.get(obj, key.as_str()).expect("get") {
            // An entry of a map of entries: its fields are listed, not the entry itself.
            Some((Value::Object(ObjType::Map), child)) if placeholder.is_some() => {
                leaf_paths(doc, &child, &path, out)
            }
            Some((Value::Object(ObjType::Map), child)) => {
                out.push(path.clone());
                leaf_paths(doc, &child, &path, out);
            }
            _ => out.push(path),
        }
    }
}

#[test]
fn the_schema_lists_every_field_the_edit_functions_write() {
    for (kind, (sample, _)) in [(DocumentKind::Household, household()), (DocumentKind::Request, request())] {
        let mut paths = Vec::new();
        leaf_paths(&sample, &ROOT, "", &mut paths);
        for path in paths {
            assert!(
                FIELDS.iter().any(|f| f.kind == kind && f.path == path),
                "{kind:?} field {path} is written but not in the schema"
            );
        }
    }
}

#[test]
fn a_value_outside_a_fields_list_is_refused_never_read_as_a_default() {
    // What readers would otherwise coerce without a word: an unknown visit kind read as routine,
    // an unknown urgency as normal, an unknown event kind shown as "other".
    for (kind, (sample, id)) in [(DocumentKind::Household, household()), (DocumentKind::Request, request())] {
        let listed = FIELDS
            .iter()
            .filter(|f| f.kind == kind && matches!(f.ty, FieldType::OneOf(_) | FieldType::Exactly(_)));
        let mut seen = 0;
        for field in listed {
            let segments: Vec<&str> = field.path.split('.').collect();
            let mut doc = sample.clone();
            let (parent, key) = locate(&doc, &ROOT, &segments).expect("located");
            doc.put(&parent, key.as_str(), "escalated_to_mars").expect("put");
            doc.commit();
            let error =
                check::document(&doc, id, kind).expect_err(&format!("{} with an unknown value", field.path));
            assert!(error.path.ends_with(&key), "{error}");
            seen += 1;
        }
        assert!(seen >= 2, "{kind:?}");
    }
    // A request whose raised event is gone (read as a request with no events).
    let (mut doc, id) = request();
    let events = doc.get(ROOT, "events").expect("get").expect("events").1;
    let raised = doc
        .keys(&events)
        .find(|k| {
            let event = doc.get(&events, k.as_str()).expect("get").expect("event").1;
            doc.get(&event, "kind").expect("get").is_some_and(|(v, _)| v.as_str() == Some("raised"))
        })
        .expect("a raised event");
    doc.delete(&events, raised.as_str()).expect("delete");
    doc.commit();
    let error = check::document(&doc, id, DocumentKind::Request).expect_err("no raised event");
    assert_eq!(error.path, "events");
    // An attachment keyed by something that is not a SHA-256 (read as "no attachment").
    let (mut doc, id) = household();
    let (parent, _) =
        locate(&doc, &ROOT, &["visits", "<visit id>", "attachments", "<sha-256>"]).expect("an attachment");
    let entry = doc.put_object(&parent, "not-a-hash", ObjType::Map).expect("entry");
    doc.put(&entry, "size", 3).expect("put");
    doc.commit();
    assert!(check::document(&doc, id, DocumentKind::Household).is_err());
}
