//! How attachment references and location fixes sit inside documents.
//!
//! ```text
//! visits.<visit id>  / events.<event id>:
//!   attachments: { <sha-256 hex>: { size, media_type, name, added_at } }
//! visits.<visit id>:
//!   location:    { latitude, longitude, accuracy_m, at }
//! ```
//! Attachments are a map keyed by content hash: the same photo attached twice is one entry,
//! and two devices attaching offline never collide. Only the reference is in the document;
//! the bytes travel separately (docs/PROTOCOL.md §10).

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, transaction::Transactable};

use crate::doc::access::{f64_at, i64_at, keys_of, obj_at, str_at};
use crate::error::{CoreError, Result};
use crate::model::attachment::{
    AttachmentOwner, AttachmentRef, ContentHash, LocationFix, MAX_ATTACHMENTS_PER_ITEM,
};
use crate::time::Timestamp;

/// Adds `attachment` to the `attachments` map of `item` (a visit's or an event's object).
pub(crate) fn put_ref(doc: &mut AutoCommit, item: &ObjId, attachment: &AttachmentRef) -> Result<()> {
    let map = match obj_at(doc, item, "attachments", ObjType::Map) {
        Some(map) => map,
        None => doc.put_object(item, "attachments", ObjType::Map)?,
    };
    let key = attachment.hash.to_string();
    if obj_at(doc, &map, &key, ObjType::Map).is_some() {
        return Ok(());
    }
    if keys_of(doc, &map).len() >= MAX_ATTACHMENTS_PER_ITEM {
        return Err(CoreError::InvalidValue {
            field: "attachments",
            reason: format!("at most {MAX_ATTACHMENTS_PER_ITEM} attachments per visit or event"),
        });
    }
    let obj = doc.put_object(&map, key, ObjType::Map)?;
    doc.put(&obj, "size", i64::try_from(attachment.size).unwrap_or(i64::MAX))?;
    doc.put(&obj, "media_type", attachment.media_type.as_str())?;
    doc.put(&obj, "name", attachment.name.as_str())?;
    doc.put(&obj, "added_at", attachment.added_at.millis())?;
    Ok(())
}

/// The attachments of `item`, ordered by when they were added (then by hash).
pub(crate) fn refs_of(doc: &impl ReadDoc, item: &ObjId) -> Vec<AttachmentRef> {
    let Some(map) = obj_at(doc, item, "attachments", ObjType::Map) else { return Vec::new() };
    let mut refs: Vec<AttachmentRef> = keys_of(doc, &map)
        .into_iter()
        .filter_map(|key| {
            let hash = key.parse::<ContentHash>().ok()?;
            let obj = obj_at(doc, &map, &key, ObjType::Map)?;
            Some(AttachmentRef {
                hash,
                size: u64::try_from(i64_at(doc, &obj, "size")?).ok()?,
                media_type: str_at(doc, &obj, "media_type").unwrap_or_default(),
                name: str_at(doc, &obj, "name").unwrap_or_default(),
                added_at: Timestamp(i64_at(doc, &obj, "added_at").unwrap_or(0)),
            })
        })
        .collect();
    refs.sort_by_key(|r| (r.added_at, r.hash));
    refs
}

/// Writes a visit's location fix.
pub(crate) fn put_location(doc: &mut AutoCommit, visit: &ObjId, fix: &LocationFix) -> Result<()> {
    fix.check()?;
    let obj = doc.put_object(visit, "location", ObjType::Map)?;
    doc.put(&obj, "latitude", fix.latitude)?;
    doc.put(&obj, "longitude", fix.longitude)?;
    doc.put(&obj, "accuracy_m", fix.accuracy_m)?;
    doc.put(&obj, "at", fix.at.millis())?;
    Ok(())
}

/// A visit's location fix, if it has a readable one.
pub(crate) fn location_of(doc: &impl ReadDoc, visit: &ObjId) -> Option<LocationFix> {
    let obj = obj_at(doc, visit, "location", ObjType::Map)?;
    let fix = LocationFix {
        latitude: f64_at(doc, &obj, "latitude")?,
        longitude: f64_at(doc, &obj, "longitude")?,
        accuracy_m: f64_at(doc, &obj, "accuracy_m").unwrap_or(0.0),
        at: Timestamp(i64_at(doc, &obj, "at").unwrap_or(0)),
    };
    fix.check().ok().map(|()| fix)
}

/// Every attachment a household or request document references, with what holds it. This is
/// what the server checks an attachment transfer against and what the device's store follows.
pub fn all_refs(doc: &impl ReadDoc) -> Vec<(AttachmentOwner, AttachmentRef)> {
    let mut out = Vec::new();
    for (field, visit) in [("visits", true), ("events", false)] {
        let Some(items) = obj_at(doc, &ROOT, field, ObjType::Map) else { continue };
        for key in keys_of(doc, &items) {
            let owner = if visit {
                key.parse().ok().map(AttachmentOwner::Visit)
            } else {
                key.parse().ok().map(AttachmentOwner::Event)
            };
            let (Some(owner), Some(item)) = (owner, obj_at(doc, &items, &key, ObjType::Map)) else {
                continue;
            };
            out.extend(refs_of(doc, &item).into_iter().map(|r| (owner, r)));
        }
    }
    out
}

/// The reference to `hash` in the document, if any item holds one.
pub fn find_ref(doc: &impl ReadDoc, hash: &ContentHash) -> Option<AttachmentRef> {
    all_refs(doc).into_iter().map(|(_, r)| r).find(|r| r.hash == *hash)
}
