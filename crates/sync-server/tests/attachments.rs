//! Attachments end to end through a real `doorstep-server` process (SQLite, or PostgreSQL with
//! `DOORSTEP_TEST_BACKEND=postgres`): records first and photos after, resumable transfers over
//! a connection that is cut, tampered chunks, scope, limits and the Wi-Fi-only setting.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use doorstep_client::{Client, ClientError, Downloads, NoTransferObserver, TransferOptions, TransferReport};
use doorstep_core::ids::{Code, DocumentId, GridId};
use doorstep_core::model::{
    AttachmentState, ContentHash, EventAction, LocationFix, NewAttachment, NewEvent, NewRequest, NewVisit,
    Urgency, VisitKind,
};
use doorstep_core::store::Replica;
use doorstep_server::scope::Role;
use doorstep_server::storage::Storage;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PHOTO_BYTES: usize = 300 * 1024;
const CHUNK: usize = 32 * 1024;

/// A 300 KB "photo": bytes that do not repeat, so a misplaced chunk cannot go unnoticed.
fn photo(seed: u32) -> NewAttachment {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let bytes = (0..PHOTO_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    NewAttachment { media_type: "image/jpeg".into(), name: format!("现场-{seed}.jpg"), bytes }
}

/// A real 1280×960 JPEG, as a phone camera would give (smaller, but a picture).
fn real_jpeg() -> NewAttachment {
    let picture = image::RgbImage::from_fn(1280, 960, |x, y| {
        image::Rgb([(x * 255 / 1280) as u8, (y * 255 / 960) as u8, ((x ^ y) % 256) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&picture)
        .expect("encode");
    NewAttachment { media_type: "image/jpeg".into(), name: "路灯.jpg".into(), bytes }
}

fn grid(storage: &dyn Storage, name: &str) -> GridId {
    storage.create_grid(name, "幸福社区", "城关街道").expect("grid")
}

fn visit(n: i64) -> NewVisit {
    NewVisit { at: t(n), kind: VisitKind::SafetyCheck, notes: "楼道漏水".into(), needs: vec![] }
}

fn options() -> TransferOptions {
    TransferOptions { chunk_bytes: CHUNK, ..TransferOptions::default() }
}

async fn transfer(client: &Client, replica: &mut Replica) -> Result<TransferReport, ClientError> {
    let mut access = replica;
    client.transfer_attachments(&mut access, &options(), &mut NoTransferObserver).await
}

fn state_of(replica: &Replica, doc: DocumentId, hash: &ContentHash) -> AttachmentState {
    let all = replica.attachments_of(doc).expect("list");
    all.iter().find(|a| a.reference.hash == *hash).expect("listed").state
}

/// A TCP proxy to the server that forwards at most `up` bytes towards the server and `down`
/// bytes back (over all its connections), then cuts the connection both ways: a phone losing
/// signal in the middle of a transfer, at a byte count the test chooses.
async fn cutting_proxy(server_url: &str, up: usize, down: usize) -> String {
    let target = server_url.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let budgets = (Arc::new(AtomicUsize::new(up)), Arc::new(AtomicUsize::new(down)));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&target).await else { return };
            let (up, down) = (budgets.0.clone(), budgets.1.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Whichever direction runs out first ends both: the sockets drop together.
                tokio::select! {
                    _ = pipe(&mut cr, &mut sw, &up) => {}
                    _ = pipe(&mut sr, &mut cw, &down) => {}
                }
            });
        }
    });
    format!("http://{addr}")
}

/// Copies until end of stream, an error, or the budget runs out.
async fn pipe(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    budget: &AtomicUsize,
) {
    let mut buf = vec![0u8; 8192];
    loop {
        let Ok(n) = from.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        let pass = n.min(budget.load(Ordering::SeqCst));
        budget.fetch_sub(pass, Ordering::SeqCst);
        if to.write_all(&buf[..pass]).await.is_err() || pass < n {
            return;
        }
    }
}

#[tokio::test]
async fn a_photo_taken_offline_reaches_the_other_device_after_its_record() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let mut office = device(&server, dir.path(), "supervisor", boss).await;

    // Offline: a visit with where it took place and a photo.
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let fix = LocationFix { latitude: 30.5928, longitude: 114.3055, accuracy_m: 8.0, at: t(1) };
    let vid = phone.record_visit_located(home, &visit(1), Some(&fix)).expect("visit");
    let file = photo(1);
    let reference = phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    let doc: DocumentId = home.into();
    assert_eq!(state_of(&phone, doc, &reference.hash), AttachmentState::LocalOnly);

    // Records first: the other device sees the visit, its location and "photo pending" at once.
    let records = server.client().sync(&mut phone).await.expect("records");
    assert!(records.uploaded_changes > 0);
    server.client().sync(&mut office).await.expect("records");
    let seen = office.household(home).expect("household arrived");
    assert_eq!(seen.visits[0].location, Some(fix));
    assert_eq!(seen.visits[0].attachments, vec![reference.clone()]);
    assert_eq!(state_of(&office, doc, &reference.hash), AttachmentState::RemoteOnly);

    // The photo is not there before its author uploads it; the record is unaffected.
    let early = transfer(&server.client(), &mut office).await.expect("pass");
    assert_eq!(early.failed, vec![(reference.hash, "not_uploaded".to_owned())]);

    // Photos follow.
    let up = transfer(&server.client(), &mut phone).await.expect("upload");
    assert_eq!((up.uploaded.clone(), up.bytes_up), (vec![reference.hash], PHOTO_BYTES as u64));
    assert_eq!(state_of(&phone, doc, &reference.hash), AttachmentState::Synced);
    let down = transfer(&server.client(), &mut office).await.expect("download");
    assert_eq!((down.downloaded.clone(), down.bytes_down), (vec![reference.hash], PHOTO_BYTES as u64));
    assert_eq!(office.attachment_bytes(&reference.hash).expect("bytes"), file.bytes);
    assert_eq!(state_of(&office, doc, &reference.hash), AttachmentState::Synced);

    // Nothing is left to move, and a second pass moves nothing.
    let again = transfer(&server.client(), &mut phone).await.expect("pass");
    assert_eq!((again.bytes_up, again.bytes_down), (0, 0));

    // The bytes live in the server's database, so a backup carries them whole.
    let files = tempfile::tempdir().expect("tempdir");
    let backup = files.path().join("county.db");
    server.admin(&["backup", "--to", backup.to_str().expect("path")]);
    let restored = doorstep_server::storage::sqlite::SqliteStorage::open_file(&backup).expect("backup opens");
    assert_eq!(
        restored.attachment_range(&reference.hash, 0, reference.size).expect("read"),
        Some(file.bytes)
    );
}

#[tokio::test]
async fn a_transfer_cut_in_the_middle_resumes_without_resending_what_arrived() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let mut office = device(&server, dir.path(), "supervisor", boss).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let file = photo(2);
    let reference = phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");

    // Upload through a link that drops after ~150 KB.
    let proxy = cutting_proxy(&server.url, 150 * 1024, usize::MAX).await;
    let cut = transfer(&Client::new(&proxy), &mut phone).await;
    assert!(matches!(cut, Err(ClientError::Network(_))), "{cut:?}");
    let held = storage.attachment_status(&reference.hash).expect("status").expect("started");
    assert!(held.received >= 3 * CHUNK as u64 && held.received < PHOTO_BYTES as u64, "{held:?}");
    assert!(!held.complete);
    assert_eq!(state_of(&phone, home.into(), &reference.hash), AttachmentState::Uploading);

    // Back on a good link: only the rest goes.
    let rest = transfer(&server.client(), &mut phone).await.expect("resume");
    assert_eq!(rest.bytes_up, PHOTO_BYTES as u64 - held.received);
    assert!(storage.attachment_status(&reference.hash).expect("status").expect("stored").complete);

    // Download through a link that drops after ~100 KB, then the rest.
    server.client().sync(&mut office).await.expect("records");
    let proxy = cutting_proxy(&server.url, usize::MAX, 100 * 1024).await;
    let cut = transfer(&Client::new(&proxy), &mut office).await;
    assert!(matches!(cut, Err(ClientError::Network(_))), "{cut:?}");
    let have = office.attachment(&reference.hash).expect("lookup").expect("known").stored;
    assert!(have >= CHUNK as u64 && have < PHOTO_BYTES as u64, "{have}");
    let rest = transfer(&server.client(), &mut office).await.expect("resume");
    assert_eq!(rest.bytes_down, PHOTO_BYTES as u64 - have);
    assert_eq!(office.attachment_bytes(&reference.hash).expect("whole"), file.bytes);
}

#[tokio::test]
async fn a_tampered_chunk_is_rejected_by_its_hash() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let file = photo(3);
    let reference = phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    let token = Client::device_token(&phone).expect("token");
    let http = reqwest::Client::new();
    let url = |offset: usize| {
        format!("{}/v1/attachments/{}/upload?doc={home}&offset={offset}", server.url, reference.hash)
    };

    // A chunk altered on the way: its bytes no longer match the hash it carries.
    let chunk = &file.bytes[..CHUNK];
    let mut altered = chunk.to_vec();
    altered[100] ^= 0x40;
    let response = http
        .put(url(0))
        .bearer_auth(&token)
        .header("x-chunk-sha256", ContentHash::of(chunk).to_string())
        .body(altered.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "chunk_mismatch");
    assert!(body["message"].as_str().expect("message").contains("校验"));
    assert!(storage.attachment_status(&reference.hash).expect("status").is_none_or(|s| s.received == 0));

    // Altered bytes with a matching chunk hash pass the chunk check, but the whole is checked
    // against the content hash before anything becomes visible: dropped, start again.
    let mut sent = 0;
    for (i, part) in file.bytes.chunks(CHUNK).enumerate() {
        let part = if i == 2 { altered.as_slice() } else { part };
        let response = http
            .put(url(sent))
            .bearer_auth(&token)
            .header("x-chunk-sha256", ContentHash::of(part).to_string())
            .body(part.to_vec())
            .send()
            .await
            .expect("answer");
        sent += part.len();
        if sent < PHOTO_BYTES {
            assert_eq!(response.status(), 200);
        } else {
            assert_eq!(response.status(), 422);
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["error"], "attachment_mismatch");
        }
    }
    let status = storage.attachment_status(&reference.hash).expect("status").expect("row");
    assert_eq!((status.received, status.complete), (0, false));
    assert!(storage.attachment_range(&reference.hash, 0, 10).expect("read").is_none());

    // The device's own upload then succeeds from the start.
    let up = transfer(&server.client(), &mut phone).await.expect("upload");
    assert_eq!(up.bytes_up, PHOTO_BYTES as u64);
    assert_eq!(
        storage.attachment_range(&reference.hash, 0, PHOTO_BYTES as u64).expect("read"),
        Some(file.bytes)
    );
}

#[tokio::test]
async fn attachments_follow_their_documents_scope() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let other_grid = grid(&*storage, "第二网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let stranger = member(&*storage, "赵强", Role::GridWorker, &[other_grid]);
    let civil = Code::new("civil_affairs").expect("code");
    let staff = storage
        .create_member("民政局小刘", Role::DepartmentStaff, Some(&civil), doorstep_server::http::now())
        .expect("staff");
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let mut outsider = device(&server, dir.path(), "stranger", stranger).await;
    let mut bureau = device(&server, dir.path(), "bureau", staff).await;

    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let visit_photo = phone.attach_to_visit(home, vid, &photo(4), t(2)).expect("attach");
    let req = phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "独居老人家中漏水".into(),
            urgency: Urgency::Normal,
            at: t(3),
        })
        .expect("request");
    let raised = phone.request(req).expect("request").events[0].id;
    let request_photo = phone.attach_to_event(req, raised, &photo(5), t(4)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    let up = transfer(&server.client(), &mut phone).await.expect("upload");
    assert_eq!(up.uploaded.len(), 2);

    let token = |r: &Replica| Client::device_token(r).expect("token");
    let http = reqwest::Client::new();
    let fetch = |token: String, doc: DocumentId, hash: ContentHash| {
        let http = http.clone();
        let url = format!("{}/v1/attachments/{hash}?doc={doc}", server.url);
        async move {
            let response = http.get(url).bearer_auth(token).send().await.expect("answer");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    let denied = (403, "out_of_scope".to_owned());
    // Another grid's worker: neither the visit photo nor the request photo.
    assert_eq!(fetch(token(&outsider), home.into(), visit_photo.hash).await, denied);
    assert_eq!(fetch(token(&outsider), req.into(), request_photo.hash).await, denied);
    // The department, before the request is dispatched to it: nothing.
    assert_eq!(fetch(token(&bureau), req.into(), request_photo.hash).await, denied);
    // Naming a document in scope that does not reference the attachment does not help.
    assert_eq!(fetch(token(&phone), req.into(), visit_photo.hash).await, denied);
    // Uploading for a document out of scope is refused the same way.
    let response = http
        .put(format!("{}/v1/attachments/{}/upload?doc={home}&offset=0", server.url, visit_photo.hash))
        .bearer_auth(token(&outsider))
        .header("x-chunk-sha256", ContentHash::of(b"x").to_string())
        .body("x")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 403);

    // Dispatched to the department: it gets the request and its photo, never the visit photo.
    phone
        .add_request_event(
            req,
            &NewEvent {
                action: EventAction::Dispatched { department: civil },
                note: String::new(),
                at: t(5),
            },
        )
        .expect("dispatch");
    server.client().sync(&mut phone).await.expect("records");
    server.client().sync(&mut bureau).await.expect("records");
    let got = transfer(&server.client(), &mut bureau).await.expect("download");
    assert_eq!(got.downloaded, vec![request_photo.hash]);
    assert_eq!(fetch(token(&bureau), home.into(), visit_photo.hash).await, denied);
    assert!(bureau.attachment(&visit_photo.hash).expect("lookup").is_none());
    server.client().sync(&mut outsider).await.expect("records");
    assert!(outsider.attachment_downloads().expect("none").is_empty());
}

#[tokio::test]
async fn oversized_attachments_get_a_clear_refusal_and_wifi_only_waits() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("small.toml");
    std::fs::write(&config, "max_attachment_bytes = 200000\n").expect("config");
    let server = TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    );
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let big = phone.attach_to_visit(home, vid, &photo(6), t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");

    // The Wi-Fi-only setting holds photo uploads back off Wi-Fi; records went anyway.
    phone.set_attachments_wifi_only(true).expect("setting");
    let mut access = &mut phone;
    let cellular = TransferOptions { on_wifi: false, ..options() };
    let held = server
        .client()
        .transfer_attachments(&mut access, &cellular, &mut NoTransferObserver)
        .await
        .expect("pass");
    assert_eq!((held.waiting_for_wifi, held.bytes_up), (1, 0));

    // On Wi-Fi it goes, and this server refuses more than 200,000 bytes, in both languages.
    let refused = transfer(&server.client(), &mut phone).await.expect("pass");
    assert_eq!(refused.failed, vec![(big.hash, "too_large".to_owned())]);
    let mut access = &mut phone;
    let transfer_one = phone_upload(&server, &mut access).await;
    let Err(ClientError::AttachmentRefused { status, message, .. }) = transfer_one else {
        panic!("{transfer_one:?}")
    };
    assert_eq!(status, 413);
    assert!(message.contains("附件超过") && message.contains("200000 bytes"), "{message}");
    assert_eq!(state_of(&phone, home.into(), &big.hash), AttachmentState::LocalOnly);
}

async fn phone_upload(server: &TestServer, access: &mut &mut Replica) -> Result<u64, ClientError> {
    let pending = access.attachment_uploads().expect("pending");
    server.client().upload_attachment(access, &pending[0], CHUNK, &mut NoTransferObserver).await
}

#[tokio::test]
async fn thumbnails_only_on_a_slow_link_then_the_full_photo_on_demand() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let mut office = device(&server, dir.path(), "supervisor", boss).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let file = real_jpeg();
    let reference = phone.attach_to_visit(home, vid, &file, t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    transfer(&server.client(), &mut phone).await.expect("upload");
    server.client().sync(&mut office).await.expect("records");

    // The server made a thumbnail when the upload completed: a few KB instead of the photo.
    let mut access = &mut office;
    let thumb =
        server.client().fetch_thumbnail(&mut access, home.into(), &reference.hash).await.expect("thumbnail");
    let small = image::load_from_memory(&thumb).expect("a picture");
    assert_eq!((small.width(), small.height()), (160, 120));
    assert!(thumb.len() * 10 < file.bytes.len(), "{} vs {}", thumb.len(), file.bytes.len());
    // Random bytes labelled as a photo get no thumbnail, and say so.
    let odd = phone.attach_to_visit(home, vid, &photo(8), t(3)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    transfer(&server.client(), &mut phone).await.expect("upload");
    let mut access = &mut phone;
    let none = server.client().fetch_thumbnail(&mut access, home.into(), &odd.hash).await;
    assert!(matches!(none, Err(ClientError::AttachmentRefused { status: 404, .. })), "{none:?}");

    let mut access = &mut office;
    let on_demand = TransferOptions { downloads: Downloads::OnDemand, ..options() };
    let pass = server
        .client()
        .transfer_attachments(&mut access, &on_demand, &mut NoTransferObserver)
        .await
        .expect("pass");
    assert_eq!(pass.bytes_down, 0);
    assert_eq!(state_of(&office, home.into(), &reference.hash), AttachmentState::RemoteOnly);
    let pending = office.attachment_downloads().expect("pending");
    assert_eq!(pending.len(), 1, "the second photo is on a change the office has not synced yet");
    let mut access = &mut office;
    let got = server
        .client()
        .download_attachment(&mut access, &pending[0], CHUNK, &mut NoTransferObserver)
        .await
        .expect("full");
    assert_eq!(got, file.bytes.len() as u64);
    assert_eq!(office.attachment_bytes(&reference.hash).expect("whole"), file.bytes);
}

/// Signs a staff member in over plain HTTP; returns the session cookie header value.
async fn staff_session(server: &TestServer, member: doorstep_core::ids::MemberId, login: &str) -> String {
    let password = "correct horse battery staple";
    let hash = doorstep_server::auth::hash_password(password).expect("hash");
    server
        .storage()
        .create_staff_account(member, login, &hash, doorstep_server::http::now())
        .expect("account");
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
            v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned())
        })
    };
    let form = http.get(format!("{}/dashboard/sign-in", server.url)).send().await.expect("form");
    let pre = cookie(&form, "dsk_pre").expect("pre-session");
    let signed_in = http
        .post(format!("{}/dashboard/sign-in", server.url))
        .header("cookie", format!("dsk_pre={pre}"))
        .form(&[("login", login), ("password", password), ("csrf", pre.as_str())])
        .send()
        .await
        .expect("sign in");
    format!("dsk_session={}", cookie(&signed_in, "dsk_session").expect("session"))
}

#[tokio::test]
async fn the_dashboard_shows_photos_and_places_and_exports_link_them() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let boss = member(&*storage, "李主任", Role::Supervisor, &[g]);
    let civil = Code::new("civil_affairs").expect("code");
    let staff = storage
        .create_member("民政局小刘", Role::DepartmentStaff, Some(&civil), doorstep_server::http::now())
        .expect("staff");
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(g, "301", "陈奶奶"), t(0)).expect("household");
    let fix = LocationFix { latitude: 30.5928, longitude: 114.3055, accuracy_m: 8.0, at: t(1) };
    let vid = phone.record_visit_located(home, &visit(1), Some(&fix)).expect("visit");
    let picture = real_jpeg();
    let visit_photo = phone.attach_to_visit(home, vid, &picture, t(2)).expect("attach");
    let req = phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "独居老人家中漏水".into(),
            urgency: Urgency::Normal,
            at: t(3),
        })
        .expect("request");
    let raised = phone.request(req).expect("request").events[0].id;
    let request_photo = phone.attach_to_event(req, raised, &photo(9), t(4)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    transfer(&server.client(), &mut phone).await.expect("photos");

    let http = reqwest::Client::new();
    let get = |cookie: String, path: String| {
        let http = http.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let response = http.get(url).header("cookie", cookie).send().await.expect("answer");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("body").to_vec())
        }
    };
    let supervisor = staff_session(&server, boss, "li").await;
    let (status, page) = get(supervisor.clone(), format!("/dashboard/households/{home}")).await;
    let page = String::from_utf8(page).expect("html");
    assert_eq!(status, 200);
    let visit_link = format!("/dashboard/attachments/{home}/{}", visit_photo.hash);
    assert!(page.contains(&format!("src=\"{visit_link}?thumbnail=1\"")), "{page}");
    assert!(page.contains("data-lat=\"30.592800\" data-lon=\"114.305500\""), "{page}");
    let (_, request_page) = get(supervisor.clone(), format!("/dashboard/requests/{req}")).await;
    let request_page = String::from_utf8(request_page).expect("html");
    let request_link = format!("/dashboard/attachments/{req}/{}", request_photo.hash);
    assert!(request_page.contains(&request_link) && request_page.contains("id=\"household-location\""));

    // The links serve the photo and its thumbnail.
    assert_eq!(get(supervisor.clone(), visit_link.clone()).await, (200, picture.bytes.clone()));
    let (status, thumb) = get(supervisor.clone(), format!("{visit_link}?thumbnail=1")).await;
    assert_eq!(status, 200);
    assert!(image::load_from_memory(&thumb).expect("thumbnail").width() <= 160);

    // Exports carry the links (relative: no public URL is configured, and the request's `Host`
    // is never used) and the place.
    let (_, csv) = get(supervisor.clone(), "/dashboard/export/visits.csv".into()).await;
    let csv = String::from_utf8(csv).expect("utf-8");
    assert!(csv.contains(&visit_link) && csv.contains("30.592800,114.305500 ±8m"), "{csv}");
    assert!(!csv.contains(&server.url), "{csv}");
    let (_, ledger) = get(supervisor.clone(), "/dashboard/export/ledger.csv".into()).await;
    assert!(String::from_utf8(ledger).expect("utf-8").contains(&request_link));

    // Department staff: not before dispatch, and never the household's visit photo.
    let bureau = staff_session(&server, staff, "liu").await;
    assert_eq!(get(bureau.clone(), request_link.clone()).await.0, 404);
    phone
        .add_request_event(
            req,
            &NewEvent {
                action: EventAction::Dispatched { department: civil },
                note: String::new(),
                at: t(5),
            },
        )
        .expect("dispatch");
    server.client().sync(&mut phone).await.expect("records");
    assert_eq!(get(bureau.clone(), request_link).await.0, 200);
    assert_eq!(get(bureau, visit_link).await.0, 404);
}
/// Writes, as the server would, a reference to `reference` into a visit of household `home`
/// (what a device that only knows a file's hash can put into its own document).
fn reference_by_hash(
    storage: &dyn Storage,
    home: doorstep_core::ids::HouseholdId,
    vid: doorstep_core::ids::VisitId,
    reference: &doorstep_core::model::AttachmentRef,
) {
    let mut doc = storage.document(home.into()).expect("read").expect("stored");
    doorstep_core::doc::household::attach_to_visit(&mut doc, home, vid, reference).expect("reference");
    storage.write_server_documents(&mut [(home.into(), doc)], doorstep_server::http::now()).expect("write");
}

/// `GET /v1/attachments/{hash}?doc=…` with a device's token: status and body.
async fn raw_download(
    server: &TestServer,
    phone: &Replica,
    doc: DocumentId,
    hash: &ContentHash,
) -> (u16, Vec<u8>) {
    let token = phone.enrolment().expect("e").expect("enrolled").token;
    let response = reqwest::Client::new()
        .get(format!("{}/v1/attachments/{hash}?doc={doc}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer");
    (response.status().as_u16(), response.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn knowing_a_files_hash_from_another_grid_gives_no_access_to_it() {
    let server = TestServer::start();
    let storage = server.storage();
    let (a, b) = (grid(&*storage, "甲网格"), grid(&*storage, "乙网格"));
    let dir = devices_dir();
    let mut alice = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[a])).await;
    let mut bob = device(&server, dir.path(), "b", member(&*storage, "乙", Role::GridWorker, &[b])).await;
    let boss_b = member(&*storage, "乙主任", Role::Supervisor, &[b]);
    let home_a = alice.create_household(&household(a, "101", "陈奶奶"), t(0)).expect("household");
    let visit_a = alice.record_visit(home_a, &visit(1)).expect("visit");
    let secret = photo(21);
    let reference = alice.attach_to_visit(home_a, visit_a, &secret, t(2)).expect("attach");
    server.client().sync(&mut alice).await.expect("records");
    transfer(&server.client(), &mut alice).await.expect("photo");

    // Grid B names A's photo by its hash from B's own household.
    let home_b = bob.create_household(&household(b, "201", "赵大爷"), t(0)).expect("household");
    let visit_b = bob.record_visit(home_b, &visit(1)).expect("visit");
    server.client().sync(&mut bob).await.expect("records");
    reference_by_hash(&*storage, home_b, visit_b, &reference);
    server.client().sync(&mut bob).await.expect("the reference arrives");
    let (status, body) = raw_download(&server, &bob, home_b.into(), &reference.hash).await;
    // The answer is the one for bytes nobody uploaded yet: it does not even tell they exist.
    assert_eq!(status, 404, "B downloaded A's photo by naming its hash");
    assert_ne!(body, secret.bytes);
    // Nor through the dashboard, for B's supervisor.
    let cookie = staff_session(&server, boss_b, "zhao").await;
    let response = reqwest::Client::new()
        .get(format!("{}/dashboard/attachments/{home_b}/{}", server.url, reference.hash))
        .header("cookie", cookie)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 404, "B's supervisor saw A's photo");
    // A still gets its own photo.
    assert_eq!(
        raw_download(&server, &alice, home_a.into(), &reference.hash).await,
        (200, secret.bytes.clone())
    );

    // A device of B that really holds the bytes proves it by sending them (the server already
    // has them), and from then on B's household serves them.
    let mut carol = device(&server, dir.path(), "c", member(&*storage, "丙", Role::GridWorker, &[b])).await;
    server.client().sync(&mut carol).await.expect("records");
    let visit_c = carol.record_visit(home_b, &visit(3)).expect("visit");
    let same = carol.attach_to_visit(home_b, visit_c, &secret, t(4)).expect("attach");
    assert_eq!(same.hash, reference.hash);
    server.client().sync(&mut carol).await.expect("records");
    let report = transfer(&server.client(), &mut carol).await.expect("upload");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(
        raw_download(&server, &bob, home_b.into(), &reference.hash).await,
        (200, secret.bytes.clone())
    );
}

#[tokio::test]
async fn a_wrong_declared_size_never_blocks_the_real_bytes() {
    let server = TestServer::start();
    let storage = server.storage();
    let (a, b) = (grid(&*storage, "甲网格"), grid(&*storage, "乙网格"));
    let dir = devices_dir();
    let mut alice = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[a])).await;
    let mut mallory = device(&server, dir.path(), "m", member(&*storage, "乙", Role::GridWorker, &[b])).await;
    let real = photo(22);
    let hash = ContentHash::of(&real.bytes);

    // Mallory references the hash first, with a wrong size, and starts an upload of it.
    let home_m = mallory.create_household(&household(b, "201", "赵大爷"), t(0)).expect("household");
    let visit_m = mallory.record_visit(home_m, &visit(1)).expect("visit");
    server.client().sync(&mut mallory).await.expect("records");
    let wrong = doorstep_core::model::AttachmentRef {
        hash,
        size: 10,
        media_type: "image/jpeg".into(),
        name: "x.jpg".into(),
        added_at: t(1),
    };
    reference_by_hash(&*storage, home_m, visit_m, &wrong);
    let token = mallory.enrolment().expect("e").expect("enrolled").token;
    let chunk = vec![0x42u8];
    let response = reqwest::Client::new()
        .put(format!("{}/v1/attachments/{hash}/upload?doc={home_m}&offset=0", server.url))
        .bearer_auth(&token)
        .header("x-chunk-sha256", ContentHash::of(&chunk).to_string())
        .body(chunk)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200, "a first chunk under the wrong size is stored");

    // The real photo still goes up whole and is served.
    let home_a = alice.create_household(&household(a, "101", "陈奶奶"), t(0)).expect("household");
    let visit_a = alice.record_visit(home_a, &visit(1)).expect("visit");
    let reference = alice.attach_to_visit(home_a, visit_a, &real, t(2)).expect("attach");
    assert_eq!(reference.hash, hash);
    server.client().sync(&mut alice).await.expect("records");
    let report = transfer(&server.client(), &mut alice).await.expect("upload");
    assert!(report.failed.is_empty(), "the real upload was blocked: {:?}", report.failed);
    assert_eq!(state_of(&alice, home_a.into(), &hash), AttachmentState::Synced);
    assert_eq!(raw_download(&server, &alice, home_a.into(), &hash).await, (200, real.bytes.clone()));
}

#[tokio::test]
async fn a_device_over_its_attachment_quota_is_refused_with_a_clear_code() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("quota.toml");
    std::fs::write(&config, "attachment_quota_bytes_per_device = 500000\n").expect("config");
    let server = TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--config", config.to_str().expect("path")],
    );
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    let home = phone.create_household(&household(g, "101", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let first = phone.attach_to_visit(home, vid, &photo(31), t(2)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    assert!(transfer(&server.client(), &mut phone).await.expect("pass").failed.is_empty());
    let second = phone.attach_to_visit(home, vid, &photo(32), t(3)).expect("attach");
    server.client().sync(&mut phone).await.expect("records");
    let report = transfer(&server.client(), &mut phone).await.expect("pass");
    assert_eq!(report.failed, vec![(second.hash, "quota_exceeded".to_owned())]);
    let mut access = &mut phone;
    let refused = phone_upload(&server, &mut access).await;
    let Err(ClientError::AttachmentRefused { status, message, .. }) = refused else { panic!("{refused:?}") };
    assert_eq!(status, 413);
    assert!(message.contains("配额") && message.contains("quota"), "{message}");
    assert_eq!(state_of(&phone, home.into(), &first.hash), AttachmentState::Synced);
    assert_eq!(state_of(&phone, home.into(), &second.hash), AttachmentState::LocalOnly);
    // Another device (in another grid, so it does not wait for the refused photo) has a quota
    // of its own.
    let g2 = grid(&*storage, "第二网格");
    let mut other = device(&server, dir.path(), "b", member(&*storage, "乙", Role::GridWorker, &[g2])).await;
    let home2 = other.create_household(&household(g2, "102", "李大爷"), t(0)).expect("household");
    let vid2 = other.record_visit(home2, &visit(1)).expect("visit");
    other.attach_to_visit(home2, vid2, &photo(33), t(2)).expect("attach");
    server.client().sync(&mut other).await.expect("records");
    assert!(transfer(&server.client(), &mut other).await.expect("pass").failed.is_empty());
}

#[tokio::test]
async fn a_photo_in_two_records_is_uploaded_once_and_served_through_both() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage, "第一网格");
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "a", member(&*storage, "甲", Role::GridWorker, &[g])).await;
    let home = phone.create_household(&household(g, "101", "陈奶奶"), t(0)).expect("household");
    let vid = phone.record_visit(home, &visit(1)).expect("visit");
    let picture = photo(41);
    let first = phone.attach_to_visit(home, vid, &picture, t(2)).expect("attach");
    let req = phone
        .raise_request(&NewRequest {
            household: Some(home),
            grid: None,
            category: "elderly_care".into(),
            description: "漏水".into(),
            urgency: Urgency::Normal,
            at: t(3),
        })
        .expect("request");
    let raised = phone.request(req).expect("request").events[0].id;
    let second = phone.attach_to_event(req, raised, &picture, t(4)).expect("attach");
    assert_eq!(first.hash, second.hash);
    server.client().sync(&mut phone).await.expect("records");
    let report = transfer(&server.client(), &mut phone).await.expect("upload");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.bytes_up, PHOTO_BYTES as u64, "the bytes went up once");
    for doc in [DocumentId::from(home), DocumentId::from(req)] {
        assert_eq!(
            raw_download(&server, &phone, doc, &first.hash).await,
            (200, picture.bytes.clone()),
            "{doc}"
        );
    }
}
