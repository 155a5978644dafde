//! The server's handling of a device's messages, on a real SQLite store: arbitrary frames,
//! arbitrary change chunks uploaded into a document, and arbitrary Automerge sync messages
//! for repair. Refusals are expected; a panic, or a stored document that no longer reads as
//! a valid Doorstep document, is a finding.
#![no_main]

use std::sync::OnceLock;

use doorstep_core::doc::DocumentKind;
use doorstep_core::ids::DocumentId;
use doorstep_core::sync::frame::decode_client;
use doorstep_core::sync::message::{ClientMessage, DocSyncMessage, SyncRequest, Upload, wire_id};
use doorstep_core::time::Timestamp;
use doorstep_server::scope::Role;
use doorstep_server::storage::sqlite::SqliteStorage;
use doorstep_server::storage::{Authenticated, Device, Storage, SyncLimits};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    storage: SqliteStorage,
    device: Device,
    _dir: std::path::PathBuf,
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
        Fixture { storage, device, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
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
            let request =
                SyncRequest { uploads: vec![Upload { doc: wire_id(doc), changes: chunks }], ..SyncRequest::default() };
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
    // Whatever was stored is still a valid document of its id.
    if let Ok(Some(stored)) = f.storage.document(doc) {
        assert!(doorstep_core::sync::validate::facts(&stored, doc).is_ok(), "an invalid document was stored");
    }
});
