//! What each fuzz target checks, as plain functions: the cargo-fuzz targets call them on
//! generated inputs, and `crates/sync-server/tests/fuzz_regressions.rs` (which includes this
//! file) replays every checked-in input through them in the ordinary test suite.

use std::sync::OnceLock;

use doorstep_core::doc::{self, DocumentKind};
use doorstep_core::ids::{DocumentId, GridId, MemberId};
use doorstep_core::store::Replica;
use doorstep_core::sync::frame::{decode_client, decode_server, encode_client, encode_server};
use doorstep_core::sync::message::{ClientMessage, DocSyncMessage, SyncRequest, Upload, wire_id};
use doorstep_core::time::Timestamp;
use doorstep_server::import::{plan, read_rows};
use doorstep_server::scope::Role;
use doorstep_server::storage::sqlite::SqliteStorage;
use doorstep_server::storage::{Authenticated, Device, GridRow, Storage, SyncLimits};

/// The frame decoder, both directions: no panic, and whatever decodes re-encodes to a frame
/// that decodes to the same message.
pub fn frame_decoder(data: &[u8]) {
    if let Ok(message) = decode_client(data, 1 << 20) {
        let again = encode_client(&message);
        assert_eq!(decode_client(&again, usize::MAX).ok(), Some(message));
    }
    if let Ok(message) = decode_server(data, 1 << 20) {
        let again = encode_server(&message);
        assert_eq!(decode_server(&again, usize::MAX).ok(), Some(message));
    }
}

/// The household register import, as CSV and as the start of an XLSX archive: no panic.
pub fn register_import(data: &[u8]) {
    let grids = vec![GridRow {
        id: GridId::from_uuid(uuid::Uuid::from_u128(7)),
        name: "一网格".into(),
        community: "幸福社区".into(),
        street: "城关街道".into(),
    }];
    if let Ok(rows) = read_rows(data) {
        let planned = plan(&grids, &rows);
        let _ = (planned.households(), planned.residents(), planned.preview());
    }
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(data);
    let _ = read_rows(&zip);
}

/// Document data received by a phone, applied to a replica and read as a document: no panic.
pub fn document_import(data: &[u8]) {
    // One replica for every input (opening one per input is slow), a fresh id per input.
    static REPLICA: OnceLock<std::sync::Mutex<Replica>> = OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let replica = REPLICA.get_or_init(|| {
        let mut replica = Replica::open_in_memory().expect("replica");
        replica.set_member(MemberId::from_uuid(uuid::Uuid::from_u128(1))).expect("member");
        std::sync::Mutex::new(replica)
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = DocumentId::from_uuid(uuid::Uuid::from_u128(u128::from(n)));
    {
        let mut replica = replica.lock().unwrap_or_else(|p| p.into_inner());
        let _ = replica.apply_remote(id, data);
        let _ = replica.household(id.as_household());
        let _ = replica.list_requests(&Default::default());
    }
    if let Ok(loaded) = automerge::AutoCommit::load(data) {
        let _ = doorstep_core::sync::validate::facts(&loaded, id);
        let _ = doc::household::read(&loaded, id.as_household());
        let _ = doc::request::read(&loaded, id.as_request());
    }
}

struct Fixture {
    storage: SqliteStorage,
    device: Device,
}

const ACTOR: &str = "0123456789abcdef0123456789abcdef";

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = std::path::PathBuf::from(format!("{base}/doorstep-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let storage = SqliteStorage::open(&dir).expect("storage");
        let now = Timestamp(1_780_000_000_000);
        let grid = storage.create_grid("一网格", "幸福社区", "城关街道").expect("grid");
        let member = storage.create_member("网格员", Role::GridWorker, None, now).expect("member");
        storage.set_member_grid(member, grid, true).expect("assign");
        let code = doorstep_server::auth::hash_secret("FUZZCODE");
        storage.create_enrolment_code(member, &code, now, now.plus_hours(1)).expect("code");
        storage.enrol(&code, ACTOR, "fuzz", "fuzz-token", now).expect("enrol");
        let Authenticated::Device(device) =
            storage.authenticate(&doorstep_server::auth::hash_secret("fuzz-token")).expect("auth")
        else {
            panic!("enrolled device")
        };
        Fixture { storage, device }
    })
}

/// The server's handling of a device's messages on a real SQLite store (the first byte picks
/// the mode: a whole frame, change chunks uploaded into a document, or a repair message):
/// no panic, and whatever was stored still reads as a valid document of its id.
pub fn server_messages(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let f = fixture();
    let limits = SyncLimits { max_document_bytes: 256 * 1024, page_bytes: 64 * 1024 };
    let now = Timestamp(1_780_000_000_000);
    let doc = DocumentId::from_uuid(uuid::Uuid::from_u128(u128::from(mode % 4) + 1));
    match mode % 3 {
        0 => match decode_client(rest, 1 << 20) {
            Ok(ClientMessage::Sync(request)) => {
                let _ = f.storage.sync(&f.device, &request, &limits, now);
            }
            Ok(ClientMessage::Manifest) => {
                let _ = f.storage.manifest(&f.device);
            }
            Ok(ClientMessage::Repair(messages)) => {
                let _ = f.storage.repair(&f.device, &messages, &limits, now);
            }
            Err(_) => {}
        },
        1 => {
            let chunks: Vec<serde_bytes::ByteBuf> =
                rest.split(|b| *b == 0xfe).map(|c| serde_bytes::ByteBuf::from(c.to_vec())).collect();
            let request = SyncRequest {
                uploads: vec![Upload { doc: wire_id(doc), changes: chunks }],
                ..SyncRequest::default()
            };
            let _ = f.storage.sync(&f.device, &request, &limits, now);
        }
        _ => {
            let message = DocSyncMessage {
                doc: wire_id(doc),
                kind: if mode & 0x80 == 0 { DocumentKind::Household } else { DocumentKind::Request },
                message: serde_bytes::ByteBuf::from(rest.to_vec()),
            };
            let _ = f.storage.repair(&f.device, &[message], &limits, now);
        }
    }
    if let Ok(Some(stored)) = f.storage.document(doc) {
        assert!(doorstep_core::sync::validate::facts(&stored, doc).is_ok(), "an invalid document was stored");
    }
}
