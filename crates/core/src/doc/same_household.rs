//! "Same household as" marks inside household documents (schema 2):
//!
//! ```text
//! { …, same_as: { <link id>: { a: "<household id>", b: "<household id>", same: true|false,
//!                              at, by, after: ["<link id>", …] } } }
//! ```
//! A mark is written into both documents of its pair, so a replica holding either one knows
//! it. The map is keyed by mark id: concurrent marks never collide. A document written before
//! schema 2 has no `same_as` map; the first mark creates it, and should two devices create it
//! concurrently, readers take the marks of every concurrent map, so none is lost.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, Value, transaction::Transactable};

use crate::doc::access::{bool_at, i64_at, keys_of, obj_at, str_at, strs_at};
use crate::doc::{SCHEMA_VERSION, check_type, household};
use crate::error::{CoreError, Result};
use crate::ids::{HouseholdId, LinkId};
use crate::model::same_household::SameAsMark;
use crate::time::Timestamp;

/// The root key of the marks map.
pub const KEY: &str = "same_as";

/// Writes `mark` into household `id`'s document, which must be one of the pair. Raises the
/// document's schema mark to this build's version (never lowers it).
pub fn write_mark(doc: &mut AutoCommit, id: HouseholdId, mark: &SameAsMark) -> Result<()> {
    check_type(doc, id.into(), household::TYPE)?;
    if mark.pair.0 != id && mark.pair.1 != id {
        return Err(CoreError::InvalidValue {
            field: "same_as",
            reason: "a mark is written only into the two households it names".into(),
        });
    }
    if mark.pair.0 == mark.pair.1 {
        return Err(CoreError::InvalidValue {
            field: "same_as",
            reason: "a household cannot be marked as the same as itself".into(),
        });
    }
    let marks = match obj_at(doc, &ROOT, KEY, ObjType::Map) {
        Some(marks) => marks,
        None => doc.put_object(ROOT, KEY, ObjType::Map)?,
    };
    let obj = doc.put_object(&marks, mark.id.to_string(), ObjType::Map)?;
    doc.put(&obj, "a", mark.pair.0.to_string())?;
    doc.put(&obj, "b", mark.pair.1.to_string())?;
    doc.put(&obj, "same", mark.same)?;
    doc.put(&obj, "at", mark.at.millis())?;
    doc.put(&obj, "by", mark.by.to_string())?;
    let after = doc.put_object(&obj, "after", ObjType::List)?;
    for (i, seen) in mark.after.iter().enumerate() {
        doc.insert(&after, i, seen.to_string())?;
    }
    raise_schema(doc)
}

/// Sets the document's `schema` to this build's version when it is older.
fn raise_schema(doc: &mut AutoCommit) -> Result<()> {
    let stored = i64_at(doc, &ROOT, "schema").unwrap_or(0);
    if stored < i64::from(SCHEMA_VERSION) {
        doc.put(ROOT, "schema", i64::from(SCHEMA_VERSION))?;
    }
    Ok(())
}

/// Every mark in the document (from every concurrent `same_as` map), by id.
pub fn marks(doc: &AutoCommit) -> Vec<SameAsMark> {
    let maps: Vec<ObjId> = doc
        .get_all(ROOT, KEY)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(value, obj)| matches!(value, Value::Object(ObjType::Map)).then_some(obj))
        .collect();
    let mut out: Vec<SameAsMark> = Vec::new();
    for map in maps {
        for key in keys_of(doc, &map) {
            let Some(mark) = read_mark(doc, &map, &key) else { continue };
            if !out.iter().any(|m| m.id == mark.id) {
                out.push(mark);
            }
        }
    }
    out.sort_by_key(|m| m.id);
    out
}

fn read_mark(doc: &AutoCommit, map: &ObjId, key: &str) -> Option<SameAsMark> {
    let id: LinkId = key.parse().ok()?;
    let obj = obj_at(doc, map, key, ObjType::Map)?;
    let a: HouseholdId = str_at(doc, &obj, "a")?.parse().ok()?;
    let b: HouseholdId = str_at(doc, &obj, "b")?.parse().ok()?;
    Some(SameAsMark::new(
        id,
        a,
        b,
        bool_at(doc, &obj, "same")?,
        str_at(doc, &obj, "by")?.parse().ok()?,
        Timestamp(i64_at(doc, &obj, "at").unwrap_or(0)),
        strs_at(doc, &obj, "after").iter().filter_map(|s| s.parse().ok()).collect(),
    ))
}
