//! Loopback round trips against started fleets, through a raw HTTP client written for the
//! tests (its own parsing and Digest arithmetic), bounded by timeouts instead of sleeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use md5::{Digest as _, Md5};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BOUND: Duration = Duration::from_secs(20);

async fn bounded<T>(f: impl Future<Output = T>) -> Result<T, Box<dyn std::error::Error>> {
    Ok(tokio::time::timeout(BOUND, f).await?)
}

fn config(specs: Vec<DeviceSpec>) -> SimConfig {
    SimConfig {
        specs: Some(specs),
        control: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SimConfig::default()
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map_or("", |(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Reads one response; `Err` if the connection ends before the declared body is complete.
async fn read_reply<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> std::io::Result<Reply> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        read_more(io, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    buf.drain(..head_end + 4);
    while buf.len() < length {
        read_more(io, buf).await?;
    }
    let body = buf.drain(..length).collect();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    match io.read(&mut chunk).await? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        n => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

async fn send<S>(io: &mut S, buf: &mut Vec<u8>, request: &str) -> std::io::Result<Reply>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request.as_bytes()).await?;
    read_reply(io, buf).await
}

fn post(body: &str, authorization: Option<&str>) -> String {
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "POST /axis-cgi/ssh.cgi HTTP/1.1\r\nHost: cam\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn get(target: &str, authorization: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: cam\r\nAuthorization: {authorization}\r\n\r\n")
}

/// MD5 in hex, computed here rather than by the simulator's own digest code.
pub(super) fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A quoted parameter of a challenge, found by plain string search.
fn quoted(challenge: &str, key: &str) -> String {
    let start = challenge
        .find(&format!("{key}=\""))
        .map(|i| i + key.len() + 2);
    let rest = start.map_or("", |s| &challenge[s..]);
    rest.split('"').next().unwrap_or_default().to_owned()
}

/// RFC 2617 qop=auth answer for POST /axis-cgi/ssh.cgi as root/pass.
fn digest(challenge: &str, nc: u32) -> String {
    let (realm, nonce) = (quoted(challenge, "realm"), quoted(challenge, "nonce"));
    let uri = "/axis-cgi/ssh.cgi";
    let ha1 = md5_hex(&format!("root:{realm}:pass"));
    let ha2 = md5_hex(&format!("POST:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc:08x}:abcdef:auth:{ha2}"));
    format!(
        "Digest username=\"root\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm=MD5, response=\"{response}\", qop=auth, nc={nc:08x}, cnonce=\"abcdef\""
    )
}

fn basic(user_pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

async fn connect(fleet: &Fleet, i: usize) -> std::io::Result<TcpStream> {
    let address = fleet.address(i);
    TcpStream::connect(address.trim_start_matches("https://")).await
}

const VERSIONS: &str = r#"{"context":"t","method":"getSupportedVersions"}"#;
const INFO: &str = r#"{"apiVersion":"1.1","method":"getSshInfo"}"#;
const DISABLE: &str =
    r#"{"apiVersion":"1.0","method":"setSshConfiguration","params":{"enabled":false}}"#;

#[tokio::test]
async fn digest_round_trip_reads_and_writes_the_ssh_state() -> TestResult {
    let fleet = Fleet::start(config(vec![DeviceSpec::clean(true)])).await?;
    let mut tcp = bounded(connect(&fleet, 0)).await??;
    let mut buf = Vec::new();
    let challenged = bounded(send(&mut tcp, &mut buf, &post(VERSIONS, None))).await??;
    assert_eq!(challenged.status, 401);
    let challenge = challenged.header("WWW-Authenticate").to_owned();
    assert!(
        challenge.starts_with("Digest realm=\"AXIS_ACCC8E"),
        "{challenge}"
    );
    assert!(challenge.contains("algorithm=MD5") && challenge.contains("qop=\"auth\""));

    let versions = send(
        &mut tcp,
        &mut buf,
        &post(VERSIONS, Some(&digest(&challenge, 1))),
    )
    .await?;
    assert_eq!(versions.status, 200);
    assert_eq!(
        versions.json()["data"]["apiVersions"],
        serde_json::json!(["1.0", "1.1"])
    );
    assert_eq!(versions.json()["context"], "t");
    let info = send(
        &mut tcp,
        &mut buf,
        &post(INFO, Some(&digest(&challenge, 2))),
    )
    .await?;
    assert_eq!(info.json()["data"]["enabled"], true);
    let set = send(
        &mut tcp,
        &mut buf,
        &post(DISABLE, Some(&digest(&challenge, 3))),
    )
    .await?;
    assert_eq!(set.json()["data"], serde_json::json!({}));

    let snapshot = &fleet.snapshot()[0];
    assert!(!snapshot.ssh_enabled);
    assert_eq!(snapshot.requests, 4);
    assert_eq!(
        snapshot
            .writes
            .iter()
            .map(|w| w.enabled)
            .collect::<Vec<_>>(),
        [false]
    );
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn nonces_are_judged_on_arrival_and_go_stale_after_their_lifetime() -> TestResult {
    // A 150 ms pause before every answer and 100 ms nonces: a nonce used right after its
    // challenge passes, the same nonce one answer later is stale.
    let cfg = SimConfig {
        latency: Duration::from_millis(150),
        nonce_lifetime: Duration::from_millis(100),
        ..config(vec![DeviceSpec::clean(true)])
    };
    let fleet = Fleet::start(cfg).await?;
    let mut tcp = connect(&fleet, 0).await?;
    let mut buf = Vec::new();
    let first = send(&mut tcp, &mut buf, &post(VERSIONS, None)).await?;
    let challenge = first.header("WWW-Authenticate").to_owned();
    let fresh = send(
        &mut tcp,
        &mut buf,
        &post(VERSIONS, Some(&digest(&challenge, 1))),
    )
    .await?;
    assert_eq!(fresh.status, 200);
    let old = send(
        &mut tcp,
        &mut buf,
        &post(INFO, Some(&digest(&challenge, 2))),
    )
    .await?;
    assert_eq!(old.status, 401);
    let renewed = old.header("WWW-Authenticate").to_owned();
    assert!(renewed.ends_with("stale=true"), "{renewed}");
    assert_ne!(quoted(&renewed, "nonce"), quoted(&challenge, "nonce"));
    let again = send(&mut tcp, &mut buf, &post(INFO, Some(&digest(&renewed, 1)))).await?;
    assert_eq!(again.json()["data"]["enabled"], true);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn control_api_serves_snapshots() -> TestResult {
    let fleet = Fleet::start(config(vec![DeviceSpec::clean(false); 3])).await?;
    fleet.set_ssh_enabled(2, true);
    let url = fleet.control_url().ok_or("no control url")?;
    assert_eq!(fleet.ready_line(), format!("ready devices=3 control={url}"));
    let mut tcp = bounded(TcpStream::connect(url.trim_start_matches("http://"))).await??;
    let mut buf = Vec::new();
    let all = send(
        &mut tcp,
        &mut buf,
        "GET /devices HTTP/1.1\r\nHost: c\r\n\r\n",
    )
    .await?;
    let all = all.json();
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    assert_eq!(all[1]["address"], fleet.address(1));
    let one = send(
        &mut tcp,
        &mut buf,
        "GET /devices/2 HTTP/1.1\r\nHost: c\r\n\r\n",
    )
    .await?;
    assert_eq!(one.json()["ssh_enabled"], true);
    assert_eq!(one.json()["writes"], serde_json::json!([]));
    let missing = send(
        &mut tcp,
        &mut buf,
        "GET /devices/3 HTTP/1.1\r\nHost: c\r\n\r\n",
    )
    .await?;
    assert_eq!(missing.status, 404);
    fleet.shutdown().await;
    Ok(())
}

fn faulty(fault: Fault) -> DeviceSpec {
    DeviceSpec {
        fault,
        ..DeviceSpec::clean(false)
    }
}

#[tokio::test]
async fn closed_cameras_refuse_and_stopped_fleets_too() -> TestResult {
    let fleet = Fleet::start(config(vec![
        faulty(Fault::Closed),
        DeviceSpec::clean(false),
    ]))
    .await?;
    let refused = bounded(connect(&fleet, 0)).await?;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let address = fleet.address(1).to_owned();
    bounded(fleet.shutdown()).await?;
    let after = bounded(TcpStream::connect(address)).await?;
    assert_eq!(
        after.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    Ok(())
}

#[tokio::test]
async fn reset_cameras_cut_the_body_short() -> TestResult {
    let cfg = SimConfig {
        auth: AuthPolicy::None,
        ..config(vec![faulty(Fault::Reset)])
    };
    let fleet = Fleet::start(cfg).await?;
    let mut tcp = bounded(connect(&fleet, 0)).await??;
    let mut buf = Vec::new();
    tcp.write_all(post(VERSIONS, None).as_bytes()).await?;
    let cut = bounded(read_reply(&mut tcp, &mut buf)).await?;
    // The head was complete (read_reply consumed it); the body stops halfway with a reset.
    assert_eq!(
        cut.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
    let partial = String::from_utf8_lossy(&buf);
    assert!(partial.starts_with("{\"apiVersion\":\"1.0\""), "{partial}");
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn hanging_cameras_read_but_never_answer() -> TestResult {
    let fleet = Fleet::start(config(vec![faulty(Fault::Hang)])).await?;
    let mut tcp = connect(&fleet, 0).await?;
    let mut buf = Vec::new();
    tcp.write_all(post(VERSIONS, None).as_bytes()).await?;
    let waited = tokio::time::timeout(Duration::from_secs(5), read_reply(&mut tcp, &mut buf)).await;
    assert!(waited.is_err(), "answered: {waited:?}");
    assert_eq!(fleet.snapshot()[0].requests, 1);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn failed_logins_block_the_camera_for_ten_seconds() -> TestResult {
    let cfg = SimConfig {
        auth: AuthPolicy::Basic,
        ..config(vec![DeviceSpec::clean(false)])
    };
    let fleet = Fleet::start(cfg).await?;
    let mut tcp = connect(&fleet, 0).await?;
    let mut buf = Vec::new();
    let wrong = get(
        "/axis-cgi/param.cgi?action=list&group=Network.SSH",
        &basic("root:guess"),
    );
    let right = get(
        "/axis-cgi/param.cgi?action=list&group=Network.SSH",
        &basic("root:pass"),
    );
    for _ in 0..20 {
        assert_eq!(send(&mut tcp, &mut buf, &wrong).await?.status, 401);
    }
    assert_eq!(send(&mut tcp, &mut buf, &right).await?.status, 200);
    assert_eq!(send(&mut tcp, &mut buf, &wrong).await?.status, 401);
    assert_eq!(send(&mut tcp, &mut buf, &right).await?.status, 403);
    tokio::time::advance(Duration::from_secs(11)).await;
    let unblocked = send(&mut tcp, &mut buf, &right).await?;
    assert_eq!(unblocked.status, 200);
    let body = String::from_utf8_lossy(&unblocked.body).into_owned();
    assert!(
        body.contains("Network.SSH.Enabled=") && body.ends_with("\r\n"),
        "{body}"
    );
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn https_cameras_use_basic_and_the_fleet_ca() -> TestResult {
    let cfg = SimConfig {
        https: true,
        ..config(vec![DeviceSpec::clean(true)])
    };
    let fleet = Fleet::start(cfg).await?;
    assert!(fleet.address(0).starts_with("https://127.0.0.1:"));
    let pem = fleet.ca_pem().ok_or("no CA")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = bounded(connect(&fleet, 0)).await??;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let mut tls = bounded(connector.connect(name, tcp)).await??;
    let mut buf = Vec::new();
    let challenged = bounded(send(&mut tls, &mut buf, &post(INFO, None))).await??;
    assert!(challenged
        .header("WWW-Authenticate")
        .starts_with("Basic realm=\"AXIS_"));
    let info = bounded(send(
        &mut tls,
        &mut buf,
        &post(INFO, Some(&basic("root:pass"))),
    ))
    .await??;
    assert_eq!(info.json()["data"]["enabled"], true);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn realistic_fleet_writes_inventory_and_truth() -> TestResult {
    let cfg = SimConfig {
        devices: 200,
        seed: 9,
        ..SimConfig::default()
    };
    let fleet = Fleet::start(cfg).await?;
    let mut inventory = Vec::new();
    fleet.write_inventory(&mut inventory)?;
    let inventory = String::from_utf8(inventory)?;
    let lines: Vec<&str> = inventory.lines().collect();
    assert_eq!(lines.len(), 201);
    assert_eq!(lines[0], "address,name,site,expect,ssh_port");
    assert_eq!(
        lines[1],
        format!(
            "{},cam-0001,site-a,disabled,{}",
            fleet.address(0),
            fleet.ssh_port(0).unwrap_or_default()
        )
    );
    let mut truth = Vec::new();
    fleet.write_truth(&mut truth)?;
    let rows: Vec<serde_json::Value> = truth
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 200);
    for row in &rows {
        let ok = row["expect_status"] == "ok";
        assert_eq!(row["ssh_enabled"].is_boolean(), ok, "{row}");
        assert!(row["fault"].is_string() && row["address"].is_string());
        assert!(
            ["open", "closed", "filtered"].contains(&row["ssh_port"].as_str().unwrap_or("")),
            "{row}"
        );
        assert_eq!(row["exposure"].is_string(), ok, "{row}");
    }
    let faulty = (0..fleet.len()).filter(|&i| fleet.spec(i).fault != Fault::None);
    assert_eq!(faulty.count(), 30);
    fleet.shutdown().await;
    Ok(())
}
