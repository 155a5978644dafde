//! HTTPS with `--tls-cert/--tls-key`: a real TLS handshake with rustls against the server
//! binary, and plain HTTP refused on the same port.

mod support;

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn the_server_speaks_tls_with_the_given_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let keys = tempfile::tempdir().expect("tempdir");
    let cert = keys.path().join("cert.pem");
    let key = keys.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let server = support::TestServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--tls-cert", cert.to_str().expect("path"), "--tls-key", key.to_str().expect("path")],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let addr = server.url.trim_start_matches("https://").to_owned();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("trust the test certificate");
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
