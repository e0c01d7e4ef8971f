//! `sshfleet scan --probe-ssh` (the real binary) against SSH servers that are not the
//! simulator's: OpenSSH's `sshd` and Dropbear, and hostile servers. The VAPIX side of each
//! camera is the simulator; the inventory's `ssh_port` column points each camera's probe at
//! its own server on loopback. Every server sits behind the test's own listener, which counts
//! the connections it accepts: the count at the server, not the tool's word, shows one
//! connection per device per run.
//!
//! The real servers run in inetd mode (`-i`, one process per accepted connection on its
//! stdin and stdout), so no port is fixed and no root is needed. Without the programs the
//! test says `SKIPPED` and passes, unless `SSHFLEET_REQUIRE_OPENSSL` is set (CI, which installs
//! them with `.ci/install-deps` along with openssl).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use sshfleet_sim::{DeviceSpec, SimConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{by_address, code, read_jsonl, stderr, Sshfleet, TestFleet};

const SSHD: &str = "/usr/sbin/sshd";
const DROPBEAR: &str = "/usr/sbin/dropbear";

/// The programs these tests need that this machine lacks.
fn missing_programs() -> Vec<&'static str> {
    let runs = |program: &str| Command::new(program).arg("-h").output().is_ok();
    let mut missing = Vec::new();
    for (program, present) in [
        (SSHD, Path::new(SSHD).exists()),
        (DROPBEAR, Path::new(DROPBEAR).exists()),
        ("ssh-keygen", runs("ssh-keygen")),
        ("dropbearkey", runs("dropbearkey")),
    ] {
        if !present {
            missing.push(program);
        }
    }
    missing
}

/// Accepted connections, in order, by the peer's address.
type Accepted = Arc<Mutex<Vec<SocketAddr>>>;

/// A loopback listener that counts what it accepts and hands each connection to a server.
struct Counted {
    addr: SocketAddr,
    accepted: Accepted,
    /// Connections the test itself made to mark a point in the accept queue.
    sentinels: Mutex<HashSet<SocketAddr>>,
    children: Arc<Mutex<Vec<Child>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What serves one accepted connection.
#[derive(Clone)]
enum Serve {
    /// A real server in inetd mode, the connection as its stdin and stdout.
    Inetd(Arc<dyn Fn() -> Command + Send + Sync>),
    /// A hostile server written here.
    Hostile(Hostile),
}

/// How a hostile server answers, after the client connected.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// An identification line, then a packet that claims 4 GiB, then nothing more.
    HugeLength,
    /// The identification line one byte a second.
    SlowBytes,
    /// An identification line, then a well-framed packet of garbage instead of a KEXINIT.
    Garbage,
    /// An identification line, then a packet whose padding is longer than the packet.
    WrongPadding,
}

impl Counted {
    async fn start(serve: Serve) -> Counted {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let accepted: Accepted = Arc::default();
        let children: Arc<Mutex<Vec<Child>>> = Arc::default();
        let (log, kids) = (accepted.clone(), children.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                lock(&log).push(peer);
                match &serve {
                    Serve::Inetd(command) => {
                        if let Some(child) = inetd_child(stream, command()) {
                            lock(&kids).push(child);
                        }
                    }
                    Serve::Hostile(how) => {
                        tokio::spawn(hostile(stream, *how));
                    }
                }
            }
        });
        Counted {
            addr,
            accepted,
            sentinels: Mutex::default(),
            children,
            task,
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every connection accepted so far that the test did not make itself. A connection
    /// of the test's own goes to the back of the accept queue; once it is accepted, every
    /// connection made before it has been too.
    async fn connections(&self) -> usize {
        let sentinel = TcpStream::connect(self.addr)
            .await
            .expect("sentinel connect");
        let mark = sentinel.local_addr().expect("sentinel address");
        lock(&self.sentinels).insert(mark);
        let seen = crate::support::eventually(
            || lock(&self.accepted).contains(&mark),
            Duration::from_secs(10),
        )
        .await;
        assert!(seen, "the listener accepts");
        drop(sentinel);
        let sentinels = lock(&self.sentinels);
        lock(&self.accepted)
            .iter()
            .filter(|peer| !sentinels.contains(peer))
            .count()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.task.abort();
        for child in lock(&self.children).iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `command` started on the accepted connection (blocking, as an inetd server wants it).
fn inetd_child(stream: TcpStream, mut command: Command) -> Option<Child> {
    let stream = stream.into_std().ok()?;
    stream.set_nonblocking(false).ok()?;
    let out = stream.try_clone().ok()?;
    command
        .stdin(Stdio::from(OwnedFd::from(stream)))
        .stdout(Stdio::from(OwnedFd::from(out)))
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

async fn hostile(mut s: TcpStream, how: Hostile) {
    let (line, packet): (&[u8], &[u8]) = match how {
        Hostile::HugeLength => (b"SSH-2.0-huge\r\n", &[0xff, 0xff, 0xff, 0xff]),
        Hostile::SlowBytes => {
            for &byte in b"SSH-2.0-slow\r\n" {
                if s.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return;
        }
        // Length 12, padding 4, a 7-byte payload of message type 0xde.
        Hostile::Garbage => (
            b"SSH-2.0-garbage\r\n",
            &[
                0, 0, 0, 12, 4, 0xde, 0xad, 0xbe, 0xef, 0x13, 0x37, 0x42, 0, 0, 0, 0,
            ],
        ),
        // Length 12, padding 200.
        Hostile::WrongPadding => (
            b"SSH-2.0-padding\r\n",
            &[0, 0, 0, 12, 200, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    };
    if s.write_all(line).await.is_err() || s.write_all(packet).await.is_err() {
        return;
    }
    // Then silence, until the client leaves (bounded: the test ends long before).
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The simulator's inventory with each camera's `ssh_port` (the last column) set to
/// `ports[i]` where it is `Some`.
fn inventory_with_ports(fleet: &TestFleet, ports: &[Option<u16>], name: &str) -> PathBuf {
    let text = std::fs::read_to_string(&fleet.inventory).expect("inventory");
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().expect("header"));
    assert!(out.trim_end().ends_with(",ssh_port"), "{out}");
    for (line, port) in lines.zip(ports) {
        let (row, theirs) = line.rsplit_once(',').expect("a row with ssh_port");
        let port = port.map_or(theirs.to_owned(), |p| p.to_string());
        out.push_str(&format!("{row},{port}\n"));
    }
    let path = fleet.path(name);
    std::fs::write(&path, out).expect("write inventory");
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real server's key and what its own tools say of it.
struct RealServer {
    serve: Serve,
    /// `SHA256:…`, as `ssh-keygen -lf` or `dropbearkey -y` prints it.
    fingerprint: String,
    key_type: String,
    banner_has: &'static str,
}

/// sshd with a fresh `kind` host key; the oracle is `ssh-keygen -lf` and the `.pub` file.
fn sshd(dir: &Path, kind: &str, bits: &str) -> RealServer {
    let key = dir.join(format!("sshd_{kind}_{bits}"));
    run(Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", kind, "-b", bits, "-f"])
        .arg(&key));
    let public = key.with_extension("pub");
    let listed = run(Command::new("ssh-keygen").arg("-lf").arg(&public));
    let fingerprint = listed.split_whitespace().nth(1).unwrap_or_default();
    let text = std::fs::read_to_string(&public).expect("public key");
    let key_type = text.split_whitespace().next().unwrap_or_default();
    // Privilege separation wants this directory when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let command = move || {
        let mut cmd = Command::new(SSHD);
        cmd.arg("-i").arg("-f").arg("/dev/null").arg("-h").arg(&key);
        for opt in [
            "PidFile=none",
            "UsePAM=no",
            "StrictModes=no",
            "LogLevel=QUIET",
            "AuthorizedKeysFile=none",
        ] {
            cmd.arg("-o").arg(opt);
        }
        cmd
    };
    RealServer {
        serve: Serve::Inetd(Arc::new(command)),
        fingerprint: fingerprint.to_owned(),
        key_type: key_type.to_owned(),
        banner_has: "OpenSSH",
    }
}

/// Dropbear with a fresh `kind` host key; the oracle is `dropbearkey -y`.
fn dropbear(dir: &Path, kind: &str) -> RealServer {
    let key = dir.join(format!("dropbear_{kind}"));
    run(Command::new("dropbearkey")
        .args(["-t", kind, "-f"])
        .arg(&key));
    let printed = run(Command::new("dropbearkey").arg("-y").arg("-f").arg(&key));
    let fingerprint = printed
        .lines()
        .find_map(|l| l.strip_prefix("Fingerprint: "))
        .unwrap_or_else(|| panic!("dropbearkey printed no fingerprint: {printed}"));
    let key_type = printed
        .lines()
        .find(|l| l.starts_with("ssh-") || l.starts_with("ecdsa-"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("dropbearkey printed no public key: {printed}"));
    let command = move || {
        let mut cmd = Command::new(DROPBEAR);
        cmd.args(["-i", "-s", "-r"]).arg(&key);
        cmd
    };
    RealServer {
        serve: Serve::Inetd(Arc::new(command)),
        fingerprint: fingerprint.to_owned(),
        key_type: key_type.to_owned(),
        banner_has: "dropbear",
    }
}

/// One `scan --probe-ssh` of `inventory`; its records by address.
async fn probe_scan(
    fleet: &TestFleet,
    inventory: &Path,
    out: &str,
    timeout: &str,
) -> std::collections::HashMap<String, Value> {
    let out = fleet.path(out);
    let output = Sshfleet::scan(inventory)
        .out(&out)
        .args(&["--quiet", "--probe-ssh", "--timeout", timeout])
        .run()
        .await;
    assert!(code(&output) <= 1, "{}", stderr(&output));
    by_address(&read_jsonl(&out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_sshd_and_dropbear_keys_are_what_their_tools_print_in_one_connection_per_run() {
    let missing = missing_programs();
    if !missing.is_empty() {
        crate::support::skip(
            "SSHFLEET_REQUIRE_OPENSSL",
            &format!(
                "{} not installed (.ci/install-deps installs openssh-server and dropbear-bin)",
                missing.join(", ")
            ),
        );
        return;
    }
    let specs = vec![DeviceSpec::clean(true); 5];
    let fleet = TestFleet::start(SimConfig {
        specs: Some(specs),
        ssh_ports: false,
        ..SimConfig::default()
    })
    .await;
    let dir = fleet.path("keys");
    std::fs::create_dir_all(&dir).expect("key directory");
    let expected = [
        sshd(&dir, "ed25519", "256"),
        sshd(&dir, "ecdsa", "256"),
        sshd(&dir, "rsa", "3072"),
        dropbear(&dir, "ed25519"),
        dropbear(&dir, "ecdsa"),
    ];
    let mut servers = Vec::new();
    for server in &expected {
        servers.push(Counted::start(server.serve.clone()).await);
    }
    let ports: Vec<Option<u16>> = servers.iter().map(|s| Some(s.port())).collect();
    let inventory = inventory_with_ports(&fleet, &ports, "real-servers.csv");
    for run in 1..=2 {
        let report = probe_scan(&fleet, &inventory, &format!("run{run}.jsonl"), "5s").await;
        assert_eq!(report.len(), expected.len(), "one record per camera");
        for (i, want) in expected.iter().enumerate() {
            let rec = &report[fleet.fleet.address(i)];
            assert_eq!(rec["status"], "ok", "{rec}");
            assert_eq!(rec["ssh_port"], "open", "{rec}");
            assert_eq!(rec["ssh_host_key"], want.fingerprint.as_str(), "{rec}");
            assert_eq!(rec["ssh_host_key_type"], want.key_type.as_str(), "{rec}");
            let banner = rec["ssh_banner"].as_str().unwrap_or_default();
            assert!(banner.contains(want.banner_has), "{rec}");
            let kex = rec["ssh_kexinit"]["kex"].as_array();
            assert!(kex.is_some_and(|k| !k.is_empty()), "{rec}");
            assert!(
                matches!(rec["ssh_crypto"].as_str(), Some("ok" | "weak" | "fail")),
                "{rec}"
            );
            // A conversation that reached the verified host key leaves no note.
            assert_eq!(rec["error"], Value::Null, "{rec}");
        }
        for (i, server) in servers.iter().enumerate() {
            assert_eq!(
                server.connections().await,
                run,
                "camera {i}: connections at the server after run {run}"
            );
        }
    }
    fleet.fleet.shutdown().await;
}

/// Hostile SSH servers each end as a record within the probe's deadline, the reason in
/// `error`, with the camera's VAPIX reading intact; a well-behaved camera in the same run
/// is unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ssh_servers_each_end_as_a_record_with_the_reason_within_the_deadline() {
    let cases = [
        (
            Hostile::HugeLength,
            "malformed the server's KEXINIT: a packet longer than 35000 bytes",
        ),
        (
            Hostile::SlowBytes,
            "no answer within the deadline while reading the identification line",
        ),
        (
            Hostile::Garbage,
            "malformed the server's KEXINIT: expected KEXINIT",
        ),
        (
            Hostile::WrongPadding,
            "malformed the server's KEXINIT: padding that does not fit its packet",
        ),
    ];
    // The hostile cameras, then one whose SSH port is the simulator's own.
    let fleet = TestFleet::of(vec![DeviceSpec::clean(true); cases.len() + 1]).await;
    let mut servers = Vec::new();
    for (how, _) in cases {
        servers.push(Counted::start(Serve::Hostile(how)).await);
    }
    let mut ports: Vec<Option<u16>> = servers.iter().map(|s| Some(s.port())).collect();
    ports.push(None);
    let inventory = inventory_with_ports(&fleet, &ports, "hostile-servers.csv");
    let started = std::time::Instant::now();
    let report = probe_scan(&fleet, &inventory, "hostile.jsonl", "2s").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "the run took {took:?}");
    assert_eq!(report.len(), cases.len() + 1, "one record per camera");
    let truth = fleet.truth();
    for (i, (how, words)) in cases.iter().enumerate() {
        let rec = &report[fleet.fleet.address(i)];
        let elapsed = rec["elapsed_ms"].as_u64().expect("elapsed_ms");
        assert!(elapsed <= 2000 + 1500, "{how:?}: past the deadline: {rec}");
        assert_eq!(rec["status"], "ok", "{how:?}: {rec}");
        assert_eq!(rec["ssh_enabled"], true, "{how:?}: {rec}");
        assert_eq!(rec["ssh_port"], "open", "{how:?}: {rec}");
        for field in ["ssh_host_key", "ssh_host_key_type", "ssh_crypto"] {
            assert_eq!(rec[field], Value::Null, "{how:?}: {field}: {rec}");
        }
        let error = rec["error"].as_str().unwrap_or_default();
        assert_eq!(error, format!("SSH evidence: {words}"), "{how:?}: {rec}");
        assert_eq!(servers[i].connections().await, 1, "{how:?}");
    }
    let healthy = cases.len();
    let rec = &report[fleet.fleet.address(healthy)];
    let want = &truth[fleet.fleet.address(healthy)];
    assert_eq!(rec["status"], "ok", "{rec}");
    assert_eq!(rec["ssh_host_key"], want["ssh_host_key"], "{rec}");
    assert_eq!(rec["ssh_crypto"], want["ssh_crypto"], "{rec}");
    assert_eq!(rec["error"], Value::Null, "{rec}");
    let connections = fleet.fleet.snapshot()[healthy].ssh_connections;
    assert_eq!(connections, 1, "the simulator's camera: one connection");
    fleet.fleet.shutdown().await;
}
