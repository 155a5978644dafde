//! The demo county: every request state present, the printed codes work, and each role sees
//! its own scope of it (grid worker, supervisor, department staff).

mod support;

use doorstep_core::doc::DocumentKind;
use doorstep_core::lifecycle::RequestStatus;
use doorstep_core::store::{Replica, RequestFilter};
use doorstep_server::demo;
use doorstep_server::scope::Role;
use support::*;

#[tokio::test]
async fn the_demo_county_has_every_state_and_each_role_sees_its_scope() {
    let server = TestServer::start();
    let storage = server.storage();
    let summary =
        demo::seed_sized(&*storage, doorstep_server::http::now(), 16).expect("seed").expect("empty before");
    assert_eq!(summary.households, 12 * 16);
    assert_eq!(summary.requests, 12 * 50);
    assert!(
        demo::seed_sized(&*storage, doorstep_server::http::now(), 16).expect("again").is_none(),
        "seeds once"
    );

    let login = |role: Role| summary.logins.iter().find(|l| l.role == role).expect("a login for the role");
    let dir = devices_dir();
    let mut worker = Replica::open(dir.path().join("worker.db")).expect("replica");
    server
        .client()
        .enrol(&mut worker, &login(Role::GridWorker).code, "worker")
        .await
        .expect("printed code works");
    let report = server.client().sync(&mut worker).await.expect("sync");
    assert!(report.verified);
    // One grid: its 16 households and its 50 requests.
    assert_eq!(report.received_docs, 16 + 50);
    let statuses: std::collections::HashSet<RequestStatus> = worker
        .list_requests(&RequestFilter::default())
        .expect("ledger")
        .into_iter()
        .map(|r| r.status)
        .collect();
    for status in [
        RequestStatus::Raised,
        RequestStatus::Accepted,
        RequestStatus::Dispatched,
        RequestStatus::InProgress,
        RequestStatus::Resolved,
        RequestStatus::FollowedUp,
        RequestStatus::Closed,
        RequestStatus::Cancelled,
    ] {
        assert!(statuses.contains(&status), "{status} missing from the demo ledger");
    }

    let mut supervisor = Replica::open(dir.path().join("supervisor.db")).expect("replica");
    server.client().enrol(&mut supervisor, &login(Role::Supervisor).code, "office").await.expect("enrol");
    let report = server.client().sync(&mut supervisor).await.expect("sync");
    assert_eq!(report.received_docs, 4 * (16 + 50), "a community of four grids");

    // Department staff see only requests dispatched to their department, never households.
    let mut staff = Replica::open(dir.path().join("staff.db")).expect("replica");
    server.client().enrol(&mut staff, &login(Role::DepartmentStaff).code, "bureau").await.expect("enrol");
    let report = server.client().sync(&mut staff).await.expect("sync");
    assert!(report.verified);
    let docs = staff.documents().expect("docs");
    assert!(!docs.is_empty());
    assert!(docs.iter().all(|(_, kind)| *kind == DocumentKind::Request));
    for (id, _) in docs {
        let request = staff.request(id.as_request()).expect("request");
        assert_eq!(request.derived.department.as_ref().map(|d| d.as_str()), Some("civil_affairs"));
    }
}

#[tokio::test]
async fn every_demo_document_passes_the_field_rules_phones_uploads_are_checked_against() {
    let server = TestServer::start();
    let storage = server.storage();
    demo::seed_sized(&*storage, doorstep_server::http::now(), 4).expect("seed").expect("empty before");
    let dir = devices_dir();
    let admin = member(&*storage, "管理员", Role::Admin, &[]);
    let mut replica = device(&server, dir.path(), "admin", admin).await;
    server.client().sync(&mut replica).await.expect("sync");
    let docs = replica.documents().expect("docs");
    assert_eq!(docs.len(), 12 * (4 + 50));
    for (id, kind) in docs {
        let doc = storage.document(id).expect("read").expect("stored");
        assert_eq!(doorstep_core::doc::check::document(&doc, id, kind), Ok(()), "{kind:?} {id}");
    }
}
