//! Time as the domain sees it. The core never reads a clock: callers pass the time in.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as a device or the server reported it. A device clock
/// may be wrong (a phone set to 2019): Doorstep records it for people to read but never uses
/// it to order or drop events (see [`crate::lifecycle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// This time plus a number of hours (saturating).
    pub const fn plus_hours(self, hours: u32) -> Self {
        Self(self.0.saturating_add(hours as i64 * 3_600_000))
    }
}
