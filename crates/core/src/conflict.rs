//! Conflicts: places where concurrent offline work left two answers, kept side by side until
//! a person chooses. Doorstep never settles these by last-writer-wins.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{HouseholdId, RequestId, ResidentId};
use crate::model::request::RequestEvent;

/// A household field that can hold concurrent values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "field", content = "resident")]
pub enum HouseholdField {
    /// Address: community name.
    Community,
    /// Address: grid.
    Grid,
    /// Address: building.
    Building,
    /// Address: unit.
    Unit,
    /// Address: room.
    Room,
    /// Household notes.
    Notes,
    /// A resident's name.
    ResidentName(ResidentId),
    /// A resident's sex.
    ResidentSex(ResidentId),
    /// A resident's birth year.
    ResidentBirthYear(ResidentId),
    /// A resident's phone number.
    ResidentPhone(ResidentId),
}

impl fmt::Display for HouseholdField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HouseholdField::Community => f.write_str("address.community"),
            HouseholdField::Grid => f.write_str("address.grid"),
            HouseholdField::Building => f.write_str("address.building"),
            HouseholdField::Unit => f.write_str("address.unit"),
            HouseholdField::Room => f.write_str("address.room"),
            HouseholdField::Notes => f.write_str("notes"),
            HouseholdField::ResidentName(r) => write!(f, "residents.{r}.name"),
            HouseholdField::ResidentSex(r) => write!(f, "residents.{r}.sex"),
            HouseholdField::ResidentBirthYear(r) => write!(f, "residents.{r}.birth_year"),
            HouseholdField::ResidentPhone(r) => write!(f, "residents.{r}.phone"),
        }
    }
}

/// Two or more values typed concurrently into one household field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldConflict {
    /// The household.
    pub household: HouseholdId,
    /// The field.
    pub field: HouseholdField,
    /// The distinct values, sorted (an empty string is "cleared").
    pub values: Vec<String>,
}

/// Concurrent decisive events on one request, waiting for a supervisor's review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestConflict {
    /// The request.
    pub request: RequestId,
    /// The concurrent events, sorted by id.
    pub events: Vec<RequestEvent>,
}

/// Any conflict a supervisor may need to review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Conflict {
    /// Concurrent values in a household field.
    Field(FieldConflict),
    /// Concurrent transitions of a request.
    Request(RequestConflict),
}
