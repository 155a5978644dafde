//! Residents of a household and the tags that matter for care work.

use serde::{Deserialize, Serialize};

use crate::ids::ResidentId;

/// A resident's sex as recorded on the household register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// 男
    Male,
    /// 女
    Female,
    /// Not recorded.
    Unknown,
}

impl Sex {
    /// The stable text stored in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Unknown => "unknown",
        }
    }

    /// Reads stored text; anything unknown reads as [`Sex::Unknown`].
    pub fn from_stored(s: &str) -> Self {
        match s {
            "male" => Sex::Male,
            "female" => Sex::Female,
            _ => Sex::Unknown,
        }
    }
}

/// Tags grid workers put on residents; they drive care visits and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResidentTag {
    /// 独居老人: an elderly person living alone.
    ElderlyAlone,
    /// 残疾: disabled.
    Disabled,
    /// 低保: on minimum-living-standard assistance.
    LowIncome,
    /// 留守儿童: a child whose parents work away.
    LeftBehindChild,
    /// 党员: party member.
    PartyMember,
    /// 重病: serious illness.
    SeriousIllness,
    /// 退役军人: veteran.
    Veteran,
}

impl ResidentTag {
    /// Every tag, in display order.
    pub const ALL: [ResidentTag; 7] = [
        ResidentTag::ElderlyAlone,
        ResidentTag::Disabled,
        ResidentTag::LowIncome,
        ResidentTag::LeftBehindChild,
        ResidentTag::PartyMember,
        ResidentTag::SeriousIllness,
        ResidentTag::Veteran,
    ];

    /// The stable text stored in documents and indexes.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResidentTag::ElderlyAlone => "elderly_alone",
            ResidentTag::Disabled => "disabled",
            ResidentTag::LowIncome => "low_income",
            ResidentTag::LeftBehindChild => "left_behind_child",
            ResidentTag::PartyMember => "party_member",
            ResidentTag::SeriousIllness => "serious_illness",
            ResidentTag::Veteran => "veteran",
        }
    }

    /// Reads stored text; `None` for a tag this version does not know (kept in the document).
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The Simplified Chinese label.
    pub const fn label_zh(self) -> &'static str {
        match self {
            ResidentTag::ElderlyAlone => "独居老人",
            ResidentTag::Disabled => "残疾",
            ResidentTag::LowIncome => "低保",
            ResidentTag::LeftBehindChild => "留守儿童",
            ResidentTag::PartyMember => "党员",
            ResidentTag::SeriousIllness => "重病",
            ResidentTag::Veteran => "退役军人",
        }
    }
}

/// A resident as read from a household document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resident {
    /// Stable id inside the household.
    pub id: ResidentId,
    /// Full name.
    pub name: String,
    /// Sex.
    pub sex: Sex,
    /// Year of birth, if known.
    pub birth_year: Option<i32>,
    /// Phone number as typed; empty if none.
    pub phone: String,
    /// Care tags, sorted.
    pub tags: Vec<ResidentTag>,
    /// True once the resident moved out or died; kept for the history.
    pub removed: bool,
}

/// What a worker types to add a resident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewResident {
    /// Full name (required).
    pub name: String,
    /// Sex.
    pub sex: Sex,
    /// Year of birth, if known (1900–2100).
    pub birth_year: Option<i32>,
    /// Phone number, may be empty.
    pub phone: String,
    /// Care tags.
    pub tags: Vec<ResidentTag>,
}

/// A change to a resident; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResidentPatch {
    /// New name.
    pub name: Option<String>,
    /// New sex.
    pub sex: Option<Sex>,
    /// New birth year (`Some(None)` clears it).
    pub birth_year: Option<Option<i32>>,
    /// New phone number.
    pub phone: Option<String>,
    /// Tags to add.
    pub add_tags: Vec<ResidentTag>,
    /// Tags to remove.
    pub remove_tags: Vec<ResidentTag>,
}
