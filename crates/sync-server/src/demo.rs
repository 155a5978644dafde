//! A demo county, so a newcomer sees real-looking data at once: 3 communities, 12 grids,
//! about 5,000 households with residents and visits, and requests in every state.
//! Generated from a fixed seed: every demo database holds the same people.

use automerge::AutoCommit;
use doorstep_core::doc;
use doorstep_core::ids::{
    Code, DocumentId, EventId, GridId, HouseholdId, MemberId, RequestId, ResidentId, VisitId,
};
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, ResidentTag,
    Satisfaction, Sex, Taxonomy, Urgency, VisitKind,
};
use doorstep_core::time::Timestamp;

use crate::scope::Role;
use crate::storage::{Storage, StorageError};

/// A member the demo created, with an enrolment code to try the app with.
pub struct DemoLogin {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// What they look after.
    pub area: String,
    /// A single-use enrolment code, valid for 7 days.
    pub code: String,
}

/// A dashboard account the demo created, with its password.
pub struct DemoAccount {
    /// Login name.
    pub login: String,
    /// Password (random, printed once).
    pub password: String,
    /// The member's name.
    pub name: String,
    /// The member's role.
    pub role: Role,
}

/// What the demo created.
pub struct DemoSummary {
    /// Households created.
    pub households: usize,
    /// Requests created.
    pub requests: usize,
    /// Members to try with.
    pub logins: Vec<DemoLogin>,
    /// Dashboard accounts to sign in with.
    pub accounts: Vec<DemoAccount>,
}

/// A small deterministic generator (xorshift64*), so the demo needs no randomness source and
/// every demo (and benchmark grid) holds the same people. Not for secrets.
pub struct Seeded(pub u64);

impl Seeded {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A version-4-shaped UUID.
    pub fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(
            ((u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())).to_le_bytes(),
        )
        .into_uuid()
    }
}

const SURNAMES: &[&str] =
    &["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林"];
const GIVEN: &[&str] = &[
    "芳", "伟", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平",
];
const VISIT_NOTES: &[&str] = &[
    "家中一切正常，老人精神状态良好。",
    "反映楼道灯不亮，已记录。",
    "独居老人，叮嘱按时服药，留下联系电话。",
    "燃气管道检查无异常，提醒注意用电安全。",
    "孩子放暑假在家，家长外出务工，已联系社区托管。",
    "家中有人住院，需要关注后续困难救助。",
];
const REQUESTS: &[(&str, &str)] = &[
    ("facility_repair", "楼道灯坏了，三楼到五楼都不亮"),
    ("sanitation", "小区垃圾桶满了没人清运"),
    ("neighbour_dispute", "楼上漏水到楼下，两家协商不成"),
    ("elderly_care", "独居老人需要每周送餐"),
    ("health", "行动不便，希望上门量血压"),
    ("public_safety_fire", "楼道堆放杂物，存在消防隐患"),
    ("policy_question", "咨询低保申请条件"),
    ("hardship_assistance", "家中主要劳动力生病，生活困难"),
    ("micro_wish", "孩子想要一个新书包"),
    ("employment", "下岗后想找保洁工作"),
];

fn name(rng: &mut Seeded) -> String {
    format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN))
}

/// Households per grid in the full demo county (12 grids: about 5,000 households).
pub const HOUSEHOLDS_PER_GRID: u64 = 420;

/// Seeds the full demo county into empty storage. Does nothing and returns `None` if the
/// storage already has grids.
pub fn seed(storage: &dyn Storage, now: Timestamp) -> Result<Option<DemoSummary>, StorageError> {
    seed_sized(storage, now, HOUSEHOLDS_PER_GRID)
}

/// Seeds a demo county with `households_per_grid` households in each of its 12 grids (tests
/// use a small one).
pub fn seed_sized(
    storage: &dyn Storage,
    now: Timestamp,
    households_per_grid: u64,
) -> Result<Option<DemoSummary>, StorageError> {
    if !storage.grids()?.is_empty() {
        return Ok(None);
    }
    let mut rng = Seeded(0x00d0_0125_7e90);
    let taxonomy = Taxonomy::default_county();
    let communities = [("幸福社区", "城关街道"), ("和平社区", "城关街道"), ("东风村", "东风镇")];
    let mut logins = Vec::new();
    let admin = storage.create_member("县级管理员", Role::Admin, None, now)?;
    let mut accounts = vec![account(storage, admin, "admin", "县级管理员", Role::Admin, now)?];
    let mut households = 0;
    let mut requests = 0;
    for (c, (community, street)) in communities.iter().enumerate() {
        let supervisor = storage.create_member(&format!("{community}负责人"), Role::Supervisor, None, now)?;
        for g in 0..4 {
            let grid_name = format!("{community}第{}网格", g + 1);
            let grid = storage.create_grid(&grid_name, community, street)?;
            storage.set_member_grid(supervisor, grid, true)?;
            let worker_name = name(&mut rng);
            let worker = storage.create_member(&worker_name, Role::GridWorker, None, now)?;
            storage.set_member_grid(worker, grid, true)?;
            if c == 0 && g == 0 {
                logins.push(login(storage, worker, &worker_name, Role::GridWorker, &grid_name, now)?);
            }
            let crew = GridCrew { grid, community, worker, supervisor };
            let (h, r) = seed_grid(storage, &mut rng, &taxonomy, &crew, households_per_grid, 50, now)?;
            households += h;
            requests += r;
        }
        if c == 0 {
            accounts.push(account(
                storage,
                supervisor,
                "xingfu",
                &format!("{community}负责人"),
                Role::Supervisor,
                now,
            )?);
            logins.push(login(
                storage,
                supervisor,
                &format!("{community}负责人"),
                Role::Supervisor,
                community,
                now,
            )?);
        }
    }
    let staff = storage.create_member(
        "民政局工作人员",
        Role::DepartmentStaff,
        Code::new("civil_affairs").ok().as_ref(),
        now,
    )?;
    logins.push(login(storage, staff, "民政局工作人员", Role::DepartmentStaff, "民政局", now)?);
    accounts.push(account(storage, staff, "minzheng", "民政局工作人员", Role::DepartmentStaff, now)?);
    Ok(Some(DemoSummary { households, requests, logins, accounts }))
}

/// Who a seeded grid belongs to: its households' community, the worker who registered them
/// and the supervisor who acts on its requests.
pub struct GridCrew<'a> {
    /// The grid, already created.
    pub grid: GridId,
    /// Its community's name (the households' address).
    pub community: &'a str,
    /// The grid worker recorded as author of households, visits and most events.
    pub worker: MemberId,
    /// The supervisor recorded on supervise and close events.
    pub supervisor: MemberId,
}

/// Writes `households` households (with residents and up to 8 visits each) and `requests`
/// requests in every state into an existing grid, in one transaction; returns how many of
/// each. The demo and the load generator (`crates/loadgen`) seed their grids with it.
pub fn seed_grid(
    storage: &dyn Storage,
    rng: &mut Seeded,
    taxonomy: &Taxonomy,
    crew: &GridCrew<'_>,
    households: u64,
    requests: u64,
    now: Timestamp,
) -> Result<(usize, usize), StorageError> {
    let day = 86_400_000i64;
    let GridCrew { grid, community, worker, supervisor } = *crew;
    let mut docs: Vec<(DocumentId, AutoCommit)> = Vec::new();
    let mut homes: Vec<HouseholdId> = Vec::new();
    for n in 0..households {
        let (id, doc) = household(rng, community, grid, n, worker, now)?;
        homes.push(id);
        docs.push((id.into(), doc));
    }
    for n in 0..requests {
        let home = (n % 5 != 0 && !homes.is_empty()).then(|| homes[rng.below(homes.len() as u64) as usize]);
        let at = Timestamp(now.millis() - (1 + rng.below(60)) as i64 * day);
        let (id, doc) = request(rng, taxonomy, home, grid, worker, supervisor, at, n)?;
        docs.push((id.into(), doc));
    }
    storage.write_server_documents(&mut docs, now)?;
    Ok((homes.len(), requests as usize))
}

/// A dashboard account with a random password for a demo member.
fn account(
    storage: &dyn Storage,
    member: MemberId,
    login: &str,
    name: &str,
    role: Role,
    now: Timestamp,
) -> Result<DemoAccount, StorageError> {
    let password =
        crate::auth::new_enrolment_code().map_err(|e| StorageError::Damaged(format!("randomness: {e}")))?;
    let hash = crate::auth::hash_password(&password).map_err(|e| StorageError::Damaged(e.to_string()))?;
    storage.create_staff_account(member, login, &hash, now)?;
    Ok(DemoAccount { login: login.to_owned(), password, name: name.to_owned(), role })
}

fn login(
    storage: &dyn Storage,
    member: MemberId,
    name: &str,
    role: Role,
    area: &str,
    now: Timestamp,
) -> Result<DemoLogin, StorageError> {
    let code =
        crate::auth::new_enrolment_code().map_err(|e| StorageError::Damaged(format!("randomness: {e}")))?;
    let hash = crate::auth::hash_secret(&crate::auth::normalize_code(&code));
    storage.create_enrolment_code(member, &hash, now, now.plus_hours(24 * 7))?;
    Ok(DemoLogin { name: name.to_owned(), role, area: area.to_owned(), code })
}

fn core_err(e: doorstep_core::CoreError) -> StorageError {
    StorageError::Damaged(format!("demo data: {e}"))
}

fn household(
    rng: &mut Seeded,
    community: &str,
    grid: GridId,
    n: u64,
    worker: MemberId,
    now: Timestamp,
) -> Result<(HouseholdId, AutoCommit), StorageError> {
    let id = HouseholdId::from_uuid(rng.uuid());
    let residents: Vec<NewResident> = (0..1 + rng.below(4))
        .map(|_| {
            let mut tags = Vec::new();
            if rng.below(8) == 0 {
                tags.push(ResidentTag::ElderlyAlone);
            }
            if rng.below(15) == 0 {
                tags.push(ResidentTag::Disabled);
            }
            if rng.below(12) == 0 {
                tags.push(ResidentTag::LowIncome);
            }
            if rng.below(20) == 0 {
                tags.push(ResidentTag::LeftBehindChild);
            }
            if rng.below(10) == 0 {
                tags.push(ResidentTag::PartyMember);
            }
            NewResident {
                name: name(rng),
                sex: if rng.below(2) == 0 { Sex::Male } else { Sex::Female },
                birth_year: Some(1935 + rng.below(85) as i32),
                phone: format!("13{:09}", rng.below(1_000_000_000)),
                tags,
            }
        })
        .collect();
    let resident_ids: Vec<ResidentId> = residents.iter().map(|_| ResidentId::from_uuid(rng.uuid())).collect();
    let new = NewHousehold {
        address: Address {
            community: community.to_owned(),
            grid,
            building: format!("{}栋", 1 + n / 24),
            unit: format!("{}单元", 1 + (n / 8) % 3),
            room: format!("{}0{}", 1 + (n % 8) / 2, 1 + n % 2),
        },
        residents,
        notes: String::new(),
    };
    let mut doc = AutoCommit::new();
    let created = Timestamp(now.millis() - 200 * 86_400_000);
    doc::household::create(&mut doc, id, &new, &resident_ids, worker, created).map_err(core_err)?;
    doc.commit();
    for _ in 0..rng.below(9) {
        let visit = NewVisit {
            at: Timestamp(now.millis() - rng.below(90 * 86_400_000) as i64),
            kind: *rng.pick(&VisitKind::ALL),
            notes: (*rng.pick(VISIT_NOTES)).to_owned(),
            needs: Vec::new(),
        };
        doc::household::record_visit(&mut doc, id, VisitId::from_uuid(rng.uuid()), &visit, worker)
            .map_err(core_err)?;
        doc.commit();
    }
    Ok((id, doc))
}

#[allow(clippy::too_many_arguments)]
fn request(
    rng: &mut Seeded,
    taxonomy: &Taxonomy,
    household: Option<HouseholdId>,
    grid: GridId,
    worker: MemberId,
    supervisor: MemberId,
    at: Timestamp,
    n: u64,
) -> Result<(RequestId, AutoCommit), StorageError> {
    let id = RequestId::from_uuid(rng.uuid());
    let (category, description) = *rng.pick(REQUESTS);
    let category = taxonomy.category(category).map_err(core_err)?;
    let new = NewRequest {
        household,
        grid: Some(grid),
        category: category.code.to_string(),
        description: description.to_owned(),
        urgency: if rng.below(6) == 0 { Urgency::Urgent } else { Urgency::Normal },
        at,
    };
    let mut doc = AutoCommit::new();
    doc::request::create(&mut doc, id, EventId::from_uuid(rng.uuid()), &new, grid, category, worker)
        .map_err(core_err)?;
    doc.commit();
    // Walk the request along a path that ends in a different state for each `n`.
    let department = EventAction::Dispatched { department: category.department.clone() };
    let paths: [&[EventAction]; 8] = [
        &[],
        &[EventAction::Accepted],
        &[EventAction::Accepted, department.clone()],
        &[EventAction::Accepted, department.clone(), EventAction::Progress],
        &[EventAction::ResolvedOnSpot],
        &[
            EventAction::Accepted,
            department.clone(),
            EventAction::Resolved,
            EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
        ],
        &[
            EventAction::Accepted,
            department,
            EventAction::Supervised,
            EventAction::Resolved,
            EventAction::FollowedUp { satisfaction: Satisfaction::BasicallySatisfied },
            EventAction::Closed,
        ],
        &[EventAction::Cancelled],
    ];
    for (step, action) in paths[(n % 8) as usize].iter().enumerate() {
        let by =
            if matches!(action, EventAction::Supervised | EventAction::Closed) { supervisor } else { worker };
        let event = NewEvent {
            action: action.clone(),
            note: String::new(),
            at: Timestamp(at.millis() + (step as i64 + 1) * 3_600_000),
        };
        doc::request::add_event(&mut doc, id, EventId::from_uuid(rng.uuid()), &event, by)
            .map_err(core_err)?;
        doc.commit();
    }
    Ok((id, doc))
}
