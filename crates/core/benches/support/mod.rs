//! Realistic replica fixtures shared by the `replica` bench and the `replica_figures` example:
//! grids of households with two or three residents and a visit history in Chinese, plus
//! requests in every stage of their lifecycle. Randomness is a seeded xorshift, so the same
//! seed builds the same content (ids are still random UUIDs).

use std::path::Path;

use doorstep_core::ids::{Code, GridId, HouseholdId, MemberId, RequestId};
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, ResidentTag,
    Satisfaction, Sex, Urgency, VisitKind,
};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::time::Timestamp;

/// 2026-01-05 09:00 UTC: the first visit of every fixture.
pub const T0: Timestamp = Timestamp(1_767_603_600_000);

const DAY_MS: i64 = 86_400_000;

const SURNAMES: [&str; 16] =
    ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN_NAMES: [&str; 16] = [
    "秀英", "建国", "桂兰", "志强", "丽娟", "伟", "芳", "海燕", "国华", "玉梅", "军", "红霞", "子涵", "浩然",
    "淑珍", "文博",
];

/// Visit notes are put together from what was found, a detail and what was done, so that
/// notes vary as real ones do (40–80 characters) and do not compress unrealistically well.
const FOUND: [&str; 12] = [
    "老人身体状况良好，精神不错，",
    "独居老人反映最近腿脚不便，下楼买菜困难，",
    "家中两位老人均在，儿子在外地打工，",
    "入户检查消防安全，楼道堆放的纸箱已劝导清理，",
    "低保户家庭，孩子上初二，学习用品短缺，",
    "回访上次反映的卫生间漏水问题，物业已上门维修，",
    "老人刚出院，需要定期复查，",
    "敲门无人应答，电话联系得知一家人回老家探亲，",
    "夫妻因噪音问题与楼上邻居有矛盾，",
    "残疾人家庭，轮椅老旧，申请了辅具适配，",
    "发现电动车在室内充电，已说明火灾危险，",
    "老人反映养老金到账时间比往常晚，",
];
const DONE: [&str; 12] = [
    "已联系志愿者每周二、五代购蔬菜。",
    "讲解了高龄津贴申领流程，老人表示下周去社区办理。",
    "已引导到小区集中充电桩充电。",
    "已登记微心愿，并推荐了街道下月的招聘会。",
    "居民表示满意，顺便宣传了防范电信诈骗知识。",
    "已联系社区卫生服务中心签约家庭医生。",
    "已告知邻居留意，回来后再补一次走访。",
    "约定周末在社区调解室当面协商，网格长一同参加。",
    "讲解了残疾人两项补贴政策，材料已收齐。",
    "提醒冬季注意通风，防止一氧化碳中毒。",
    "已报街道民政科跟进，三天内答复。",
    "暂无其他需求，下次走访再了解。",
];
const NEEDS: [&str; 6] = ["代购药品", "上门理发", "维修水管", "办理高龄津贴", "陪同就医", "安装扶手"];

/// Categories from the shipped taxonomy, each with a description a resident might give.
const REQUESTS: [(&str, &str); 8] = [
    ("facility_repair", "3栋2单元楼道声控灯坏了一个多月，老人晚上上下楼看不清，希望尽快维修。"),
    ("sanitation", "小区东门垃圾桶满了没人清运，天热有异味，还招苍蝇，希望增加清运次数。"),
    ("neighbour_dispute", "楼上住户晚上十一点以后经常拖动家具，噪音很大，多次沟通无效，请社区协调。"),
    ("elderly_care", "独居老人行动不便，希望能安排助餐服务，每天中午送一顿饭到家。"),
    ("health", "老人患糖尿病多年，希望家庭医生能定期上门测血糖，并指导用药。"),
    ("public_safety_fire", "地下车库有人私拉电线给电动车充电，存在火灾隐患，请尽快处理。"),
    ("policy_question", "想了解孩子入学需要准备哪些材料，户口不在本区能不能在附近小学就读。"),
    ("micro_wish", "孩子想要一套课外读物和一个新书包，家里经济困难，希望有爱心人士帮助。"),
];

/// A seeded xorshift64 generator: enough randomness for fixtures, no dependency.
pub struct Rng(u64);

impl Rng {
    /// A generator for one fixture; the same seed gives the same sequence.
    pub fn seeded(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// What to put in a fixture replica.
pub struct Spec {
    /// Households per grid; one grid per entry.
    pub grids: Vec<usize>,
    /// Visits recorded on every household.
    pub visits_each: usize,
    /// Requests raised on random households (a third stay open).
    pub requests: usize,
}

/// What a fixture holds.
pub struct Fixture {
    /// The grids, in the order of [`Spec::grids`].
    pub grids: Vec<GridId>,
    /// Every household, grid by grid.
    pub households: Vec<HouseholdId>,
}

/// A visit with realistic notes; one in three notes a need.
pub fn new_visit(rng: &mut Rng, at: Timestamp) -> NewVisit {
    let kind = VisitKind::ALL[rng.below(VisitKind::ALL.len())];
    let needs = if rng.below(3) == 0 { vec![rng.pick(&NEEDS).to_owned()] } else { Vec::new() };
    let detail = match rng.below(3) {
        0 => format!("测得血压{}/{}，", 105 + rng.below(60), 60 + rng.below(35)),
        1 => format!("约定{}月{}日再次上门，", 1 + rng.below(12), 1 + rng.below(28)),
        _ => format!("登记联系电话139{:08}，", rng.below(100_000_000)),
    };
    let notes = format!("{}{detail}{}", rng.pick(&FOUND), rng.pick(&DONE));
    NewVisit { at, kind, notes, needs }
}

fn new_household(rng: &mut Rng, grid: GridId, community: &str, index: usize) -> NewHousehold {
    let surname = rng.pick(&SURNAMES);
    let residents = (0..2 + rng.below(2))
        .map(|r| NewResident {
            name: format!("{}{}", if r == 0 { surname } else { rng.pick(&SURNAMES) }, rng.pick(&GIVEN_NAMES)),
            sex: if rng.below(2) == 0 { Sex::Male } else { Sex::Female },
            birth_year: Some(1935 + rng.below(85) as i32),
            phone: format!("139{:08}", rng.below(100_000_000)),
            tags: if rng.below(4) == 0 {
                vec![ResidentTag::ALL[rng.below(ResidentTag::ALL.len())]]
            } else {
                Vec::new()
            },
        })
        .collect();
    NewHousehold {
        address: Address {
            community: community.to_owned(),
            grid,
            building: format!("{}栋", index / 48 + 1),
            unit: format!("{}单元", index / 12 % 4 + 1),
            room: format!("{}0{}", index / 2 % 6 + 1, index % 2 + 1),
        },
        residents,
        notes: String::new(),
    }
}

/// Writes a fixture replica at `path` (the file must not exist yet). Built with
/// [`Durability::Normal`] to save time; durability is a property of the connection, so a
/// replica reopened with the default options commits with `synchronous = FULL`.
pub fn build_replica(path: &Path, spec: &Spec, seed: u64) -> Fixture {
    let mut rng = Rng::seeded(seed);
    let options = ReplicaOptions { durability: Durability::Normal, ..ReplicaOptions::default() };
    let mut replica = Replica::open_with(path, options).expect("fixture replica opens");
    replica.set_member(MemberId::new_random()).expect("member is stored");
    let mut fixture = Fixture { grids: Vec::new(), households: Vec::new() };
    for (g, &count) in spec.grids.iter().enumerate() {
        let grid = GridId::new_random();
        let community = if g % 2 == 0 { "幸福社区" } else { "和平社区" };
        for index in 0..count {
            let new = new_household(&mut rng, grid, community, index);
            let home = replica.create_household(&new, T0).expect("household is created");
            for v in 0..spec.visits_each {
                let at = Timestamp(T0.0 + v as i64 * 14 * DAY_MS + index as i64 * 60_000);
                replica.record_visit(home, &new_visit(&mut rng, at)).expect("visit is recorded");
            }
            fixture.households.push(home);
        }
        fixture.grids.push(grid);
    }
    for r in 0..spec.requests {
        let household = fixture.households[rng.below(fixture.households.len())];
        let (category, description) = REQUESTS[rng.below(REQUESTS.len())];
        let raised_at = Timestamp(T0.0 + r as i64 * DAY_MS / 2);
        let id = replica
            .raise_request(&NewRequest {
                household: Some(household),
                grid: None,
                category: category.to_owned(),
                description: description.to_owned(),
                urgency: if r % 7 == 0 { Urgency::Urgent } else { Urgency::Normal },
                at: raised_at,
            })
            .expect("request is raised");
        add_events(&mut replica, id, r % 3, raised_at);
    }
    fixture
}

/// Moves a request along: stage 0 stays open (accepted, dispatched), 1 is resolved on the spot,
/// 2 goes the whole way to closed.
fn add_events(replica: &mut Replica, id: RequestId, stage: usize, raised_at: Timestamp) {
    let department = Code::new("community_office").expect("shipped department code");
    let actions = match stage {
        0 => vec![EventAction::Accepted, EventAction::Dispatched { department }],
        1 => vec![EventAction::ResolvedOnSpot],
        _ => vec![
            EventAction::Accepted,
            EventAction::Dispatched { department },
            EventAction::Resolved,
            EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
            EventAction::Closed,
        ],
    };
    for (hours, action) in (1u32..).zip(actions) {
        let event = NewEvent {
            action,
            note: "已与居民电话沟通，按流程办理。".to_owned(),
            at: raised_at.plus_hours(hours),
        };
        replica.add_request_event(id, &event).expect("event follows the lifecycle");
    }
}
