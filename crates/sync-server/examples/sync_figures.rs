//! Sync figures: Doorstep's scoped, cursor-based protocol against the automerge-repo way
//! (Automerge's sync protocol, one document at a time), same run, same documents, over real
//! HTTP on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p doorstep-server --example sync_figures            # markdown table
//! cargo run --release -p doorstep-server --example sync_figures -- --json  # JSON
//! ```
//!
//! What it does:
//! - starts `doorstep_server::serve` in-process on 127.0.0.1:0 over SQLite in a temporary
//!   directory, with a grid of 500 households (2–3 residents, 12 visits each, every visit its
//!   own Automerge change) and 100 requests (1–6 events each), written with
//!   `write_server_documents`;
//! - puts a byte-counting TCP proxy in front of it, so wire bytes (HTTP headers included) are
//!   counted both ways, beside the frame bodies `SyncReport` counts;
//! - measures a fresh device download, idle reconnects (a new HTTP connection each time) and
//!   a catch-up after another device of the same worker added one visit to 25 households;
//! - runs the same three scenarios against the baseline of `crates/baseline`
//!   (`doorstep-baseline`, shared with `doorstep-loadgen`): an in-process axum server holding the
//!   same documents in memory and speaking Automerge's sync protocol per document, with
//!   automerge-repo's CBOR envelope around every message and persisted `sync::State`s on both
//!   sides — once with all of a round's messages batched in one HTTP request, once strictly
//!   one message per HTTP request (16 in flight), as automerge-repo sends per-document
//!   messages.
//!
//! What is counted:
//! - Doorstep "bodies": the frames `SyncReport` counts; 2 messages (frames) per round trip.
//! - Baseline "bodies": the `join` → `peer` handshake (1 round trip, 2 messages), then per
//!   document and direction a CBOR map `{type: "sync" | "request", senderId, targetId,
//!   documentId, data}` as automerge-repo's `SyncMessage`: `senderId` `peer-` + 11 base-36
//!   characters, `targetId` `storage-server-county`, `documentId` bs58check of the UUID's 16
//!   bytes (27–28 characters), `data` the encoded `automerge::sync::Message`. Batched: one CBOR
//!   array of maps per HTTP body; strict: one map per HTTP body, `204 No Content` when the
//!   server has nothing to say. Rounds continue until the client generates no message after
//!   applying the server's replies (then both sides' heads are checked equal, unmeasured).
//! - "Wire": application bytes through the proxy both ways — HTTP request and status lines,
//!   headers and bodies; not TCP/IP headers or handshakes.
//! - The baseline is given the benefit of the doubt: its server holds every document and
//!   sync state in memory; its client knows every document id up front, keeps documents in
//!   memory between connections, indexes nothing, and persists a round's new document data
//!   and sync states in one SQLite transaction (WAL, `synchronous = FULL`, like the replica).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use automerge::{ActorId, AutoCommit};
use doorstep_baseline::client::Durability as BaselineDurability;
use doorstep_baseline::envelope::{document_id, peer_id};
use doorstep_baseline::server::lock;
use doorstep_baseline::{BaselineClient, Mode, Shared};
use doorstep_client::{Client, SyncReport};
use doorstep_core::doc;
use doorstep_core::ids::{
    DocumentId, EventId, GridId, HouseholdId, MemberId, RequestId, ResidentId, VisitId,
};
use doorstep_core::model::{
    Address, EventAction, NewEvent, NewHousehold, NewRequest, NewResident, NewVisit, ResidentTag,
    Satisfaction, Sex, Taxonomy, Urgency, VisitKind,
};
use doorstep_core::store::{Durability, Replica, ReplicaOptions};
use doorstep_core::sync::client::{self as engine, ClientLimits};
use doorstep_core::time::Timestamp;
use doorstep_server::config::Config;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use doorstep_server::storage::sqlite::SqliteStorage;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOUSEHOLDS: usize = 500;
const VISITS_PER_HOUSEHOLD: usize = 12;
const REQUESTS: usize = 100;
const CHANGED_DOCS: usize = 25;
/// Fresh downloads measured (each a newly enrolled device).
const FRESH_RUNS: usize = 5;
/// Idle reconnects measured.
const IDLE_RUNS: usize = 20;
/// Catch-ups measured (each after 25 new visits in 25 other households).
const CATCH_UP_RUNS: usize = 5;
/// Most connections a counting proxy accepts before it stops.
const MAX_PROXY_CONNECTIONS: usize = 100_000;

// ---- deterministic data -------------------------------------------------------------------------

/// The demo's seeded generator, so every run builds the same grid.
use doorstep_server::demo::Seeded as Rng;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何",
    "郭", "马", "罗",
];
const GIVEN: &[&str] = &[
    "芳", "伟", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "秀兰", "霞", "平", "建国", "桂英", "志强", "玉兰", "国华", "淑珍", "子涵", "浩然", "雨桐", "思远",
];
const HOUSEHOLD_NOTES: &[&str] = &[
    "",
    "",
    "",
    "子女在外地工作，老人独居，需重点关注。",
    "租户，房东联系电话已登记。",
    "家中有长期卧床病人，每月上门一次。",
    "退役军人家庭，已建立优抚档案。",
    "低保户，每季度复核一次家庭收入。",
];
const VISIT_NOTES: &[&str] = &[
    "家中一切正常，老人精神状态良好。",
    "反映楼道灯不亮，已记录并报物业。",
    "独居老人，叮嘱按时服药，留下社区联系电话。",
    "燃气管道检查无异常，提醒注意用电安全，不要私拉电线给电动车充电。",
    "孩子放暑假在家，家长外出务工，已联系社区托管班。",
    "家中有人住院，需要关注后续困难救助申请。",
    "老人腿脚不便，希望社区帮忙代购日常药品。",
    "宣传反诈知识，帮助下载国家反诈中心App。",
    "询问医保缴费事宜，已告知缴费渠道和截止日期。",
    "居民反映楼上夜间噪音扰民，已约双方下周协商。",
    "检查灭火器在有效期内，楼道无杂物堆放。",
    "老人血压偏高，已联系家庭医生上门随访。",
    "新生儿一名，已告知疫苗接种和出生登记流程。",
    "房屋漏水问题已由物业维修完毕，居民表示满意。",
    "宣传垃圾分类，发放分类指南一份。",
    "家属在外地，老人记忆力下降，建议申请居家养老服务。",
];
const VISIT_DETAILS: &[&str] = &[
    "",
    "",
    "测量血压135/85，心率正常。",
    "下次走访时间约在月底。",
    "已在微信群里发布相关通知。",
    "居民留言：感谢社区的关心。",
    "已拍照存档，待街道统一处理。",
];
const NEEDS: &[&str] =
    &["代购药品", "申请低保", "办理老年证", "维修水管", "联系家庭医生", "助餐服务", "残疾人补贴", "就业培训"];
const REQUEST_TEXT: &[(&str, &str)] = &[
    ("facility_repair", "楼道灯坏了，三楼到五楼都不亮，晚上老人上下楼很危险。"),
    ("sanitation", "小区东门垃圾桶满了两天没人清运，气味很大。"),
    ("neighbour_dispute", "楼上卫生间漏水到楼下，两家协商不成，希望社区调解。"),
    ("elderly_care", "独居老人行动不便，需要每周送餐上门。"),
    ("health", "行动不便，希望家庭医生上门量血压、开药。"),
    ("public_safety_fire", "楼道堆放杂物和电动车，存在消防隐患。"),
    ("policy_question", "咨询低保申请条件和需要准备的材料。"),
    ("hardship_assistance", "家中主要劳动力生病住院，生活困难，申请临时救助。"),
    ("micro_wish", "孩子想要一个新书包和一套课外书。"),
    ("employment", "下岗后想找保洁或保安工作，希望推荐岗位。"),
    ("property_management", "物业费上涨没有公示，居民有意见。"),
];
const EVENT_NOTES: &[&str] =
    &["", "", "已电话联系居民。", "现场查看，情况属实。", "已转交相关部门，等待回复。"];

fn person(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN))
}

fn visit_note(rng: &mut Rng) -> String {
    format!("{}{}", rng.pick(VISIT_NOTES), rng.pick(VISIT_DETAILS))
}

fn new_visit(rng: &mut Rng, at: Timestamp) -> NewVisit {
    let needs = if rng.below(4) == 0 { vec![(*rng.pick(NEEDS)).to_owned()] } else { Vec::new() };
    NewVisit { at, kind: *rng.pick(&VisitKind::ALL), notes: visit_note(rng), needs }
}

const DAY: i64 = 86_400_000;

struct Grid {
    grid: GridId,
    worker: MemberId,
    households: Vec<HouseholdId>,
    /// Every document with its `save()`.
    docs: Vec<(DocumentId, Vec<u8>)>,
}

/// Builds the grid's documents and stores them on the server.
fn build_grid(storage: &dyn Storage, now: Timestamp) -> Result<Grid> {
    let mut rng = Rng(0x5eed_d00b_57e9);
    let grid = storage.create_grid("幸福社区第3网格", "幸福社区", "城关街道")?;
    let worker = storage.create_member("王芳", Role::GridWorker, None, now)?;
    storage.set_member_grid(worker, grid, true)?;
    let supervisor = storage.create_member("幸福社区负责人", Role::Supervisor, None, now)?;
    storage.set_member_grid(supervisor, grid, true)?;
    // The worker's previous phone wrote the history; the supervisor's devices their events.
    let old_phone = ActorId::random();
    let supervisor_actor = ActorId::random();
    let start = Timestamp(now.millis() - 200 * DAY);
    let mut docs: Vec<(DocumentId, AutoCommit)> = Vec::new();
    let mut households = Vec::new();
    for n in 0..HOUSEHOLDS as u64 {
        let id = HouseholdId::from_uuid(rng.uuid());
        let residents: Vec<NewResident> = (0..2 + rng.below(2))
            .map(|_| {
                let mut tags = Vec::new();
                if rng.below(8) == 0 {
                    tags.push(ResidentTag::ElderlyAlone);
                }
                if rng.below(12) == 0 {
                    tags.push(ResidentTag::LowIncome);
                }
                if rng.below(10) == 0 {
                    tags.push(ResidentTag::PartyMember);
                }
                NewResident {
                    name: person(&mut rng),
                    sex: if rng.below(2) == 0 { Sex::Male } else { Sex::Female },
                    birth_year: Some(1935 + rng.below(85) as i32),
                    phone: format!("13{:09}", rng.below(1_000_000_000)),
                    tags,
                }
            })
            .collect();
        let resident_ids: Vec<ResidentId> =
            residents.iter().map(|_| ResidentId::from_uuid(rng.uuid())).collect();
        let new = NewHousehold {
            address: Address {
                community: "幸福社区".into(),
                grid,
                building: format!("{}栋", 1 + n / 36),
                unit: format!("{}单元", 1 + (n / 12) % 3),
                room: format!("{}0{}", 1 + (n % 12) / 2, 1 + n % 2),
            },
            residents,
            notes: (*rng.pick(HOUSEHOLD_NOTES)).to_owned(),
        };
        let mut d = AutoCommit::new().with_actor(old_phone.clone());
        doc::household::create(&mut d, id, &new, &resident_ids, worker, start)?;
        d.commit();
        for v in 0..VISITS_PER_HOUSEHOLD as i64 {
            let at = Timestamp(start.millis() + (v + 1) * 15 * DAY + rng.below(8 * 3_600_000) as i64);
            doc::household::record_visit(
                &mut d,
                id,
                VisitId::from_uuid(rng.uuid()),
                &new_visit(&mut rng, at),
                worker,
            )?;
            d.commit();
        }
        households.push(id);
        docs.push((id.into(), d));
    }
    let taxonomy = Taxonomy::default_county();
    for n in 0..REQUESTS as u64 {
        let id = RequestId::from_uuid(rng.uuid());
        let (category, text) = *rng.pick(REQUEST_TEXT);
        let category = taxonomy.category(category)?;
        let at = Timestamp(now.millis() - (1 + rng.below(60)) as i64 * DAY);
        let new = NewRequest {
            household: (n % 5 != 0).then(|| households[rng.below(HOUSEHOLDS as u64) as usize]),
            grid: Some(grid),
            category: category.code.to_string(),
            description: text.to_owned(),
            urgency: if rng.below(6) == 0 { Urgency::Urgent } else { Urgency::Normal },
            at,
        };
        let mut d = AutoCommit::new().with_actor(old_phone.clone());
        doc::request::create(&mut d, id, EventId::from_uuid(rng.uuid()), &new, grid, category, worker)?;
        d.commit();
        let dispatched = EventAction::Dispatched { department: category.department.clone() };
        let paths: [&[EventAction]; 6] = [
            &[EventAction::Accepted],
            &[EventAction::Accepted, dispatched.clone()],
            &[EventAction::Accepted, dispatched.clone(), EventAction::Progress],
            &[EventAction::ResolvedOnSpot],
            &[
                EventAction::Accepted,
                dispatched.clone(),
                EventAction::Resolved,
                EventAction::FollowedUp { satisfaction: Satisfaction::Satisfied },
            ],
            &[
                EventAction::Accepted,
                dispatched,
                EventAction::Supervised,
                EventAction::Resolved,
                EventAction::FollowedUp { satisfaction: Satisfaction::BasicallySatisfied },
                EventAction::Closed,
            ],
        ];
        for (step, action) in paths[(n % 6) as usize].iter().enumerate() {
            let by_supervisor = matches!(action, EventAction::Supervised | EventAction::Closed);
            d.set_actor(if by_supervisor { supervisor_actor.clone() } else { old_phone.clone() });
            let event = NewEvent {
                action: action.clone(),
                note: (*rng.pick(EVENT_NOTES)).to_owned(),
                at: Timestamp(at.millis() + (step as i64 + 1) * 3_600_000),
            };
            let by = if by_supervisor { supervisor } else { worker };
            doc::request::add_event(&mut d, id, EventId::from_uuid(rng.uuid()), &event, by)?;
            d.commit();
        }
        docs.push((id.into(), d));
    }
    let saved: Vec<(DocumentId, Vec<u8>)> = docs.iter_mut().map(|(id, d)| (*id, d.save())).collect();
    storage.write_server_documents(&mut docs, now)?;
    Ok(Grid { grid, worker, households, docs: saved })
}

// ---- a byte-counting TCP proxy ------------------------------------------------------------------

/// Bytes through a proxy: client → server (`up`) and server → client (`down`), and connections.
#[derive(Default)]
struct Counter {
    up: AtomicU64,
    down: AtomicU64,
    connections: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Wire {
    up: u64,
    down: u64,
    connections: u64,
}

impl Counter {
    /// Reads and zeroes the counts.
    fn take(&self) -> Wire {
        Wire {
            up: self.up.swap(0, Ordering::SeqCst),
            down: self.down.swap(0, Ordering::SeqCst),
            connections: self.connections.swap(0, Ordering::SeqCst),
        }
    }
}

/// Starts a proxy on 127.0.0.1 forwarding to `target`, counting application bytes both ways
/// (TCP/IP headers and handshakes are not counted).
async fn start_proxy(target: SocketAddr) -> Result<(SocketAddr, Arc<Counter>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counter = Arc::new(Counter::default());
    let c = counter.clone();
    tokio::spawn(async move {
        for _ in 0..MAX_PROXY_CONNECTIONS {
            let Ok((inbound, _)) = listener.accept().await else { break };
            let Ok(outbound) = TcpStream::connect(target).await else { continue };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            c.connections.fetch_add(1, Ordering::SeqCst);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let (up, down) = (c.clone(), c.clone());
            tokio::spawn(async move { pump(in_read, out_write, &up.up).await });
            tokio::spawn(async move { pump(out_read, in_write, &down.down).await });
        }
    });
    Ok((addr, counter))
}

/// Copies until end of stream, counting each chunk before forwarding it (so by the time a
/// receiver holds the bytes, they are counted).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: &AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

// ---- figures ------------------------------------------------------------------------------------

/// One measured sync.
#[derive(Clone, Debug, Default)]
struct Run {
    /// Protocol rounds (dependent request → reply steps).
    rounds: usize,
    /// HTTP request/response exchanges.
    http_requests: usize,
    /// Protocol messages both ways (Doorstep: frames; baseline: envelopes, handshake included).
    messages: usize,
    body_up: u64,
    body_down: u64,
    wire: Wire,
    seconds: f64,
}

impl Run {
    fn from_report(report: &SyncReport, wire: Wire, seconds: f64) -> Self {
        Run {
            rounds: report.round_trips,
            http_requests: report.round_trips,
            messages: 2 * report.round_trips,
            body_up: report.bytes_up as u64,
            body_down: report.bytes_down as u64,
            wire,
            seconds,
        }
    }
}

/// Runs of one scenario on one protocol.
struct Series {
    runs: Vec<Run>,
}

fn median_u64(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

impl Series {
    fn med(&self, f: impl Fn(&Run) -> u64) -> u64 {
        median_u64(self.runs.iter().map(f).collect())
    }
    fn rounds(&self) -> u64 {
        self.med(|r| r.rounds as u64)
    }
    fn http(&self) -> u64 {
        self.med(|r| r.http_requests as u64)
    }
    fn messages(&self) -> u64 {
        self.med(|r| r.messages as u64)
    }
    fn body_up(&self) -> u64 {
        self.med(|r| r.body_up)
    }
    fn body_down(&self) -> u64 {
        self.med(|r| r.body_down)
    }
    fn wire_up(&self) -> u64 {
        self.med(|r| r.wire.up)
    }
    fn wire_down(&self) -> u64 {
        self.med(|r| r.wire.down)
    }
    fn wire_total(&self) -> u64 {
        self.med(|r| r.wire.up + r.wire.down)
    }
    fn connections(&self) -> u64 {
        self.med(|r| r.wire.connections)
    }
    fn ms(&self) -> f64 {
        median_f64(self.runs.iter().map(|r| r.seconds * 1000.0).collect())
    }
    fn ms_range(&self) -> (f64, f64) {
        let ms: Vec<f64> = self.runs.iter().map(|r| r.seconds * 1000.0).collect();
        (ms.iter().copied().fold(f64::INFINITY, f64::min), ms.iter().copied().fold(0.0, f64::max))
    }
    fn json(&self) -> serde_json::Value {
        json!({
            "runs": self.runs.len(),
            "rounds": self.rounds(),
            "http_requests": self.http(),
            "messages": self.messages(),
            "body_bytes_up": self.body_up(),
            "body_bytes_down": self.body_down(),
            "wire_bytes_up": self.wire_up(),
            "wire_bytes_down": self.wire_down(),
            "wire_bytes_total": self.wire_total(),
            "tcp_connections": self.connections(),
            "median_ms": self.ms(),
            "all_ms": self.runs.iter().map(|r| r.seconds * 1000.0).collect::<Vec<_>>(),
        })
    }
}

// ---- Doorstep -----------------------------------------------------------------------------------

async fn enrolled_device(
    storage: &dyn Storage,
    server_url: &str,
    dir: &Path,
    name: &str,
    member: MemberId,
    durability: Durability,
) -> Result<Replica> {
    let options = ReplicaOptions { durability, ..ReplicaOptions::default() };
    let mut replica = Replica::open_with(dir.join(format!("{name}.db")), options)?;
    let code = doorstep_server::auth::new_enrolment_code().map_err(|e| anyhow!("randomness: {e}"))?;
    let hash = doorstep_server::auth::hash_secret(&doorstep_server::auth::normalize_code(&code));
    let now = doorstep_server::http::now();
    if !storage.create_enrolment_code(member, &hash, now, now.plus_hours(1))? {
        bail!("no such member");
    }
    Client::new(server_url).enrol(&mut replica, &code, name).await?;
    Ok(replica)
}

/// One `Client::sync` through the proxy on a new HTTP client (so a new TCP connection).
async fn doorstep_sync(
    proxy_url: &str,
    counter: &Counter,
    replica: &mut Replica,
) -> Result<(Run, SyncReport)> {
    counter.take();
    let client = Client::new(proxy_url);
    let started = Instant::now();
    let report = client.sync(replica).await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(client);
    let wire = counter.take();
    if !report.verified {
        bail!("the scope digest did not match after sync: {report:?}");
    }
    Ok((Run::from_report(&report, wire, seconds), report))
}

/// Where one Doorstep sync spent its time.
#[derive(Clone, Copy, Debug, Default)]
struct Split {
    /// Posting frames and waiting for replies: HTTP on 127.0.0.1 plus the server's work.
    network_and_server: f64,
    /// The device building requests and applying replies to its replica file.
    device: f64,
}

/// A sync run by hand with the core engine — the same rounds as `Client::sync` — to split its
/// time between the network and server, and the device.
async fn engine_split(url: &str, replica: &mut Replica) -> Result<Split> {
    let token = replica.enrolment()?.ok_or_else(|| anyhow!("not enrolled"))?.token;
    let client = Client::new(url);
    let limits = ClientLimits::default();
    let mut split = Split::default();
    for _ in 0..1000 {
        let started = Instant::now();
        let (frame, round) = engine::begin_round(replica, &limits, true, &[])?;
        split.device += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let reply = client.post_frame(&token, frame).await?;
        split.network_and_server += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let outcome = engine::finish_round(replica, round, &reply, &limits)?;
        split.device += started.elapsed().as_secs_f64();
        if !outcome.more {
            if outcome.digest_matches != Some(true) {
                bail!("the scope digest did not match after a hand-driven sync");
            }
            return Ok(split);
        }
    }
    bail!("the sync did not finish")
}

/// Median times (ms) of the server's storage calls for an idle sync, called directly (no HTTP):
/// `authenticate`, then `sync` with the device's cursor and nothing to upload.
fn idle_storage_ms(storage: &SqliteStorage, replica: &Replica) -> Result<(f64, f64)> {
    use doorstep_server::storage::{Authenticated, SyncLimits};
    let token = replica.enrolment()?.ok_or_else(|| anyhow!("not enrolled"))?.token;
    let hash = doorstep_server::auth::hash_secret(&token);
    let request = doorstep_core::sync::message::SyncRequest {
        cursor: replica.sync_cursor()?,
        want_digest: true,
        ..Default::default()
    };
    let (mut auth, mut sync) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let started = Instant::now();
        let Authenticated::Device(device) = storage.authenticate(&hash)? else { bail!("not a device") };
        auth.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let reply = storage
            .sync(&device, &request, &SyncLimits::default(), doorstep_server::http::now())
            .map_err(|e| anyhow!("{e}"))?
            .reply;
        sync.push(started.elapsed().as_secs_f64() * 1000.0);
        if !reply.docs.is_empty() {
            bail!("an idle sync returned documents");
        }
    }
    Ok((median_f64(auth), median_f64(sync)))
}

/// Median time of `GET /healthz` on a new connection: HTTP on 127.0.0.1 with no storage.
async fn healthz_ms(url: &str) -> Result<f64> {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let http = reqwest::Client::new();
        let started = Instant::now();
        let body = http.get(format!("{url}/healthz")).send().await?.text().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if body != "ok" {
            bail!("healthz answered {body:?}");
        }
    }
    Ok(median_f64(samples))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// ---- the baseline (crates/baseline) --------------------------------------------------------------

/// One baseline sync through the counting proxy, as a [`Run`].
async fn baseline_sync(client: &mut BaselineClient, url: &str, counter: &Counter) -> Result<Run> {
    counter.take();
    let session = client.sync(url).await?;
    let wire = counter.take();
    Ok(Run {
        rounds: session.rounds,
        http_requests: session.http_requests,
        messages: session.messages,
        body_up: session.body_up,
        body_down: session.body_down,
        wire,
        seconds: session.seconds,
    })
}

/// Every document has the server's heads (checked outside the measurement).
fn check_converged(client: &mut BaselineClient, server: &Shared) -> Result<()> {
    let heads = lock(server).heads();
    let differ = client.differing(&heads);
    if differ > 0 {
        bail!("{differ} baseline documents did not converge");
    }
    Ok(())
}

// ---- the run ------------------------------------------------------------------------------------

struct Figures {
    docs: usize,
    saved_bytes: u64,
    new_change_bytes: Vec<u64>,
    setup_seconds: f64,
    /// Hand-driven probe syncs: `[FULL, NORMAL][scenario]`.
    splits: [[Vec<Split>; 3]; 2],
    healthz_ms: f64,
    /// `authenticate` and `sync` for an idle device, called directly, ms.
    idle_storage_ms: (f64, f64),
    load_before: String,
    load_after: String,
    doorstep: [Series; 3],
    batch: [Series; 3],
    strict: [Series; 3],
}

fn progress(text: &str) {
    eprintln!("[sync_figures] {text}");
}

async fn measure(storage: Arc<SqliteStorage>, grid: &Grid, setup_seconds: f64) -> Result<Figures> {
    let work = tempfile::tempdir()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server_addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config { data_dir: work.path().to_path_buf(), ..Config::default() };
    let server_storage: Arc<dyn Storage> = storage.clone();
    let server = tokio::spawn(async move {
        doorstep_server::serve(&config, server_storage, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let server_url = format!("http://{server_addr}");
    let (proxy_addr, counter) = start_proxy(server_addr).await?;
    let proxy_url = format!("http://{proxy_addr}");

    let baseline = Shared::default();
    let ids: Vec<String> = grid.docs.iter().map(|(id, _)| document_id(id.as_uuid().as_bytes())).collect();
    {
        let mut b = lock(&baseline);
        for ((_, saved), id) in grid.docs.iter().zip(&ids) {
            b.load(id.clone(), saved)?;
        }
    }
    let baseline_addr = doorstep_baseline::server::start(baseline.clone()).await?;
    let (baseline_proxy, baseline_counter) = start_proxy(baseline_addr).await?;
    let baseline_url = format!("http://{baseline_proxy}");
    let mut rng = Rng(0xba5e_11e5);

    // 1. Fresh downloads.
    progress("fresh downloads");
    let mut fresh = Series { runs: Vec::new() };
    let mut devices = Vec::new();
    for n in 0..FRESH_RUNS {
        let mut device = enrolled_device(
            &*storage,
            &server_url,
            work.path(),
            &format!("phone-{n}"),
            grid.worker,
            Durability::Full,
        )
        .await?;
        let (run, report) = doorstep_sync(&proxy_url, &counter, &mut device).await?;
        if report.received_docs != grid.docs.len() {
            bail!("fresh device received {} documents, not {}", report.received_docs, grid.docs.len());
        }
        fresh.runs.push(run);
        devices.push(device);
    }
    // Two probe devices, driven by hand to split the time: one as durable as a real phone
    // (`synchronous = FULL`), one with `synchronous = NORMAL` (no fsync per commit).
    let mut probes = Vec::new();
    for (name, durability) in [("probe-full", Durability::Full), ("probe-normal", Durability::Normal)] {
        probes
            .push(enrolled_device(&*storage, &server_url, work.path(), name, grid.worker, durability).await?);
    }
    let mut splits: [[Vec<Split>; 3]; 2] = Default::default();
    for (probe, out) in probes.iter_mut().zip(splits.iter_mut()) {
        out[0].push(engine_split(&proxy_url, probe).await?);
    }
    let mut device = devices.remove(0);
    let mut writer = devices.remove(0);
    drop(devices);
    if device.households_in_grid(grid.grid)?.len() != HOUSEHOLDS {
        bail!("the device does not list the grid's households");
    }

    let mut batch_fresh = Series { runs: Vec::new() };
    let mut strict_fresh = Series { runs: Vec::new() };
    let mut batch_client = None;
    let mut strict_client = None;
    for n in 0..FRESH_RUNS {
        for mode in [Mode::Batch, Mode::Strict] {
            let name = format!("baseline-{}-{n}", if mode == Mode::Batch { "batch" } else { "strict" });
            let peer = peer_id(|n| rng.below(n));
            let storage_id = rng.uuid().to_string();
            let path = work.path().join(format!("{name}.db"));
            let mut client =
                BaselineClient::create(&path, BaselineDurability::Full, mode, ids.clone(), peer, storage_id)?;
            let run = baseline_sync(&mut client, &baseline_url, &baseline_counter).await?;
            check_converged(&mut client, &baseline)?;
            match mode {
                Mode::Batch => {
                    batch_fresh.runs.push(run);
                    batch_client.get_or_insert(client);
                }
                Mode::Strict => {
                    strict_fresh.runs.push(run);
                    strict_client.get_or_insert(client);
                }
            }
        }
    }
    let mut batch_client = batch_client.ok_or_else(|| anyhow!("no batch client"))?;
    let mut strict_client = strict_client.ok_or_else(|| anyhow!("no strict client"))?;

    // 2. Idle reconnects.
    progress("idle reconnects");
    let (mut idle, mut batch_idle, mut strict_idle) =
        (Series { runs: Vec::new() }, Series { runs: Vec::new() }, Series { runs: Vec::new() });
    for _ in 0..IDLE_RUNS {
        let (run, report) = doorstep_sync(&proxy_url, &counter, &mut device).await?;
        if report.received_changes != 0 {
            bail!("an idle reconnect received changes");
        }
        idle.runs.push(run);
        batch_idle.runs.push(baseline_sync(&mut batch_client, &baseline_url, &baseline_counter).await?);
        strict_idle.runs.push(baseline_sync(&mut strict_client, &baseline_url, &baseline_counter).await?);
        for (probe, out) in probes.iter_mut().zip(splits.iter_mut()) {
            out[1].push(engine_split(&proxy_url, probe).await?);
        }
    }

    // 3. Catch-up after another device added a visit to 25 households.
    progress("catch-ups");
    let (mut catch_up, mut batch_catch_up, mut strict_catch_up) =
        (Series { runs: Vec::new() }, Series { runs: Vec::new() }, Series { runs: Vec::new() });
    let mut new_change_bytes = Vec::new();
    let writer_client = Client::new(&server_url);
    for k in 0..CATCH_UP_RUNS {
        let homes = &grid.households[k * CHANGED_DOCS..(k + 1) * CHANGED_DOCS];
        let mut new_changes: Vec<(DocumentId, Vec<Vec<u8>>)> = Vec::new();
        for home in homes {
            let at = Timestamp(doorstep_server::http::now().millis());
            writer.record_visit(*home, &new_visit(&mut rng, at))?;
            new_changes.push(((*home).into(), writer.unsynced_changes((*home).into())?));
        }
        if new_changes.iter().any(|(_, c)| c.len() != 1) {
            bail!("each changed household should carry exactly one new change");
        }
        let raw: u64 = new_changes.iter().flat_map(|(_, c)| c.iter()).map(|c| c.len() as u64).sum();
        new_change_bytes.push(raw);
        let uploaded = writer_client.sync(&mut writer).await?;
        if uploaded.uploaded_changes != CHANGED_DOCS {
            bail!("the writer uploaded {} changes", uploaded.uploaded_changes);
        }
        {
            let mut b = lock(&baseline);
            for (id, changes) in &new_changes {
                b.apply_changes(&document_id(id.as_uuid().as_bytes()), changes)?;
            }
        }
        let (run, report) = doorstep_sync(&proxy_url, &counter, &mut device).await?;
        if report.received_changes != CHANGED_DOCS || report.received_docs != CHANGED_DOCS {
            bail!(
                "the catch-up received {} changes in {} docs",
                report.received_changes,
                report.received_docs
            );
        }
        catch_up.runs.push(run);
        batch_catch_up.runs.push(baseline_sync(&mut batch_client, &baseline_url, &baseline_counter).await?);
        check_converged(&mut batch_client, &baseline)?;
        strict_catch_up.runs.push(baseline_sync(&mut strict_client, &baseline_url, &baseline_counter).await?);
        check_converged(&mut strict_client, &baseline)?;
        for (probe, out) in probes.iter_mut().zip(splits.iter_mut()) {
            out[2].push(engine_split(&proxy_url, probe).await?);
        }
    }
    let healthz_ms = healthz_ms(&proxy_url).await?;
    let idle_storage_ms = idle_storage_ms(&storage, &device)?;

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(Figures {
        docs: grid.docs.len(),
        saved_bytes: grid.docs.iter().map(|(_, s)| s.len() as u64).sum(),
        new_change_bytes,
        setup_seconds,
        splits,
        healthz_ms,
        idle_storage_ms,
        load_before: String::new(),
        load_after: load_average(),
        doorstep: [fresh, idle, catch_up],
        batch: [batch_fresh, batch_idle, batch_catch_up],
        strict: [strict_fresh, strict_idle, strict_catch_up],
    })
}

// ---- output -------------------------------------------------------------------------------------

const SCENARIOS: [&str; 3] = ["fresh download", "idle reconnect", "catch-up (25 docs changed)"];
const KEYS: [&str; 3] = ["fresh_download", "idle_reconnect", "catch_up"];

fn kb(bytes: u64) -> String {
    if bytes < 10_000 { format!("{bytes} B") } else { format!("{:.1} KB", bytes as f64 / 1000.0) }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { f64::NAN } else { a / b }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

impl Figures {
    /// Median (network + server, device) of a probe's splits, in ms.
    fn split_ms(&self, probe: usize, scenario: usize) -> (f64, f64) {
        let splits = &self.splits[probe][scenario];
        (
            median_f64(splits.iter().map(|s| s.network_and_server * 1000.0).collect()),
            median_f64(splits.iter().map(|s| s.device * 1000.0).collect()),
        )
    }

    fn median_new_change_bytes(&self) -> u64 {
        median_u64(self.new_change_bytes.clone())
    }

    /// Per catch-up run: bytes down / new change bytes (frame bodies, then wire).
    fn catch_up_ratios(&self) -> (f64, f64) {
        let runs = &self.doorstep[2].runs;
        let body = median_f64(
            runs.iter()
                .zip(&self.new_change_bytes)
                .map(|(r, n)| ratio(r.body_down as f64, *n as f64))
                .collect(),
        );
        let wire = median_f64(
            runs.iter()
                .zip(&self.new_change_bytes)
                .map(|(r, n)| ratio(r.wire.down as f64, *n as f64))
                .collect(),
        );
        (body, wire)
    }

    fn targets(&self) -> Vec<(String, String, String, bool)> {
        let fresh = &self.doorstep[0];
        let idle = &self.doorstep[1];
        let fresh_ratio = ratio(fresh.body_down() as f64, self.saved_bytes as f64);
        let fresh_wire_ratio = ratio(fresh.wire_down() as f64, self.saved_bytes as f64);
        let (cu_body, cu_wire) = self.catch_up_ratios();
        let idle_bytes_ratio = ratio(idle.wire_total() as f64, self.batch[1].wire_total() as f64);
        let idle_time_ratio = ratio(idle.ms(), self.batch[1].ms());
        vec![
            (
                "idle reconnect: round trips".into(),
                "1".into(),
                format!("{}", idle.rounds()),
                idle.rounds() == 1,
            ),
            (
                "idle reconnect: bytes both ways incl. HTTP".into(),
                "≤ 2 KB".into(),
                format!("{} B (bodies {} B)", idle.wire_total(), idle.body_up() + idle.body_down()),
                idle.wire_total() <= 2048,
            ),
            (
                "catch-up, 25 docs changed: bytes down ÷ new changes' bytes".into(),
                "≤ 1.3×".into(),
                format!("{cu_body:.3}× bodies, {cu_wire:.3}× wire"),
                cu_body <= 1.3,
            ),
            (
                "fresh download: time".into(),
                "≤ 1 s".into(),
                format!("{:.0} ms (median of {})", fresh.ms(), fresh.runs.len()),
                fresh.ms() <= 1000.0,
            ),
            (
                "fresh download: bytes down ÷ Σ save()".into(),
                "≤ 1.1×".into(),
                format!("{fresh_ratio:.3}× bodies, {fresh_wire_ratio:.3}× wire"),
                fresh_ratio <= 1.1,
            ),
            (
                "idle reconnect vs automerge-repo way (batched): wire bytes".into(),
                "≤ 0.1× (10× better)".into(),
                format!("{idle_bytes_ratio:.4}×"),
                idle_bytes_ratio <= 0.1,
            ),
            (
                "idle reconnect vs automerge-repo way (batched): time".into(),
                "≤ 0.1× (10× better)".into(),
                format!("{idle_time_ratio:.3}×"),
                idle_time_ratio <= 0.1,
            ),
        ]
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let push = |out: &mut String, line: String| {
            out.push_str(&line);
            out.push('\n');
        };
        push(
            &mut out,
            format!(
                "Grid: {} documents ({} households × {} visits, {} requests), Σ save() = {} B; \
                 catch-up: {} new changes per run, median {} B of raw change bytes.\n",
                self.docs,
                HOUSEHOLDS,
                VISITS_PER_HOUSEHOLD,
                REQUESTS,
                self.saved_bytes,
                CHANGED_DOCS,
                self.median_new_change_bytes()
            ),
        );
        push(
            &mut out,
            "| scenario | protocol | runs | rounds | HTTP requests | messages | bodies up | bodies down | wire up | wire down | wire total | TCP conns | median time | min–max |".into(),
        );
        push(&mut out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            for (name, s) in [
                ("Doorstep", &self.doorstep[i]),
                ("automerge-repo way, batched", &self.batch[i]),
                ("automerge-repo way, 1 msg/request", &self.strict[i]),
            ] {
                let (lo, hi) = s.ms_range();
                push(
                    &mut out,
                    format!(
                        "| {scenario} | {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} ms | {:.1}–{:.1} ms |",
                        s.runs.len(),
                        s.rounds(),
                        s.http(),
                        s.messages(),
                        kb(s.body_up()),
                        kb(s.body_down()),
                        kb(s.wire_up()),
                        kb(s.wire_down()),
                        kb(s.wire_total()),
                        s.connections(),
                        s.ms(),
                        lo,
                        hi
                    ),
                );
            }
        }
        push(&mut out, String::new());
        push(&mut out, "Ratios Doorstep ÷ baseline (medians; < 1 means Doorstep is cheaper):\n".into());
        push(&mut out, "| scenario | vs | round trips | messages | wire bytes | body bytes | time |".into());
        push(&mut out, "|---|---|---:|---:|---:|---:|---:|".into());
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            let d = &self.doorstep[i];
            for (name, b) in [("batched", &self.batch[i]), ("1 msg/request", &self.strict[i])] {
                push(
                    &mut out,
                    format!(
                        "| {scenario} | {name} | {:.3} | {:.4} | {:.4} | {:.4} | {:.3} |",
                        ratio(d.http() as f64, b.http() as f64),
                        ratio(d.messages() as f64, b.messages() as f64),
                        ratio(d.wire_total() as f64, b.wire_total() as f64),
                        ratio((d.body_up() + d.body_down()) as f64, (b.body_up() + b.body_down()) as f64),
                        ratio(d.ms(), b.ms()),
                    ),
                );
            }
        }
        push(&mut out, String::new());
        push(&mut out, "Targets (docs/DESIGN.md §6):\n".into());
        push(&mut out, "| target | wanted | measured | |".into());
        push(&mut out, "|---|---|---|---|".into());
        for (what, wanted, measured, ok) in self.targets() {
            push(&mut out, format!("| {what} | {wanted} | {measured} | {} |", verdict(ok)));
        }
        push(&mut out, String::new());
        push(
            &mut out,
            "Where Doorstep's time goes (medians; probe devices driving the same engine rounds by hand):\n"
                .into(),
        );
        push(
            &mut out,
            "| scenario | `Client::sync` | probe, FULL: network + server | probe, FULL: device | probe, NORMAL: network + server | probe, NORMAL: device |".into(),
        );
        push(&mut out, "|---|---:|---:|---:|---:|---:|".into());
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            let (fn_, fd) = self.split_ms(0, i);
            let (nn, nd) = self.split_ms(1, i);
            push(
                &mut out,
                format!(
                    "| {scenario} | {:.1} ms | {fn_:.1} ms | {fd:.1} ms | {nn:.1} ms | {nd:.1} ms |",
                    self.doorstep[i].ms()
                ),
            );
        }
        push(&mut out, String::new());
        push(
            &mut out,
            format!(
                "`GET /healthz` on a new connection through the proxy (HTTP on 127.0.0.1, no storage): {:.2} ms. \
                 The server's storage for an idle sync, called directly: `authenticate` {:.2} ms, `sync` {:.2} ms. \
                 Setup (building and storing the grid): {:.1} s. Load average before / after: {} / {}.",
                self.healthz_ms,
                self.idle_storage_ms.0,
                self.idle_storage_ms.1,
                self.setup_seconds,
                self.load_before,
                self.load_after
            ),
        );
        out
    }

    fn json(&self) -> serde_json::Value {
        let mut scenarios = serde_json::Map::new();
        for (i, key) in KEYS.iter().enumerate() {
            scenarios.insert(
                (*key).into(),
                json!({
                    "doorstep": self.doorstep[i].json(),
                    "baseline_batched": self.batch[i].json(),
                    "baseline_one_message_per_request": self.strict[i].json(),
                }),
            );
        }
        let (cu_body, cu_wire) = self.catch_up_ratios();
        json!({
            "grid": {
                "documents": self.docs,
                "households": HOUSEHOLDS,
                "visits_per_household": VISITS_PER_HOUSEHOLD,
                "requests": REQUESTS,
                "sum_saved_bytes": self.saved_bytes,
                "catch_up_changed_docs": CHANGED_DOCS,
                "catch_up_new_change_bytes": self.new_change_bytes,
            },
            "scenarios": scenarios,
            "ratios": {
                "fresh_body_down_over_saved": ratio(self.doorstep[0].body_down() as f64, self.saved_bytes as f64),
                "fresh_wire_down_over_saved": ratio(self.doorstep[0].wire_down() as f64, self.saved_bytes as f64),
                "catch_up_body_down_over_new_changes": cu_body,
                "catch_up_wire_down_over_new_changes": cu_wire,
            },
            "targets": self.targets().into_iter().map(|(what, wanted, measured, ok)| json!({
                "target": what, "wanted": wanted, "measured": measured, "met": ok,
            })).collect::<Vec<_>>(),
            "time_split_ms": KEYS.iter().enumerate().map(|(i, key)| {
                let (fn_, fd) = self.split_ms(0, i);
                let (nn, nd) = self.split_ms(1, i);
                (key.to_string(), json!({
                    "client_sync": self.doorstep[i].ms(),
                    "probe_full": {"network_and_server": fn_, "device": fd},
                    "probe_normal": {"network_and_server": nn, "device": nd},
                }))
            }).collect::<serde_json::Map<_, _>>(),
            "healthz_new_connection_ms": self.healthz_ms,
            "idle_storage_direct_ms": {"authenticate": self.idle_storage_ms.0, "sync": self.idle_storage_ms.1},
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "setup_seconds": self.setup_seconds,
        })
    }
}

fn main() -> Result<()> {
    let as_json = std::env::args().skip(1).any(|a| a == "--json");
    let load_before = load_average();
    let data = tempfile::tempdir()?;
    progress("building the grid");
    let started = Instant::now();
    let storage = Arc::new(SqliteStorage::open(data.path())?);
    let grid = build_grid(&*storage, doorstep_server::http::now()).context("building the grid")?;
    let setup_seconds = started.elapsed().as_secs_f64();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut figures = runtime.block_on(measure(storage, &grid, setup_seconds))?;
    figures.load_before = load_before;
    runtime.shutdown_timeout(Duration::from_secs(2));
    if as_json {
        println!("{}", serde_json::to_string_pretty(&figures.json())?);
    } else {
        print!("{}", figures.markdown());
    }
    Ok(())
}
