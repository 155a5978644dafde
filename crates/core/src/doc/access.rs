//! Small typed readers over Automerge maps. Missing or mistyped values read as `None`, so a
//! document written by another app version never makes a reader fail on a field it can skip.
//!
//! Each reader takes every representation another Automerge client may choose for its kind of
//! value and reads it faithfully: a string is a scalar string or a Text object (what Automerge
//! JS writes by default), an integer is a signed or unsigned integer or, for times, an Automerge
//! timestamp (what a JS `Date` becomes). The field rules ([`crate::doc::check`]) accept exactly
//! the same representations, so what the server acknowledges is what these read.

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};

/// A value as a string, if it is one: a scalar string, or the content of a Text object.
pub(crate) fn as_string(doc: &impl ReadDoc, value: &Value<'_>, id: &ObjId) -> Option<String> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        Value::Object(ObjType::Text) => doc.text(id).ok(),
        Value::Object(_) => None,
    }
}

/// A value as an integer, if it is one: signed, unsigned, or an Automerge timestamp
/// (milliseconds since 1970, as Doorstep stores times).
pub(crate) fn as_i64(value: &Value<'_>) -> Option<i64> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

/// The string at `key`, if it is one (see [`as_string`]).
pub(crate) fn str_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<String> {
    let (value, id) = doc.get(obj, key).ok()??;
    as_string(doc, &value, &id)
}

/// The integer at `key`, if it is one (see [`as_i64`]).
pub(crate) fn i64_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<i64> {
    let (value, _) = doc.get(obj, key).ok()??;
    as_i64(&value)
}

/// The boolean at `key`, if it is one.
pub(crate) fn bool_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

/// The object at `key`, if it is an object of type `kind`.
pub(crate) fn obj_at(doc: &impl ReadDoc, obj: &ObjId, key: &str, kind: ObjType) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(t), id) if t == kind => Some(id),
        _ => None,
    }
}

/// The strings of the list at `key` (non-strings skipped).
pub(crate) fn strs_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Vec<String> {
    let Some(list) = obj_at(doc, obj, key, ObjType::List) else {
        return Vec::new();
    };
    doc.list_range(&list, ..)
        .filter_map(|item| {
            let id = item.id();
            as_string(doc, &Value::from(item.value), &id)
        })
        .collect()
}

/// The keys of the map at `key`.
pub(crate) fn keys_of(doc: &impl ReadDoc, obj: &ObjId) -> Vec<String> {
    doc.keys(obj).collect()
}

/// Every distinct value concurrently held at `key`, as display text, sorted. One entry means
/// no conflict.
pub(crate) fn distinct_values(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Vec<String> {
    let mut values: Vec<String> = doc
        .get_all(obj, key)
        .unwrap_or_default()
        .into_iter()
        .map(|(v, id)| match v {
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => s.to_string(),
                ScalarValue::Int(i) => i.to_string(),
                ScalarValue::Null => String::new(),
                other => other.to_string(),
            },
            Value::Object(ObjType::Text) => doc.text(&id).unwrap_or_default(),
            Value::Object(_) => "<object>".to_owned(),
        })
        .collect();
    values.sort();
    values.dedup();
    values
}

/// The number at `key` as a float (integers widen), if it is one.
pub(crate) fn f64_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<f64> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::F64(f) => Some(*f),
            ScalarValue::Int(i) => Some(*i as f64),
            ScalarValue::Uint(u) => Some(*u as f64),
            _ => None,
        },
        _ => None,
    }
}
