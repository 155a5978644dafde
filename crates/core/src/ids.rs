//! Typed identifiers. Every entity is named by a UUID wrapped in its own type, so a
//! household id can never be passed where a request id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CoreError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (version 4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = CoreError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| CoreError::InvalidId {
                    what: $what,
                    value: s.chars().take(64).collect(),
                })
            }
        }
    };
}

uuid_id!(
    /// A household (one Automerge document).
    HouseholdId, "household id"
);
uuid_id!(
    /// A resident request (one Automerge document).
    RequestId, "request id"
);
uuid_id!(
    /// A grid (网格): the unit a grid worker is responsible for.
    GridId, "grid id"
);
uuid_id!(
    /// A person known to the county: grid worker, volunteer, staff, supervisor, administrator.
    MemberId, "member id"
);
uuid_id!(
    /// An enrolled device (a phone, or the dashboard acting for a staff account).
    DeviceId, "device id"
);
uuid_id!(
    /// One "same household as" mark or its undoing (see [`crate::model::same_household`]).
    LinkId, "link id"
);
uuid_id!(
    /// A resident inside a household document.
    ResidentId, "resident id"
);
uuid_id!(
    /// One visit in a household's visit log.
    VisitId, "visit id"
);
uuid_id!(
    /// One event in a request's event log.
    EventId, "event id"
);
uuid_id!(
    /// Any synced document: a household or a request. Household and request ids convert into it.
    DocumentId, "document id"
);

impl From<HouseholdId> for DocumentId {
    fn from(id: HouseholdId) -> Self {
        Self(id.0)
    }
}

impl From<RequestId> for DocumentId {
    fn from(id: RequestId) -> Self {
        Self(id.0)
    }
}

impl DocumentId {
    /// Reads this document id as a household id (no check of the document's kind).
    pub const fn as_household(self) -> HouseholdId {
        HouseholdId(self.0)
    }

    /// Reads this document id as a request id (no check of the document's kind).
    pub const fn as_request(self) -> RequestId {
        RequestId(self.0)
    }
}

/// A short, stable code naming something from the county's configuration, such as a request
/// category (`facility_repair`) or a department (`housing_bureau`). Lowercase ASCII letters,
/// digits and underscores, 1–48 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Code(String);

impl Code {
    /// Longest code accepted.
    pub const MAX_LEN: usize = 48;

    /// Checks and wraps a code.
    pub fn new(code: impl Into<String>) -> Result<Self, CoreError> {
        let code = code.into();
        let valid = !code.is_empty()
            && code.len() <= Self::MAX_LEN
            && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            Ok(Self(code))
        } else {
            Err(CoreError::InvalidId { what: "code", value: code.chars().take(64).collect() })
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Code {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Code {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Code> for String {
    fn from(code: Code) -> Self {
        code.0
    }
}

/// A request category's code (see [`crate::model::Taxonomy`]).
pub type CategoryCode = Code;
/// A department's code (see [`crate::model::Taxonomy`]).
pub type DepartmentCode = Code;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = HouseholdId::new_random();
        let parsed: HouseholdId = id.to_string().parse().expect("parses");
        assert_eq!(id, parsed);
    }

    #[test]
    fn bad_id_text_is_a_typed_error() {
        let err = "not-a-uuid".parse::<RequestId>().unwrap_err();
        assert!(matches!(err, CoreError::InvalidId { what: "request id", .. }));
    }

    #[test]
    fn codes_are_checked() {
        assert!(Code::new("facility_repair").is_ok());
        assert!(Code::new("").is_err());
        assert!(Code::new("Facility").is_err());
        assert!(Code::new("a".repeat(49)).is_err());
    }
}
