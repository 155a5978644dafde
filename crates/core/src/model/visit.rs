//! Visits (入户走访): the people's-conditions diary, append-only inside a household document.

use serde::{Deserialize, Serialize};

use crate::ids::{MemberId, VisitId};
use crate::model::attachment::{AttachmentRef, LocationFix};
use crate::time::Timestamp;

/// Why a visit was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitKind {
    /// 日常走访: the regular round.
    Routine,
    /// 回访: follow-up on an earlier visit or a request.
    FollowUp,
    /// 关爱走访: a care visit (elderly alone, disabled…).
    Care,
    /// 安全检查: a safety check (gas, fire, electrics).
    SafetyCheck,
}

impl VisitKind {
    /// Every kind.
    pub const ALL: [VisitKind; 4] =
        [VisitKind::Routine, VisitKind::FollowUp, VisitKind::Care, VisitKind::SafetyCheck];

    /// The stable text stored in documents.
    pub const fn as_str(self) -> &'static str {
        match self {
            VisitKind::Routine => "routine",
            VisitKind::FollowUp => "follow_up",
            VisitKind::Care => "care",
            VisitKind::SafetyCheck => "safety_check",
        }
    }

    /// Reads stored text; a kind from a newer app reads as [`VisitKind::Routine`].
    pub fn from_stored(s: &str) -> Self {
        Self::ALL.into_iter().find(|k| k.as_str() == s).unwrap_or(VisitKind::Routine)
    }
}

/// One visit as read from a household document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// The visit's id.
    pub id: VisitId,
    /// When it happened, by the visiting device's clock.
    pub at: Timestamp,
    /// Who visited.
    pub by: MemberId,
    /// Why.
    pub kind: VisitKind,
    /// What was seen.
    pub notes: String,
    /// Needs noticed during the visit (short phrases).
    pub needs: Vec<String>,
    /// Where it took place, if the app supplied a fix.
    #[serde(default)]
    pub location: Option<LocationFix>,
    /// Photos and files attached to it (references; the bytes are in the store).
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
}

/// What a worker records for a visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVisit {
    /// When it happened, by this device's clock.
    pub at: Timestamp,
    /// Why.
    pub kind: VisitKind,
    /// What was seen (may be empty).
    pub notes: String,
    /// Needs noticed (each a short phrase).
    pub needs: Vec<String>,
}
