//! The device's replica as one object: open it encrypted, then the app's screens and edits.
//! Every method is safe to call from any thread; calls are serialised on the replica.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use doorstep_core::ids::{GridId, HouseholdId, RequestId, ResidentId};
use doorstep_core::model::{NewEvent, ResidentTag};
use doorstep_core::store::{self, ReplicaOptions};
use doorstep_core::time::Timestamp;

use crate::error::DoorstepError;
use crate::types::{
    Category, Conflict, ConflictField, Household, HouseholdPatch, HouseholdSummary, NewHousehold, NewRequest,
    NewResident, NewVisit, Request, RequestAction, RequestFilter, RequestSummary, ResidentPatch,
    TimelineEntry, parse,
};

/// The device's local replica: households and requests of its scope, in an encrypted file.
#[derive(uniffi::Object)]
pub struct Replica {
    pub(crate) inner: tokio::sync::Mutex<store::Replica>,
    pub(crate) cancel: AtomicBool,
    /// Raised by every `cancel_sync()`, so a waiting `listen()` wakes at once.
    pub(crate) cancellations: tokio::sync::watch::Sender<u64>,
}

/// A document set aside because its stored data cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DamagedDocument {
    /// The household's or request's id.
    pub document: String,
    /// Why (English, for logs and support).
    pub reason: String,
}

/// What `check_integrity()` found.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct IntegrityReport {
    /// Nothing wrong was found.
    pub ok: bool,
    /// Problems with the file itself (English, for logs and support).
    pub problems: Vec<String>,
    /// Documents that cannot be read.
    pub damaged_documents: Vec<DamagedDocument>,
}

/// Now, by the device clock (the bindings may read it; the core never does).
pub(crate) fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(millis)
}

fn at(ms: Option<i64>) -> Timestamp {
    ms.map(Timestamp).unwrap_or_else(now)
}

impl Replica {
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut store::Replica) -> Result<T, doorstep_core::CoreError>,
    ) -> Result<T, DoorstepError> {
        let mut replica = self.inner.blocking_lock();
        f(&mut replica).map_err(DoorstepError::from)
    }
}

#[uniffi::export]
impl Replica {
    /// Opens (or creates) the replica file at `path`, encrypted with `key` (keep the key in
    /// Android Keystore / iOS Keychain). A wrong key fails with kind `WrongKey` and changes
    /// nothing.
    #[uniffi::constructor]
    pub fn open(path: String, key: Vec<u8>) -> Result<Arc<Self>, DoorstepError> {
        let replica = store::Replica::open_encrypted(&path, &key, ReplicaOptions::default())?;
        Ok(Arc::new(Self {
            inner: tokio::sync::Mutex::new(replica),
            cancel: AtomicBool::new(false),
            cancellations: tokio::sync::watch::channel(0).0,
        }))
    }

    /// [`Replica::open`] with a choice of durability: `survive_power_loss = false` commits
    /// without waiting for the disk (faster; an app crash loses nothing, a sudden power loss
    /// may lose the last few edits). `open` always waits.
    #[uniffi::constructor]
    pub fn open_with_durability(
        path: String,
        key: Vec<u8>,
        survive_power_loss: bool,
    ) -> Result<Arc<Self>, DoorstepError> {
        let durability = if survive_power_loss { store::Durability::Full } else { store::Durability::Normal };
        let options = ReplicaOptions { durability, ..ReplicaOptions::default() };
        let replica = store::Replica::open_encrypted(&path, &key, options)?;
        Ok(Arc::new(Self {
            inner: tokio::sync::Mutex::new(replica),
            cancel: AtomicBool::new(false),
            cancellations: tokio::sync::watch::channel(0).0,
        }))
    }

    /// Re-encrypts the file under a new key.
    pub fn rotate_key(&self, new_key: Vec<u8>) -> Result<(), DoorstepError> {
        self.with(|r| r.rekey(&new_key))
    }

    /// The member signed in on this device: `None` before enrolment, and again once a sync
    /// has found the device revoked (its data is then deleted) or after `wipe()`.
    pub fn member_id(&self) -> Option<String> {
        self.inner.blocking_lock().member().map(|m| m.to_string())
    }

    /// This device's id on the server (`None` when not enrolled).
    pub fn device_id(&self) -> Option<String> {
        self.inner.blocking_lock().device().ok().flatten().map(|d| d.to_string())
    }

    /// The server this device is enrolled with (`None` when not enrolled).
    pub fn server_url(&self) -> Option<String> {
        self.inner.blocking_lock().server().ok().flatten()
    }

    /// Signs out: deletes the replica file and the files beside it. Refused with kind
    /// `UnsyncedWork` while local changes have not reached the server, unless `force` (they
    /// are then lost). Afterwards this object is empty and not enrolled; drop it, and open the
    /// path again to enrol anew.
    pub fn wipe(&self, force: bool) -> Result<(), DoorstepError> {
        self.with(|r| r.wipe(force))
    }

    /// Checks the whole file: every page decrypts, the database's structure adds up, and every
    /// document loads. Reads everything, so run it on demand and off the main thread (a
    /// "check storage" action, or after kind `DamagedFile`).
    pub fn check_integrity(&self) -> Result<IntegrityReport, DoorstepError> {
        self.with(|r| {
            let report = r.check_integrity()?;
            Ok(IntegrityReport {
                ok: report.ok,
                problems: report.problems,
                damaged_documents: report
                    .damaged_documents
                    .into_iter()
                    .map(|(id, reason)| DamagedDocument { document: id.to_string(), reason })
                    .collect(),
            })
        })
    }

    /// Documents set aside as damaged: `sync()` goes on without them and asks the server for
    /// its copy, which rebuilds them (keeping the unsynced changes that can still be read).
    pub fn damaged_documents(&self) -> Result<Vec<DamagedDocument>, DoorstepError> {
        self.with(|r| {
            Ok(r.quarantined()?
                .into_iter()
                .map(|q| DamagedDocument { document: q.id.to_string(), reason: q.reason })
                .collect())
        })
    }

    /// The grids this device holds households of.
    pub fn grids(&self) -> Result<Vec<String>, DoorstepError> {
        self.with(|r| Ok(r.grids()?.iter().map(ToString::to_string).collect()))
    }

    /// A grid's households with last visit and open requests, the longest unvisited first.
    pub fn households_in_grid(&self, grid: String) -> Result<Vec<HouseholdSummary>, DoorstepError> {
        let grid: GridId = parse(&grid)?;
        self.with(|r| Ok(r.households_in_grid(grid)?.into_iter().map(Into::into).collect()))
    }

    /// Households with a resident carrying a tag (elderly alone, disabled…).
    pub fn households_with_tag(&self, tag: ResidentTag) -> Result<Vec<HouseholdSummary>, DoorstepError> {
        self.with(|r| Ok(r.households_with_tag(tag)?.into_iter().map(Into::into).collect()))
    }

    /// A household's details and visit log.
    pub fn household(&self, id: String) -> Result<Household, DoorstepError> {
        let id: HouseholdId = parse(&id)?;
        self.with(|r| Ok(r.household(id)?.into()))
    }

    /// A household's visits and requests, newest first.
    pub fn household_timeline(&self, id: String) -> Result<Vec<TimelineEntry>, DoorstepError> {
        let id: HouseholdId = parse(&id)?;
        self.with(|r| Ok(r.household_timeline(id)?.into_iter().map(Into::into).collect()))
    }

    /// Registers a household; returns its id.
    pub fn create_household(&self, household: NewHousehold) -> Result<String, DoorstepError> {
        let new = doorstep_core::model::NewHousehold {
            address: household.address.to_core()?,
            residents: household.residents.into_iter().map(Into::into).collect(),
            notes: household.notes,
        };
        self.with(|r| Ok(r.create_household(&new, now())?.to_string()))
    }

    /// Changes a household's address fields or notes.
    pub fn update_household(&self, id: String, patch: HouseholdPatch) -> Result<(), DoorstepError> {
        let id: HouseholdId = parse(&id)?;
        self.with(|r| r.update_household(id, &patch.into()))
    }

    /// Adds a resident; returns the resident's id.
    pub fn add_resident(&self, household: String, resident: NewResident) -> Result<String, DoorstepError> {
        let id: HouseholdId = parse(&household)?;
        self.with(|r| Ok(r.add_resident(id, &resident.into(), now())?.to_string()))
    }

    /// Changes a resident.
    pub fn update_resident(
        &self,
        household: String,
        resident: String,
        patch: ResidentPatch,
    ) -> Result<(), DoorstepError> {
        let (id, rid): (HouseholdId, ResidentId) = (parse(&household)?, parse(&resident)?);
        self.with(|r| r.update_resident(id, rid, &patch.into()))
    }

    /// Marks a resident as moved out (kept in the history).
    pub fn remove_resident(&self, household: String, resident: String) -> Result<(), DoorstepError> {
        let (id, rid): (HouseholdId, ResidentId) = (parse(&household)?, parse(&resident)?);
        self.with(|r| r.remove_resident(id, rid))
    }

    /// Records a visit; returns its id. Stored at once, synced later.
    pub fn record_visit(&self, household: String, visit: NewVisit) -> Result<String, DoorstepError> {
        let id: HouseholdId = parse(&household)?;
        let visit = visit.into_core(now());
        self.with(|r| Ok(r.record_visit(id, &visit)?.to_string()))
    }

    /// Raises a request; returns its id.
    pub fn raise_request(&self, request: NewRequest) -> Result<String, DoorstepError> {
        let new = doorstep_core::model::NewRequest {
            household: request.household.as_deref().map(parse).transpose()?,
            grid: request.grid.as_deref().map(parse).transpose()?,
            category: request.category,
            description: request.description,
            urgency: request.urgency,
            at: at(request.at_ms),
        };
        self.with(|r| Ok(r.raise_request(&new)?.to_string()))
    }

    /// Acts on a request (accept, resolve on the spot, dispatch, claim, progress, resolve,
    /// follow up, close…); refused with kind `InvalidTransition` when the status does not allow
    /// it. Returns the event's id.
    pub fn act_on_request(
        &self,
        request: String,
        action: RequestAction,
        note: String,
    ) -> Result<String, DoorstepError> {
        let id: RequestId = parse(&request)?;
        let event = NewEvent { action: action.to_core()?, note, at: now() };
        self.with(|r| Ok(r.add_request_event(id, &event)?.to_string()))
    }

    /// A request with its derived status and log.
    pub fn request(&self, id: String) -> Result<Request, DoorstepError> {
        let id: RequestId = parse(&id)?;
        self.with(|r| Ok(r.request(id)?.into()))
    }

    /// Requests by status, overdue, assigned to me…
    pub fn list_requests(&self, filter: RequestFilter) -> Result<Vec<RequestSummary>, DoorstepError> {
        let replica = self.inner.blocking_lock();
        let assignee = if filter.assigned_to_me {
            Some(replica.member().ok_or_else(|| DoorstepError::from(doorstep_core::CoreError::NoMember))?)
        } else {
            None
        };
        let core_filter = store::RequestFilter {
            statuses: filter.statuses,
            open_only: filter.open_only,
            category: filter.category.as_deref().map(parse).transpose()?,
            assignee,
            grid: filter.grid.as_deref().map(parse).transpose()?,
            household: filter.household.as_deref().map(parse).transpose()?,
            overdue_at: filter.overdue.then(now),
        };
        Ok(replica.list_requests(&core_filter)?.into_iter().map(Into::into).collect())
    }

    /// Every conflict waiting for a person.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, DoorstepError> {
        self.with(|r| Ok(r.conflicts()?.into_iter().map(Into::into).collect()))
    }

    /// Settles a household field conflict with the chosen (or a newly typed) value.
    pub fn resolve_field_conflict(
        &self,
        household: String,
        field: ConflictField,
        value: String,
    ) -> Result<(), DoorstepError> {
        let id: HouseholdId = parse(&household)?;
        let field = field.to_core()?;
        self.with(|r| r.resolve_household_field(id, &field, &value))
    }

    /// Records a review of a request's conflict, optionally choosing the status it takes.
    pub fn review_request_conflict(
        &self,
        request: String,
        outcome: Option<doorstep_core::lifecycle::RequestStatus>,
        note: String,
    ) -> Result<String, DoorstepError> {
        let id: RequestId = parse(&request)?;
        self.with(|r| Ok(r.review_request_conflict(id, outcome, &note, now())?.to_string()))
    }

    /// Local changes not yet stored by the server.
    pub fn unsynced_change_count(&self) -> Result<u64, DoorstepError> {
        self.with(|r| r.unsynced_change_count())
    }

    /// Documents on this device (households and requests).
    pub fn document_count(&self) -> Result<u64, DoorstepError> {
        self.with(|r| Ok(r.documents()?.len() as u64))
    }

    /// The county's request categories offered for new requests (retired ones are left out).
    pub fn categories(&self) -> Vec<Category> {
        self.inner.blocking_lock().taxonomy().active_categories().map(Into::into).collect()
    }
}
