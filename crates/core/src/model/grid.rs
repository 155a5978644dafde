//! Grids (网格): the unit of responsibility and of sync scope.

use serde::{Deserialize, Serialize};

use crate::ids::GridId;

/// A grid of a few hundred households inside a community.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// The grid's id.
    pub id: GridId,
    /// Display name, e.g. `幸福社区第三网格`.
    pub name: String,
    /// The community (社区/村) it belongs to.
    pub community: String,
    /// The street or town (街道/镇) above the community.
    pub street: String,
}
