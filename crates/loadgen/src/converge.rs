//! The end-of-run check that sync still converges: every device holds exactly the server's
//! heads for every document it holds, devices of one grid hold the same documents, nothing is
//! left unacknowledged, and every visit a device recorded is in the server's household.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use doorstep_core::doc;
use doorstep_core::ids::{DocumentId, HouseholdId, VisitId};
use doorstep_core::store::heads::encode_heads;
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_server::storage::Storage;
use serde::Serialize;

use crate::device::Device;

/// What the check found; converged when every count of problems is zero.
#[derive(Debug, Default, Serialize)]
pub struct Convergence {
    /// Documents checked on devices.
    pub device_documents: usize,
    /// Device documents whose heads differ from the server's (or that the server lacks).
    pub heads_differ: usize,
    /// Devices whose document set differs from their grid's first device.
    pub scope_differs: usize,
    /// Devices with changes the server has not acknowledged.
    pub unsynced_devices: usize,
    /// Visits recorded on devices.
    pub visits: usize,
    /// Visits missing from the server's household documents.
    pub visits_missing: usize,
}

impl Convergence {
    /// No problem found.
    pub fn converged(&self) -> bool {
        self.heads_differ == 0
            && self.scope_differs == 0
            && self.unsynced_devices == 0
            && self.visits_missing == 0
    }
}

/// Checks every device against the server's storage.
pub fn check(storage: &dyn Storage, devices: &[Device]) -> Result<Convergence> {
    let server: HashMap<DocumentId, Vec<u8>> = storage.document_heads()?.into_iter().collect();
    let mut found = Convergence::default();
    let mut first_of_grid: BTreeMap<usize, Vec<DocumentId>> = BTreeMap::new();
    for device in devices {
        let options = ReplicaOptions { durability: Durability::Normal, ..ReplicaOptions::default() };
        let replica = Replica::open_with(&device.path, options)?;
        let mut held = Vec::new();
        for (id, _, heads) in replica.all_heads()? {
            found.device_documents += 1;
            if server.get(&id) != Some(&encode_heads(&heads)) {
                found.heads_differ += 1;
            }
            held.push(id);
        }
        held.sort();
        match first_of_grid.get(&device.grid) {
            Some(first) if *first != held => found.scope_differs += 1,
            Some(_) => {}
            None => {
                first_of_grid.insert(device.grid, held);
            }
        }
        if replica.unsynced_change_count()? > 0 {
            found.unsynced_devices += 1;
        }
    }
    let mut by_household: HashMap<HouseholdId, Vec<VisitId>> = HashMap::new();
    for (household, visit) in devices.iter().flat_map(|d| &d.visits) {
        by_household.entry(*household).or_default().push(*visit);
    }
    for (household, visits) in by_household {
        found.visits += visits.len();
        let on_server: HashSet<VisitId> = match storage.document(household.into())? {
            Some(d) => doc::household::read(&d, household)?.visits.iter().map(|v| v.id).collect(),
            None => HashSet::new(),
        };
        found.visits_missing += visits.iter().filter(|v| !on_server.contains(v)).count();
    }
    Ok(found)
}
