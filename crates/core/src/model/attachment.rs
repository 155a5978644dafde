//! Attachments (photos, scanned forms) and location fixes: what a visit or a request event
//! carries besides text. A document holds only an [`AttachmentRef`] (content hash, size, media
//! type, name); the bytes live beside the documents, in the device store and on the server,
//! deduplicated by hash, and travel after the records (docs/PROTOCOL.md §10).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CoreError, Result};
use crate::ids::{EventId, VisitId};
use crate::time::Timestamp;

/// Largest attachment a device may attach (and the server's default limit): 10 MiB.
pub const MAX_ATTACHMENT_BYTES: u64 = 10 * 1024 * 1024;
/// Most attachments one visit or event may carry.
pub const MAX_ATTACHMENTS_PER_ITEM: usize = 20;
/// Longest media type or file name kept, in characters.
pub const MAX_ATTACHMENT_LABEL: usize = 120;

/// The SHA-256 of an attachment's bytes: its identity everywhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl FromStr for ContentHash {
    type Err = CoreError;

    /// Reads 64 lower- or upper-case hex digits.
    fn from_str(s: &str) -> Result<Self> {
        let invalid = || CoreError::InvalidId { what: "content hash", value: s.chars().take(80).collect() };
        if s.len() != 64 || !s.is_ascii() {
            return Err(invalid());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| invalid())?;
        }
        Ok(Self(out))
    }
}

/// An attachment as a document references it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// SHA-256 of the bytes.
    pub hash: ContentHash,
    /// Size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
    /// File name as the app gave it (may be empty).
    pub name: String,
    /// When it was attached, by the attaching device's clock.
    pub added_at: Timestamp,
}

/// A file the app attaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAttachment {
    /// Media type, e.g. `image/jpeg`.
    pub media_type: String,
    /// File name (may be empty).
    pub name: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl NewAttachment {
    /// Checks the limits and makes the reference the document will hold.
    pub fn check(&self, at: Timestamp) -> Result<AttachmentRef> {
        let size = self.bytes.len() as u64;
        if size == 0 {
            return Err(CoreError::InvalidValue { field: "attachment", reason: "the file is empty".into() });
        }
        if size > MAX_ATTACHMENT_BYTES {
            return Err(CoreError::AttachmentTooLarge { size, max: MAX_ATTACHMENT_BYTES });
        }
        let media_type = self.media_type.trim();
        if media_type.is_empty()
            || media_type.chars().count() > MAX_ATTACHMENT_LABEL
            || !media_type.contains('/')
            || media_type.chars().any(char::is_whitespace)
        {
            return Err(CoreError::InvalidValue {
                field: "media_type",
                reason: format!("{media_type:?} is not a media type such as image/jpeg"),
            });
        }
        let name: String = self.name.trim().chars().take(MAX_ATTACHMENT_LABEL).collect();
        Ok(AttachmentRef {
            hash: ContentHash::of(&self.bytes),
            size,
            media_type: media_type.to_ascii_lowercase(),
            name,
            added_at: at,
        })
    }
}

/// What in a document an attachment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AttachmentOwner {
    /// A visit in a household document.
    Visit(VisitId),
    /// An event in a request document.
    Event(EventId),
}

/// Where an attachment's bytes are, as the device sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentState {
    /// Attached on this device; the server has none of it yet.
    LocalOnly,
    /// Attached on this device; part of it has reached the server.
    Uploading,
    /// Here whole, and on the server.
    Synced,
    /// Known from a document; the bytes are not (or not wholly) here yet: "photo pending".
    RemoteOnly,
}

/// Where a visit took place, as the phone's location service reported it. Two fixes are equal
/// when their numbers are bit for bit the same (so the type can be `Eq` like the records that
/// hold it).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct LocationFix {
    /// Latitude in degrees (WGS-84 as the phone reports it), −90…90.
    pub latitude: f64,
    /// Longitude in degrees, −180…180.
    pub longitude: f64,
    /// Radius of 68 % confidence in metres, ≥ 0.
    pub accuracy_m: f64,
    /// When the fix was taken, by the device's clock.
    pub at: Timestamp,
}

impl PartialEq for LocationFix {
    fn eq(&self, other: &Self) -> bool {
        self.latitude.to_bits() == other.latitude.to_bits()
            && self.longitude.to_bits() == other.longitude.to_bits()
            && self.accuracy_m.to_bits() == other.accuracy_m.to_bits()
            && self.at == other.at
    }
}

impl Eq for LocationFix {}

impl LocationFix {
    /// Checks the ranges.
    pub fn check(&self) -> Result<()> {
        let bad = |reason: &str| Err(CoreError::InvalidValue { field: "location", reason: reason.into() });
        if !self.latitude.is_finite() || !(-90.0..=90.0).contains(&self.latitude) {
            return bad("latitude must be between -90 and 90");
        }
        if !self.longitude.is_finite() || !(-180.0..=180.0).contains(&self.longitude) {
            return bad("longitude must be between -180 and 180");
        }
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return bad("accuracy must be a non-negative number of metres");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_through_hex() {
        let h = ContentHash::of(b"streetlight");
        assert_eq!(h.to_string().parse::<ContentHash>().unwrap(), h);
        assert!("zz".parse::<ContentHash>().is_err());
        assert!("é".repeat(32).parse::<ContentHash>().is_err());
    }

    #[test]
    fn limits_are_checked() {
        let new = NewAttachment { media_type: "image/jpeg".into(), name: "a.jpg".into(), bytes: vec![] };
        assert!(new.check(Timestamp(0)).is_err());
        let big = NewAttachment { bytes: vec![0; MAX_ATTACHMENT_BYTES as usize + 1], ..new.clone() };
        assert!(matches!(big.check(Timestamp(0)), Err(CoreError::AttachmentTooLarge { .. })));
        let odd = NewAttachment { media_type: "jpeg".into(), bytes: vec![1], ..new };
        assert!(odd.check(Timestamp(0)).is_err());
    }

    #[test]
    fn location_ranges() {
        let fix = LocationFix { latitude: 30.5, longitude: 114.3, accuracy_m: 8.0, at: Timestamp(1) };
        assert!(fix.check().is_ok());
        assert!(LocationFix { latitude: 91.0, ..fix }.check().is_err());
        assert!(LocationFix { accuracy_m: f64::NAN, ..fix }.check().is_err());
    }
}
