//! The household document: how a [`Household`] is laid out in Automerge, and every edit a
//! worker can make to it.
//!
//! ```text
//! { schema: 2, type: "household", id, created_at, created_by,
//!   address:   { community, grid, building, unit, room },
//!   notes:     "…",
//!   residents: { <resident id>: { name, sex, birth_year, phone, added_at, removed,
//!                                 tags: { <tag>: true|false } } },
//!   helpers:   { <member id>: true|false },
//!   visits:    { <visit id>: { at, by, kind, notes, needs: ["…"],
//!                               location?, attachments? } },  (see [`crate::doc::attachment`])
//!   same_as:   { <link id>: { a, b, same, at, by, after } } }     (schema 2, see same_household)
//! ```
//! Residents and visits are maps keyed by id, so two devices adding them offline never
//! collide. Scalar fields are plain values: concurrent writes keep both (read with
//! `get_all`) and show as a [`FieldConflict`]. Nothing is ever deleted: a resident who moved
//! out is flagged `removed`. Keys this version does not know are left untouched.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ScalarValue, transaction::Transactable};

use crate::conflict::{FieldConflict, HouseholdField};
use crate::doc::access::{bool_at, distinct_values, i64_at, keys_of, obj_at, str_at, strs_at};
use crate::doc::{SCHEMA_VERSION, attachment, check_type, corrupt};
use crate::error::{CoreError, Result};
use crate::ids::{DocumentId, GridId, HouseholdId, MemberId, ResidentId, VisitId};
use crate::model::attachment::{AttachmentRef, LocationFix};
use crate::model::household::{Address, Household, HouseholdPatch, NewHousehold};
use crate::model::resident::{NewResident, Resident, ResidentPatch, ResidentTag, Sex};
use crate::model::text::{self, LONG_TEXT_MAX, SHORT_TEXT_MAX};
use crate::model::visit::{NewVisit, Visit, VisitKind};
use crate::time::Timestamp;

/// The `type` field of household documents.
pub const TYPE: &str = "household";
/// Most needs one visit may list.
pub const MAX_NEEDS: usize = 20;

/// Writes a new household into an empty document. Returns the new residents' ids, in order.
pub fn create(
    doc: &mut AutoCommit,
    id: HouseholdId,
    new: &NewHousehold,
    resident_ids: &[ResidentId],
    by: MemberId,
    at: Timestamp,
) -> Result<()> {
    let community = text::required("community", &new.address.community, SHORT_TEXT_MAX)?;
    let building = text::optional("building", &new.address.building, SHORT_TEXT_MAX)?;
    let unit = text::optional("unit", &new.address.unit, SHORT_TEXT_MAX)?;
    let room = text::required("room", &new.address.room, SHORT_TEXT_MAX)?;
    let notes = text::optional("notes", &new.notes, LONG_TEXT_MAX)?;
    if resident_ids.len() != new.residents.len() {
        return Err(CoreError::InvalidValue {
            field: "residents",
            reason: "one id per new resident is needed".into(),
        });
    }
    let residents = new.residents.iter().map(CheckedResident::check).collect::<Result<Vec<_>>>()?;

    doc.put(ROOT, "schema", SCHEMA_VERSION as i64)?;
    doc.put(ROOT, "type", TYPE)?;
    doc.put(ROOT, "id", id.to_string())?;
    doc.put(ROOT, "created_at", at.millis())?;
    doc.put(ROOT, "created_by", by.to_string())?;
    let address = doc.put_object(ROOT, "address", ObjType::Map)?;
    doc.put(&address, "community", community)?;
    doc.put(&address, "grid", new.address.grid.to_string())?;
    doc.put(&address, "building", building)?;
    doc.put(&address, "unit", unit)?;
    doc.put(&address, "room", room)?;
    doc.put(ROOT, "notes", notes)?;
    let residents_obj = doc.put_object(ROOT, "residents", ObjType::Map)?;
    doc.put_object(ROOT, "helpers", ObjType::Map)?;
    doc.put_object(ROOT, "visits", ObjType::Map)?;
    doc.put_object(ROOT, crate::doc::same_household::KEY, ObjType::Map)?;
    for (resident, rid) in residents.iter().zip(resident_ids) {
        resident.write(doc, &residents_obj, *rid, at)?;
    }
    Ok(())
}

/// A resident's fields after checking.
struct CheckedResident {
    name: String,
    sex: Sex,
    birth_year: Option<i32>,
    phone: String,
    tags: Vec<ResidentTag>,
}

impl CheckedResident {
    fn check(new: &NewResident) -> Result<Self> {
        Ok(Self {
            name: text::required("name", &new.name, SHORT_TEXT_MAX)?,
            sex: new.sex,
            birth_year: check_birth_year(new.birth_year)?,
            phone: text::phone(&new.phone)?,
            tags: new.tags.clone(),
        })
    }

    fn write(&self, doc: &mut AutoCommit, residents: &ObjId, id: ResidentId, at: Timestamp) -> Result<()> {
        let obj = doc.put_object(residents, id.to_string(), ObjType::Map)?;
        doc.put(&obj, "name", self.name.as_str())?;
        doc.put(&obj, "sex", self.sex.as_str())?;
        put_birth_year(doc, &obj, self.birth_year)?;
        doc.put(&obj, "phone", self.phone.as_str())?;
        doc.put(&obj, "added_at", at.millis())?;
        doc.put(&obj, "removed", false)?;
        let tags = doc.put_object(&obj, "tags", ObjType::Map)?;
        for tag in &self.tags {
            doc.put(&tags, tag.as_str(), true)?;
        }
        Ok(())
    }
}

fn check_birth_year(year: Option<i32>) -> Result<Option<i32>> {
    match year {
        Some(y) if !(1900..=2100).contains(&y) => Err(CoreError::InvalidValue {
            field: "birth_year",
            reason: format!("{y} is not between 1900 and 2100"),
        }),
        other => Ok(other),
    }
}

fn put_birth_year(doc: &mut AutoCommit, obj: &ObjId, year: Option<i32>) -> Result<()> {
    match year {
        Some(y) => doc.put(obj, "birth_year", i64::from(y))?,
        None => doc.put(obj, "birth_year", ScalarValue::Null)?,
    }
    Ok(())
}

fn root_map(doc: &AutoCommit, id: HouseholdId, key: &str) -> Result<ObjId> {
    obj_at(doc, &ROOT, key, ObjType::Map).ok_or_else(|| corrupt(id.into(), format!("no {key} map")))
}

fn resident_obj(doc: &AutoCommit, id: HouseholdId, rid: ResidentId) -> Result<ObjId> {
    let residents = root_map(doc, id, "residents")?;
    obj_at(doc, &residents, &rid.to_string(), ObjType::Map).ok_or(CoreError::UnknownResident(rid))
}

/// Reads only what decides who may hold the household in `doc` (which must hold household
/// `id`): its grid and its helpers, sorted. The server checks every upload with this, so it
/// reads two fields, not every resident and visit as [`read`] does.
pub fn scope_facts(doc: &AutoCommit, id: HouseholdId) -> Result<(GridId, Vec<MemberId>)> {
    let doc_id: DocumentId = id.into();
    check_type(doc, doc_id, TYPE)?;
    let address_obj = root_map(doc, id, "address")?;
    let grid = str_at(doc, &address_obj, "grid")
        .and_then(|g| g.parse::<GridId>().ok())
        .ok_or_else(|| corrupt(doc_id, "address has no grid".into()))?;
    let helpers_obj = root_map(doc, id, "helpers")?;
    let mut helpers: Vec<MemberId> = keys_of(doc, &helpers_obj)
        .into_iter()
        .filter(|k| bool_at(doc, &helpers_obj, k) == Some(true))
        .filter_map(|k| k.parse().ok())
        .collect();
    helpers.sort();
    Ok((grid, helpers))
}

/// Reads the household in `doc`, which must hold household `id`.
pub fn read(doc: &AutoCommit, id: HouseholdId) -> Result<Household> {
    let (grid, helpers) = scope_facts(doc, id)?;
    let address_obj = root_map(doc, id, "address")?;
    let text_of = |key: &str| str_at(doc, &address_obj, key).unwrap_or_default();
    let address = Address {
        community: text_of("community"),
        grid,
        building: text_of("building"),
        unit: text_of("unit"),
        room: text_of("room"),
    };

    let residents_obj = root_map(doc, id, "residents")?;
    let mut residents: Vec<(i64, Resident)> = keys_of(doc, &residents_obj)
        .into_iter()
        .filter_map(|key| {
            let rid = key.parse::<ResidentId>().ok()?;
            let obj = obj_at(doc, &residents_obj, &key, ObjType::Map)?;
            Some((i64_at(doc, &obj, "added_at").unwrap_or(0), read_resident(doc, &obj, rid)))
        })
        .collect();
    residents.sort_by_key(|(added, r)| (*added, r.id));

    let visits_obj = root_map(doc, id, "visits")?;
    let mut visits: Vec<Visit> = keys_of(doc, &visits_obj)
        .into_iter()
        .filter_map(|key| {
            let vid = key.parse::<VisitId>().ok()?;
            let obj = obj_at(doc, &visits_obj, &key, ObjType::Map)?;
            Some(Visit {
                id: vid,
                at: Timestamp(i64_at(doc, &obj, "at").unwrap_or(0)),
                by: str_at(doc, &obj, "by")?.parse().ok()?,
                kind: VisitKind::from_stored(&str_at(doc, &obj, "kind").unwrap_or_default()),
                notes: str_at(doc, &obj, "notes").unwrap_or_default(),
                needs: strs_at(doc, &obj, "needs"),
                location: attachment::location_of(doc, &obj),
                attachments: attachment::refs_of(doc, &obj),
            })
        })
        .collect();
    visits.sort_by_key(|v| std::cmp::Reverse((v.at, v.id)));

    Ok(Household {
        id,
        schema: i64_at(doc, &ROOT, "schema").and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
        address,
        residents: residents.into_iter().map(|(_, r)| r).collect(),
        notes: str_at(doc, &ROOT, "notes").unwrap_or_default(),
        helpers,
        visits,
    })
}

fn read_resident(doc: &AutoCommit, obj: &ObjId, id: ResidentId) -> Resident {
    let mut tags: Vec<ResidentTag> = obj_at(doc, obj, "tags", ObjType::Map)
        .map(|tags_obj| {
            keys_of(doc, &tags_obj)
                .into_iter()
                .filter(|k| bool_at(doc, &tags_obj, k) == Some(true))
                .filter_map(|k| ResidentTag::from_stored(&k))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    Resident {
        id,
        name: str_at(doc, obj, "name").unwrap_or_default(),
        sex: Sex::from_stored(&str_at(doc, obj, "sex").unwrap_or_default()),
        birth_year: i64_at(doc, obj, "birth_year").and_then(|y| i32::try_from(y).ok()),
        phone: str_at(doc, obj, "phone").unwrap_or_default(),
        tags,
        removed: bool_at(doc, obj, "removed").unwrap_or(false),
    }
}

/// Adds a resident.
pub fn add_resident(
    doc: &mut AutoCommit,
    id: HouseholdId,
    rid: ResidentId,
    new: &NewResident,
    at: Timestamp,
) -> Result<()> {
    let checked = CheckedResident::check(new)?;
    let residents = root_map(doc, id, "residents")?;
    checked.write(doc, &residents, rid, at)
}

/// Changes a resident's fields; only the fields set in `patch` are written.
pub fn update_resident(
    doc: &mut AutoCommit,
    id: HouseholdId,
    rid: ResidentId,
    patch: &ResidentPatch,
) -> Result<()> {
    let obj = resident_obj(doc, id, rid)?;
    let name = patch.name.as_deref().map(|n| text::required("name", n, SHORT_TEXT_MAX)).transpose()?;
    let phone = patch.phone.as_deref().map(text::phone).transpose()?;
    let birth_year = patch.birth_year.map(check_birth_year).transpose()?;
    if let Some(name) = name {
        doc.put(&obj, "name", name)?;
    }
    if let Some(sex) = patch.sex {
        doc.put(&obj, "sex", sex.as_str())?;
    }
    if let Some(year) = birth_year {
        put_birth_year(doc, &obj, year)?;
    }
    if let Some(phone) = phone {
        doc.put(&obj, "phone", phone)?;
    }
    if !patch.add_tags.is_empty() || !patch.remove_tags.is_empty() {
        let tags = match obj_at(doc, &obj, "tags", ObjType::Map) {
            Some(tags) => tags,
            None => doc.put_object(&obj, "tags", ObjType::Map)?,
        };
        for tag in &patch.add_tags {
            doc.put(&tags, tag.as_str(), true)?;
        }
        for tag in &patch.remove_tags {
            doc.put(&tags, tag.as_str(), false)?;
        }
    }
    Ok(())
}

/// Marks a resident as moved out; the record stays in the history.
pub fn remove_resident(doc: &mut AutoCommit, id: HouseholdId, rid: ResidentId) -> Result<()> {
    let obj = resident_obj(doc, id, rid)?;
    doc.put(&obj, "removed", true)?;
    Ok(())
}

/// Changes the household's own fields; only the fields set in `patch` are written.
pub fn patch(doc: &mut AutoCommit, id: HouseholdId, patch: &HouseholdPatch) -> Result<()> {
    let address = root_map(doc, id, "address")?;
    let checked = [
        ("community", patch.community.as_deref().map(|v| text::required("community", v, SHORT_TEXT_MAX))),
        ("building", patch.building.as_deref().map(|v| text::optional("building", v, SHORT_TEXT_MAX))),
        ("unit", patch.unit.as_deref().map(|v| text::optional("unit", v, SHORT_TEXT_MAX))),
        ("room", patch.room.as_deref().map(|v| text::required("room", v, SHORT_TEXT_MAX))),
    ];
    let notes = patch.notes.as_deref().map(|v| text::optional("notes", v, LONG_TEXT_MAX)).transpose()?;
    let mut writes = Vec::new();
    for (key, value) in checked {
        if let Some(value) = value.transpose()? {
            writes.push((key, value));
        }
    }
    for (key, value) in writes {
        doc.put(&address, key, value)?;
    }
    if let Some(notes) = notes {
        doc.put(ROOT, "notes", notes)?;
    }
    Ok(())
}

/// Moves the household to another grid (an administrative reassignment).
pub fn set_grid(doc: &mut AutoCommit, id: HouseholdId, grid: GridId) -> Result<()> {
    let address = root_map(doc, id, "address")?;
    doc.put(&address, "grid", grid.to_string())?;
    Ok(())
}

/// Adds (or, with `assigned == false`, removes) a helper assigned to the household.
pub fn set_helper(doc: &mut AutoCommit, id: HouseholdId, helper: MemberId, assigned: bool) -> Result<()> {
    let helpers = root_map(doc, id, "helpers")?;
    doc.put(&helpers, helper.to_string(), assigned)?;
    Ok(())
}

/// Appends a visit to the visit log.
pub fn record_visit(
    doc: &mut AutoCommit,
    id: HouseholdId,
    vid: VisitId,
    new: &NewVisit,
    by: MemberId,
) -> Result<()> {
    let notes = text::optional("notes", &new.notes, LONG_TEXT_MAX)?;
    if new.needs.len() > MAX_NEEDS {
        return Err(CoreError::InvalidValue {
            field: "needs",
            reason: format!("at most {MAX_NEEDS} needs per visit"),
        });
    }
    let needs =
        new.needs.iter().map(|n| text::required("need", n, SHORT_TEXT_MAX)).collect::<Result<Vec<_>>>()?;
    let visits = root_map(doc, id, "visits")?;
    let obj = doc.put_object(&visits, vid.to_string(), ObjType::Map)?;
    doc.put(&obj, "at", new.at.millis())?;
    doc.put(&obj, "by", by.to_string())?;
    doc.put(&obj, "kind", new.kind.as_str())?;
    doc.put(&obj, "notes", notes)?;
    let list = doc.put_object(&obj, "needs", ObjType::List)?;
    for (i, need) in needs.into_iter().enumerate() {
        doc.insert(&list, i, need)?;
    }
    Ok(())
}

/// Writes the location fix of a visit (the app supplies it when the visit is recorded).
pub fn set_visit_location(
    doc: &mut AutoCommit,
    id: HouseholdId,
    vid: VisitId,
    fix: &LocationFix,
) -> Result<()> {
    let visit = visit_obj(doc, id, vid)?;
    attachment::put_location(doc, &visit, fix)
}

/// Attaches a file (by reference) to a visit.
pub fn attach_to_visit(
    doc: &mut AutoCommit,
    id: HouseholdId,
    vid: VisitId,
    attached: &AttachmentRef,
) -> Result<()> {
    let visit = visit_obj(doc, id, vid)?;
    attachment::put_ref(doc, &visit, attached)
}

fn visit_obj(doc: &AutoCommit, id: HouseholdId, vid: VisitId) -> Result<ObjId> {
    let visits = root_map(doc, id, "visits")?;
    obj_at(doc, &visits, &vid.to_string(), ObjType::Map).ok_or_else(|| CoreError::InvalidValue {
        field: "visit",
        reason: format!("household {id} has no visit {vid}"),
    })
}

fn field_location(
    doc: &AutoCommit,
    id: HouseholdId,
    field: &HouseholdField,
) -> Result<(ObjId, &'static str)> {
    Ok(match field {
        HouseholdField::Community => (root_map(doc, id, "address")?, "community"),
        HouseholdField::Grid => (root_map(doc, id, "address")?, "grid"),
        HouseholdField::Building => (root_map(doc, id, "address")?, "building"),
        HouseholdField::Unit => (root_map(doc, id, "address")?, "unit"),
        HouseholdField::Room => (root_map(doc, id, "address")?, "room"),
        HouseholdField::Notes => (ROOT, "notes"),
        HouseholdField::ResidentName(r) => (resident_obj(doc, id, *r)?, "name"),
        HouseholdField::ResidentSex(r) => (resident_obj(doc, id, *r)?, "sex"),
        HouseholdField::ResidentBirthYear(r) => (resident_obj(doc, id, *r)?, "birth_year"),
        HouseholdField::ResidentPhone(r) => (resident_obj(doc, id, *r)?, "phone"),
    })
}

/// Every household field that holds more than one distinct concurrent value.
pub fn conflicts(doc: &AutoCommit, id: HouseholdId) -> Vec<FieldConflict> {
    let mut fields = vec![
        HouseholdField::Community,
        HouseholdField::Grid,
        HouseholdField::Building,
        HouseholdField::Unit,
        HouseholdField::Room,
        HouseholdField::Notes,
    ];
    if let Some(residents) = obj_at(doc, &ROOT, "residents", ObjType::Map) {
        for rid in keys_of(doc, &residents).into_iter().filter_map(|k| k.parse::<ResidentId>().ok()) {
            fields.extend([
                HouseholdField::ResidentName(rid),
                HouseholdField::ResidentSex(rid),
                HouseholdField::ResidentBirthYear(rid),
                HouseholdField::ResidentPhone(rid),
            ]);
        }
    }
    fields
        .into_iter()
        .filter_map(|field| {
            let (obj, key) = field_location(doc, id, &field).ok()?;
            let values = distinct_values(doc, &obj, key);
            (values.len() > 1).then_some(FieldConflict { household: id, field, values })
        })
        .collect()
}

/// Settles a field conflict by writing the chosen value, which supersedes every concurrent
/// one on all replicas once it syncs. The value is checked like any edit of that field.
pub fn resolve_field(
    doc: &mut AutoCommit,
    id: HouseholdId,
    field: &HouseholdField,
    value: &str,
) -> Result<()> {
    let (obj, key) = field_location(doc, id, field)?;
    if distinct_values(doc, &obj, key).len() < 2 {
        return Err(CoreError::NoSuchConflict(field.to_string()));
    }
    match field {
        HouseholdField::Community => {
            doc.put(&obj, key, text::required("community", value, SHORT_TEXT_MAX)?)?;
        }
        HouseholdField::Room => doc.put(&obj, key, text::required("room", value, SHORT_TEXT_MAX)?)?,
        HouseholdField::Grid => {
            let grid: GridId = value.parse()?;
            doc.put(&obj, key, grid.to_string())?;
        }
        HouseholdField::Building | HouseholdField::Unit => {
            doc.put(&obj, key, text::optional(key, value, SHORT_TEXT_MAX)?)?;
        }
        HouseholdField::Notes => doc.put(&obj, key, text::optional("notes", value, LONG_TEXT_MAX)?)?,
        HouseholdField::ResidentName(_) => {
            doc.put(&obj, key, text::required("name", value, SHORT_TEXT_MAX)?)?
        }
        HouseholdField::ResidentSex(_) => doc.put(&obj, key, Sex::from_stored(value).as_str())?,
        HouseholdField::ResidentPhone(_) => doc.put(&obj, key, text::phone(value)?)?,
        HouseholdField::ResidentBirthYear(_) => {
            let year = if value.trim().is_empty() {
                None
            } else {
                Some(value.trim().parse::<i32>().map_err(|_| CoreError::InvalidValue {
                    field: "birth_year",
                    reason: format!("{value:?} is not a year"),
                })?)
            };
            put_birth_year(doc, &obj, check_birth_year(year)?)?;
        }
    }
    Ok(())
}
