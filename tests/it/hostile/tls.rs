//! Hostile certificates through `sshfleet scan`: a CA the scan trusts (`--ca-file`) signing
//! leaves that are expired or for another host, and a camera that speaks only TLS 1.0. Each
//! is a `tls_error` that says why, and no request is sent before trust.
//! (A self-signed camera: `scan_tls::self_signed_camera_fails_verification_by_default`.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::{json, scan, within, Conn, Hostile};

const T: u64 = 2;

/// A CA written to `dir/ca.pem` and a TLS acceptor serving a leaf it signed for `names`,
/// valid from `from` to `until` (years).
fn acceptor(dir: &Path, names: &[&str], from: i32, until: i32) -> TlsAcceptor {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "hostile CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca.self_signed(&ca_key).expect("CA");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("ca.pem");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names).expect("names");
    leaf.not_before = date_time_ymd(from, 1, 1);
    leaf.not_after = date_time_ymd(until, 1, 1);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).expect("leaf");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .expect("config");
    TlsAcceptor::from(Arc::new(config))
}

/// Answers anything with a well-formed reading: a scan that got through would be `ok`.
async fn camera(acceptor: TlsAcceptor) -> Hostile {
    Hostile::start_tls(acceptor, |mut conn: Conn| async move {
        while conn.request().await.is_some() {
            let body = r#"{"data":{"apiVersions":["1.0"],"enabled":false}}"#;
            if !conn.send(&json(body)).await {
                return;
            }
        }
    })
    .await
}

async fn scan_trusting(url: &str, dir: &Path) -> super::Scan {
    let ca = dir.join("ca.pem").display().to_string();
    scan(url, T, &["--ca-file", &ca]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_a_tls_error_that_says_expired() {
    let dir = tempfile::tempdir().expect("dir");
    let camera = camera(acceptor(dir.path(), &["127.0.0.1"], 2019, 2020)).await;
    let scan = scan_trusting(&camera.url(), dir.path()).await;
    scan.assert_failed("tls_error", "expired", within(T));
    assert!(camera.requests().is_empty(), "{:?}", camera.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_a_tls_error_that_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let camera = camera(acceptor(dir.path(), &["camera-7.example"], 2024, 2049)).await;
    let scan = scan_trusting(&camera.url(), dir.path()).await;
    scan.assert_failed("tls_error", "not valid for", within(T));
    assert!(camera.requests().is_empty(), "{:?}", camera.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_ca_and_a_right_leaf_are_read() {
    // The control: the two refusals above are the certificate's fault, not the setup's.
    let dir = tempfile::tempdir().expect("dir");
    let camera = camera(acceptor(dir.path(), &["127.0.0.1"], 2024, 2049)).await;
    let scan = scan_trusting(&camera.url(), dir.path()).await;
    scan.run.assert_sane(within(T));
    assert_eq!(scan.status(), "ok", "{}", scan.record);
    assert_eq!(scan.record["ssh_enabled"], false, "{}", scan.record);
}

/// `openssl s_server` limited to TLS 1.0, on a free loopback port; the reason when this machine's openssl cannot serve it.
async fn tls10_server(dir: &Path) -> Result<(tokio::process::Child, u16), String> {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("names")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.join("leaf.pem"), cert.pem()).expect("leaf");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
    // A port the kernel just handed out and took back: s_server cannot be given port 0.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = tokio::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-tls1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .args(["-accept", &format!("127.0.0.1:{port}")])
        .arg("-cert")
        .arg(dir.join("leaf.pem"))
        .arg("-key")
        .arg(dir.join("key.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("no openssl binary: {e}"))?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok((child, port));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("openssl s_server -tls1 did not start listening".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_0_only_camera_is_a_tls_error() {
    let dir = tempfile::tempdir().expect("dir");
    let (_server, port) = match tls10_server(dir.path()).await {
        Ok(server) => server,
        Err(reason) => {
            crate::support::skip("SSHFLEET_REQUIRE_OPENSSL", &reason);
            return;
        }
    };
    let url = format!("https://127.0.0.1:{port}");
    let scan = scan(&url, T, &["--insecure"]).await;
    scan.assert_failed("tls_error", "no TLS version this client accepts", within(T));
}
