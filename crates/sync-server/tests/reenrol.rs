//! Enrolling a replica again (PROTOCOL §5.1.1): the new device replaces the old one on proof of
//! its token, and the unsynced changes written with the old device's actor still upload,
//! credited to the same member. An actor id alone proves nothing. Runs on SQLite, and on
//! PostgreSQL with `DOORSTEP_TEST_BACKEND=postgres`.

mod support;

use doorstep_client::ClientError;
use doorstep_core::ids::GridId;
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::sync::frame::encode_client;
use doorstep_core::sync::message::{ClientMessage, ErrorCode, ServerMessage, SyncRequest, Upload, wire_id};
use doorstep_server::scope::Role;
use doorstep_server::storage::{Authenticated, Storage};
use serde_bytes::ByteBuf;
use support::*;

fn grid(storage: &dyn Storage) -> GridId {
    storage.create_grid("幸福社区第一网格", "幸福社区", "城关街道").expect("grid")
}

fn visit(notes: &str) -> NewVisit {
    NewVisit { at: t(1), kind: VisitKind::Routine, notes: notes.into(), needs: vec![] }
}

#[tokio::test]
async fn enrolling_again_uploads_the_old_devices_unsynced_changes_for_the_same_member() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage);
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let first = phone.enrolment().expect("read").expect("enrolled");
    let home = phone.create_household(&household(g, "101", "李奶奶"), t(0)).expect("household");
    server.client().sync(&mut phone).await.expect("sync");
    phone.record_visit(home, &visit("换证书前")).expect("visit");
    let old_actor = phone.actor_id().clone();

    let code = code_for(&*storage, worker);
    let second = server.client().enrol(&mut phone, &code, "phone").await.expect("enrols again");
    assert_ne!(second.device, first.device);
    assert_ne!(phone.actor_id(), &old_actor, "a new device writes with a new actor");
    // The old device is replaced: its token is refused from now on.
    assert!(matches!(
        storage.authenticate(&doorstep_server::auth::hash_secret(&first.token)).expect("auth"),
        Authenticated::Revoked(_)
    ));
    phone.record_visit(home, &visit("换证书后")).expect("visit");
    let report = server.client().sync(&mut phone).await.expect("sync");
    assert_eq!(report.uploaded_changes, 2);
    assert!(report.held_back.is_empty() && report.verified, "{report:?}");
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);

    let mut office = device(&server, dir.path(), "office", worker).await;
    server.client().sync(&mut office).await.expect("sync");
    let visits = office.household(home).expect("household").visits;
    assert_eq!(visits.len(), 2);
    assert!(visits.iter().all(|v| v.by == worker), "credited to the member");

    // Enrolling a third time carries both earlier actors along.
    phone.record_visit(home, &visit("第三台")).expect("visit");
    let code = code_for(&*storage, worker);
    server.client().enrol(&mut phone, &code, "phone").await.expect("enrols a third time");
    assert_eq!(server.client().sync(&mut phone).await.expect("sync").uploaded_changes, 1);
}

#[tokio::test]
async fn an_actor_id_alone_lets_no_other_device_write_for_it() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage);
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let home = phone.create_household(&household(g, "101", "李奶奶"), t(0)).expect("household");
    server.client().sync(&mut phone).await.expect("sync");
    phone.record_visit(home, &visit("未同步")).expect("visit");
    let change = phone.unsynced_changes(home.into()).expect("changes").remove(0);

    // Another device of the same member, enrolled without the phone's token, sends the change.
    let other = device(&server, dir.path(), "other", worker).await;
    let token = other.enrolment().expect("read").expect("enrolled").token;
    let upload = ClientMessage::Sync(SyncRequest {
        uploads: vec![Upload { doc: wire_id(home.into()), changes: vec![ByteBuf::from(change)] }],
        ..SyncRequest::default()
    });
    let reply = server.client().post_frame(&token, encode_client(&upload)).await.expect("reply");
    match doorstep_client::decode_reply(&reply).expect("frame") {
        ServerMessage::Error(e) => assert_eq!(e.code, ErrorCode::ForgedActor),
        other => panic!("accepted a change by another device's actor: {other:?}"),
    }
}

#[tokio::test]
async fn a_replica_cannot_be_enrolled_for_another_member_or_after_revocation() {
    let server = TestServer::start();
    let storage = server.storage();
    let g = grid(&*storage);
    let worker = member(&*storage, "王芳", Role::GridWorker, &[g]);
    let colleague = member(&*storage, "张伟", Role::GridWorker, &[g]);
    let dir = devices_dir();
    let mut phone = device(&server, dir.path(), "phone", worker).await;
    let enrolled = phone.enrolment().expect("read").expect("enrolled");
    phone.create_household(&household(g, "101", "李奶奶"), t(0)).expect("household");

    let code = code_for(&*storage, colleague);
    let refused = server.client().enrol(&mut phone, &code, "phone").await.unwrap_err();
    assert!(matches!(refused, ClientError::Refused { code: ErrorCode::MalformedFrame, .. }), "{refused:?}");
    assert_eq!(phone.enrolment().expect("read").expect("still enrolled").device, enrolled.device);
    assert_eq!(phone.unsynced_change_count().expect("count"), 1, "nothing lost");

    server.admin(&["device", "revoke", "--device", &enrolled.device.to_string()]);
    let code = code_for(&*storage, worker);
    let revoked = server.client().enrol(&mut phone, &code, "phone").await.unwrap_err();
    assert!(matches!(revoked, ClientError::Refused { code: ErrorCode::DeviceRevoked, .. }), "{revoked:?}");
    assert!(phone.enrolment().expect("read").is_none() && phone.member().is_none());
    assert_eq!(phone.documents().expect("docs").len(), 0, "a revoked device's data is deleted");
    // The code was not used up: the replica enrols with it as a new device.
    server.client().enrol(&mut phone, &code, "phone").await.expect("enrols");
}
