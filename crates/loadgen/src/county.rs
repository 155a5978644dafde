//! The simulated county: grids seeded with the demo's households and requests, one grid worker
//! per device, and an enrolment code for each, written through the server's storage before the
//! server starts.

use anyhow::{Result, anyhow};
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::Taxonomy;
use doorstep_core::time::Timestamp;
use doorstep_server::demo::{self, GridCrew, Seeded};
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;

/// How big a county to build.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Devices (each its own grid worker).
    pub devices: usize,
    /// Devices sharing one grid.
    pub devices_per_grid: usize,
    /// Households in each grid.
    pub households_per_grid: u64,
    /// Requests in each grid.
    pub requests_per_grid: u64,
}

impl Shape {
    /// Grids needed for the devices.
    pub fn grids(&self) -> usize {
        self.devices.div_ceil(self.devices_per_grid.max(1))
    }
}

/// A device to be: who it belongs to and its single-use enrolment code.
pub struct Seat {
    /// Index of its grid in [`County::grids`].
    pub grid: usize,
    /// The grid worker it enrols for.
    pub member: MemberId,
    /// Enrolment code (plain; the server keeps its hash).
    pub code: String,
}

/// What was seeded.
pub struct County {
    /// The grids, in order.
    pub grids: Vec<GridId>,
    /// One seat per device.
    pub seats: Vec<Seat>,
    /// Documents written (households + requests).
    pub documents: usize,
}

/// Seeds the county into empty storage: `shape.grids()` grids across three communities, each
/// with `devices_per_grid` grid workers and one supervisor per community.
pub fn seed(storage: &dyn Storage, shape: &Shape, seed: u64, now: Timestamp) -> Result<County> {
    let mut rng = Seeded(seed | 1);
    let taxonomy = Taxonomy::default_county();
    let communities = [("幸福社区", "城关街道"), ("和平社区", "城关街道"), ("东风村", "东风镇")];
    let mut supervisors = Vec::new();
    for (community, _) in communities {
        supervisors.push(storage.create_member(
            &format!("{community}负责人"),
            Role::Supervisor,
            None,
            now,
        )?);
    }
    let mut county = County { grids: Vec::new(), seats: Vec::new(), documents: 0 };
    for g in 0..shape.grids() {
        let c = g % communities.len();
        let (community, street) = communities[c];
        let grid = storage.create_grid(
            &format!("{community}第{}网格", g / communities.len() + 1),
            community,
            street,
        )?;
        storage.set_member_grid(supervisors[c], grid, true)?;
        let first = county.seats.len();
        let seats = shape.devices_per_grid.max(1).min(shape.devices - first);
        for d in 0..seats {
            let member =
                storage.create_member(&format!("网格员{}-{}", g + 1, d + 1), Role::GridWorker, None, now)?;
            storage.set_member_grid(member, grid, true)?;
            county.seats.push(Seat { grid: g, member, code: code_for(storage, member, now)? });
        }
        let crew =
            GridCrew { grid, community, worker: county.seats[first].member, supervisor: supervisors[c] };
        let (households, requests) = demo::seed_grid(
            storage,
            &mut rng,
            &taxonomy,
            &crew,
            shape.households_per_grid,
            shape.requests_per_grid,
            now,
        )?;
        county.documents += households + requests;
        county.grids.push(grid);
    }
    Ok(county)
}

/// A single-use enrolment code for `member`, valid for a day.
fn code_for(storage: &dyn Storage, member: MemberId, now: Timestamp) -> Result<String> {
    let code = doorstep_server::auth::new_enrolment_code().map_err(|e| anyhow!("randomness: {e}"))?;
    let hash = doorstep_server::auth::hash_secret(&doorstep_server::auth::normalize_code(&code));
    if !storage.create_enrolment_code(member, &hash, now, now.plus_hours(24))? {
        return Err(anyhow!("member {member} vanished while seeding"));
    }
    Ok(code)
}
