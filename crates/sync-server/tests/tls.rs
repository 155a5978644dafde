//! HTTPS and WSS with `--tls-cert/--tls-key` against the server binary: the server's own TLS
//! handshake, plain HTTP refused on the same port, and `doorstep-client` enrolling, syncing and
//! listening over TLS when it trusts the county's certificate, and refusing (with nothing lost)
//! when it does not.

mod support;

use std::path::Path;
use std::sync::Arc;

use doorstep_client::{Client, ClientError, Trust};
use doorstep_core::ids::{GridId, MemberId};
use doorstep_core::model::{NewVisit, VisitKind};
use doorstep_core::store::Replica;
use doorstep_server::scope::Role;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A server certificate with its key, and the PEM a device is told to trust for it.
struct Certified {
    cert_pem: String,
    key_pem: String,
    trust_pem: String,
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: the device trusts it directly.
fn self_signed() -> Certified {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("certificate");
    let cert_pem = certified.cert.pem();
    Certified { trust_pem: cert_pem.clone(), cert_pem, key_pem: certified.signing_key.serialize_pem() }
}

/// A county's private CA and a server certificate it issued: the device trusts the CA only.
fn issued_by_a_private_ca() -> Certified {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "城关县网格化服务中心 CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let server_key = rcgen::KeyPair::generate().expect("server key");
    let server = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    Certified { cert_pem: server.pem(), key_pem: server_key.serialize_pem(), trust_pem: ca_cert.pem() }
}

/// Starts the server binary with this certificate; the files live in its data directory.
fn serve(certified: &Certified) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &certified.cert_pem).expect("write cert");
    std::fs::write(&key, &certified.key_pem).expect("write key");
    let (cert, key) = (cert.to_str().expect("path").to_owned(), key.to_str().expect("path").to_owned());
    let server = TestServer::start_with(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    server
}

fn trusting(server: &TestServer, certified: &Certified) -> Client {
    Client::with_trust(&server.url, Trust::with_ca_pem(&certified.trust_pem).expect("a valid CA"))
        .expect("client")
}

fn county(server: &TestServer) -> (GridId, MemberId, MemberId) {
    let storage = server.storage();
    let grid = storage.create_grid("第一网格", "幸福社区", "城关街道").expect("grid");
    let worker = member(&*storage, "王芳", Role::GridWorker, &[grid]);
    let supervisor = member(&*storage, "李主任", Role::Supervisor, &[grid]);
    (grid, worker, supervisor)
}

async fn enrolled(server: &TestServer, client: &Client, dir: &Path, name: &str, member: MemberId) -> Replica {
    let mut replica = Replica::open(dir.join(format!("{name}.db"))).expect("replica");
    client
        .enrol(&mut replica, &code_for(server.storage().as_ref(), member), name)
        .await
        .expect("enrol over https");
    replica
}

fn visit(notes: &str) -> NewVisit {
    NewVisit { at: t(1), kind: VisitKind::Routine, notes: notes.into(), needs: vec![] }
}

#[tokio::test]
async fn the_server_speaks_tls_with_the_given_certificate() {
    let certified = self_signed();
    let server = serve(&certified);
    let addr = server.url.trim_start_matches("https://").to_owned();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(certified.cert_pem.as_bytes()).expect("der");
    roots.add(der).expect("trust the test certificate");
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with the configured certificate");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new().get(format!("http://{addr}/healthz")).send().await;
    assert!(plain.is_err() || !plain.expect("response").status().is_success());
}

#[tokio::test]
async fn a_device_trusting_a_self_signed_certificate_enrols_and_syncs_over_https() {
    let certified = self_signed();
    let server = serve(&certified);
    let (grid, worker, supervisor) = county(&server);
    let dir = devices_dir();
    let client = trusting(&server, &certified);
    let mut phone = enrolled(&server, &client, dir.path(), "worker", worker).await;
    let stored = phone.enrolment().expect("read").expect("enrolled");
    assert_eq!(stored.server_ca_pem.as_deref(), Some(certified.trust_pem.as_str()), "the CA is remembered");

    let home = phone.create_household(&household(grid, "501", "赵桂兰"), t(0)).expect("household");
    phone.record_visit(home, &visit("血压正常")).expect("visit");
    // Later calls need only the replica: the enrolment carries the server and its CA.
    let report =
        Client::for_replica(&phone).expect("client").sync(&mut phone).await.expect("sync over https");
    assert_eq!(report.uploaded_changes, 2);
    assert!(report.verified);
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);

    let mut office = enrolled(&server, &client, dir.path(), "office", supervisor).await;
    let report = Client::for_replica(&office).expect("client").sync(&mut office).await.expect("sync");
    assert_eq!(report.received_docs, 1);
    assert_eq!(office.household(home).expect("synced").visits.len(), 1);
}

#[tokio::test]
async fn a_device_trusting_the_countys_private_ca_syncs_and_hears_pushes_over_wss() {
    let certified = issued_by_a_private_ca();
    let server = serve(&certified);
    let (grid, worker, supervisor) = county(&server);
    let dir = devices_dir();
    let client = trusting(&server, &certified);
    let mut phone = enrolled(&server, &client, dir.path(), "worker", worker).await;
    let mut office = enrolled(&server, &client, dir.path(), "office", supervisor).await;

    let listening = Client::for_replica(&office).expect("client");
    let mut live =
        listening.connect_live(&Client::device_token(&office).expect("token")).await.expect("wss connects");
    live.sync(&mut office).await.expect("first round over wss");
    let home = phone.create_household(&household(grid, "9", "冯奶奶"), t(0)).expect("household");
    Client::for_replica(&phone).expect("client").sync(&mut phone).await.expect("sync over https");
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(30), live.next_push(&mut office))
        .await
        .expect("a push within 30 s")
        .expect("push over wss");
    assert_eq!(pushed.received_docs, 1);
    assert_eq!(office.household(home).expect("pushed").residents[0].name, "冯奶奶");
}

#[tokio::test]
async fn a_device_without_the_ca_is_told_the_certificate_is_untrusted_and_loses_nothing() {
    let certified = self_signed();
    let server = serve(&certified);
    let (grid, worker, _) = county(&server);
    let dir = devices_dir();

    // Enrolling without the CA is refused before any code is sent; the replica stays unenrolled.
    let web_roots_only = Client::new(&server.url);
    let mut stranger = Replica::open(dir.path().join("stranger.db")).expect("replica");
    let code = code_for(server.storage().as_ref(), worker);
    let refused = web_roots_only.enrol(&mut stranger, &code, "stranger").await;
    assert!(
        matches!(&refused, Err(ClientError::UntrustedCertificate(why)) if why.contains("CA")),
        "{refused:?}"
    );
    assert_eq!(stranger.enrolment().expect("read"), None);

    // A device with pending work meets a server whose certificate it does not trust.
    let mut phone = enrolled(&server, &trusting(&server, &certified), dir.path(), "worker", worker).await;
    let home = phone.create_household(&household(grid, "7", "周爷爷"), t(0)).expect("household");
    phone.record_visit(home, &visit("停电了也要记")).expect("visit");
    let refused = web_roots_only.sync(&mut phone).await;
    assert!(matches!(refused, Err(ClientError::UntrustedCertificate(_))), "{refused:?}");
    let token = Client::device_token(&phone).expect("token");
    let refused = web_roots_only.connect_live(&token).await.map(|_| ());
    assert!(matches!(refused, Err(ClientError::UntrustedCertificate(_))), "{refused:?}");
    assert_eq!(phone.unsynced_change_count().expect("count"), 2, "nothing was lost");
    assert_eq!(phone.household(home).expect("still here").visits.len(), 1);

    // The same device, trusting the county again, uploads everything.
    let report = Client::for_replica(&phone).expect("client").sync(&mut phone).await.expect("sync");
    assert_eq!(report.uploaded_changes, 2);
    assert_eq!(phone.unsynced_change_count().expect("count"), 0);

    // An unreachable https server is a network error, not a certificate one.
    let url = server.url.clone();
    drop(server);
    let down = Client::for_replica(&phone).expect("client").sync(&mut phone).await;
    assert!(matches!(down, Err(ClientError::Network(_))), "{url}: {down:?}");
}
