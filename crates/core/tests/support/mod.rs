//! Fixtures shared by the document tests: seeded ids and clocks, one household and one request
//! created on a first device, and devices holding forks of them that sync by merging.

use automerge::{ActorId, AutoCommit};
use doorstep_core::doc::{household, request};
use doorstep_core::ids::{Code, EventId, GridId, HouseholdId, MemberId, RequestId, ResidentId, VisitId};
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, Sex, Taxonomy, Urgency,
};
use doorstep_core::time::Timestamp;
use uuid::Uuid;

/// 2026-03-02 09:00 UTC: a phone whose clock is right.
pub const T2026: Timestamp = Timestamp(1_772_442_000_000);
/// 2019-06-01 00:00 UTC: a phone whose clock reset after the battery ran flat.
pub const T2019: Timestamp = Timestamp(1_559_347_200_000);
/// 2035-01-01 00:00 UTC: a phone set years ahead.
pub const T2035: Timestamp = Timestamp(2_051_222_400_000);

/// Deterministic ids: the same seed gives the same ids, and no id repeats within one source.
pub struct Ids {
    state: u64,
}

impl Ids {
    /// An id source for one test run.
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// splitmix64: a bijection of a counter, so the low 64 bits never repeat.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh UUID.
    pub fn uuid(&mut self) -> Uuid {
        let high = u128::from(self.next_u64().rotate_left(17));
        let low = u128::from(self.next_u64());
        Uuid::from_u128((high << 64) | low)
    }

    /// A fresh Automerge actor id.
    pub fn actor(&mut self) -> ActorId {
        ActorId::from(*self.uuid().as_bytes())
    }

    /// A fresh member id.
    pub fn member(&mut self) -> MemberId {
        MemberId::from_uuid(self.uuid())
    }

    /// A fresh visit id.
    pub fn visit(&mut self) -> VisitId {
        VisitId::from_uuid(self.uuid())
    }

    /// A fresh event id.
    pub fn event(&mut self) -> EventId {
        EventId::from_uuid(self.uuid())
    }

    /// A fresh resident id.
    pub fn resident(&mut self) -> ResidentId {
        ResidentId::from_uuid(self.uuid())
    }
}

/// A department code, for dispatches.
pub fn department(code: &str) -> Code {
    Code::new(code).expect("department codes in tests are well formed")
}

/// An event as a worker records it.
pub fn event(action: EventAction, at: Timestamp) -> NewEvent {
    NewEvent { action, note: String::new(), at }
}

/// What the first device created: a household with one resident and a request about it.
pub struct Origin {
    /// The household's id.
    pub household_id: HouseholdId,
    /// The request's id.
    pub request_id: RequestId,
    /// The resident registered with the household.
    pub resident: ResidentId,
    /// The request's `raised` event.
    pub raised: EventId,
    /// The first device, which created both documents.
    pub device: Device,
}

/// One phone: who uses it and its copies of the household and request documents.
#[derive(Clone)]
pub struct Device {
    /// The member signed in on this device.
    pub member: MemberId,
    /// Its copy of the household document.
    pub household: AutoCommit,
    /// Its copy of the request document.
    pub request: AutoCommit,
}

impl Device {
    /// Registers 王秀英 at 3栋 2单元 501 and raises a repair request for her household, each
    /// in one committed change, on a new device.
    pub fn origin(ids: &mut Ids, member: MemberId, at: Timestamp) -> Origin {
        let household_id = HouseholdId::from_uuid(ids.uuid());
        let request_id = RequestId::from_uuid(ids.uuid());
        let grid = GridId::from_uuid(ids.uuid());
        let resident = ids.resident();
        let raised = ids.event();

        let mut household_doc = AutoCommit::new().with_actor(ids.actor());
        let new_household = NewHousehold {
            address: Address {
                community: "幸福社区".into(),
                grid,
                building: "3栋".into(),
                unit: "2单元".into(),
                room: "501".into(),
            },
            residents: vec![NewResident {
                name: "王秀英".into(),
                sex: Sex::Female,
                birth_year: Some(1941),
                phone: "13800000000".into(),
                tags: Vec::new(),
            }],
            notes: String::new(),
        };
        household::create(&mut household_doc, household_id, &new_household, &[resident], member, at)
            .expect("the origin household is valid");
        household_doc.commit();

        let mut request_doc = AutoCommit::new().with_actor(ids.actor());
        let taxonomy = Taxonomy::default_county();
        let category = taxonomy.category("facility_repair").expect("shipped category");
        let new_request = NewRequest {
            household: Some(household_id),
            grid: None,
            category: category.code.to_string(),
            description: "楼道灯坏了".into(),
            urgency: Urgency::Normal,
            at,
        };
        request::create(&mut request_doc, request_id, raised, &new_request, grid, category, member)
            .expect("the origin request is valid");
        request_doc.commit();

        Origin {
            household_id,
            request_id,
            resident,
            raised,
            device: Device { member, household: household_doc, request: request_doc },
        }
    }

    /// A new device that has synced this one's documents, signed in as `member`.
    pub fn fork(&mut self, ids: &mut Ids, member: MemberId) -> Device {
        Device {
            member,
            household: self.household.fork().with_actor(ids.actor()),
            request: self.request.fork().with_actor(ids.actor()),
        }
    }

    /// Receives every change `other` has (one direction of a sync).
    pub fn sync_from(&mut self, other: &mut Device) {
        self.household.merge(&mut other.household).expect("merging household documents");
        self.request.merge(&mut other.request).expect("merging request documents");
    }
}

/// Two distinct elements of a slice, both mutable.
pub fn pair_mut<T>(items: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert_ne!(a, b, "a device cannot sync with itself");
    if a < b {
        let (left, right) = items.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = items.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

/// `to` receives every change `from` has.
pub fn sync(devices: &mut [Device], from: usize, to: usize) {
    let (to, from) = pair_mut(devices, to, from);
    to.sync_from(from);
}

/// Both devices end up with every change either has.
pub fn sync_both(devices: &mut [Device], a: usize, b: usize) {
    sync(devices, a, b);
    sync(devices, b, a);
}
