//! Evidence read from real servers: OpenSSH's `sshd` and Dropbear, each started in inetd mode
//! (`-i`) on a socket the test accepted on loopback port 0, so no port is fixed, no root is
//! needed, and the test counts every connection the server got.
//! The oracles are the servers' own tools: `ssh-keygen -lf`, `dropbearkey -y` and `sshd -T`.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sshfleet_ssh::grade::{self, Terrapin};
use sshfleet_ssh::{read_evidence, Evidence, SignatureCheck};

const SSHD: &str = "/usr/sbin/sshd";
const DROPBEAR: &str = "/usr/sbin/dropbear";

fn need(program: &str) {
    assert!(
        Path::new(program).exists(),
        "{program} is missing: the SSH evidence tests run against the real server \
         (install it with .ci/install-deps)"
    );
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sshfleet-ssh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A server behind a loopback listener: every accepted connection is handed to a new
/// `command` (as its stdin and stdout), and counted.
struct Inetd {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    children: Arc<std::sync::Mutex<Vec<Child>>>,
}

impl Inetd {
    fn start(command: impl Fn() -> Command + Send + 'static) -> Inetd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let connections = Arc::new(AtomicUsize::new(0));
        let children = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, kids) = (connections.clone(), children.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(out) = sock.try_clone() else { return };
                let child = command()
                    .stdin(Stdio::from(OwnedFd::from(sock)))
                    .stdout(Stdio::from(OwnedFd::from(out)))
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("spawn the server: {e}"));
                kids.lock().unwrap_or_else(|e| e.into_inner()).push(child);
            }
        });
        Inetd {
            addr,
            connections,
            children,
        }
    }

    async fn evidence(&self) -> Evidence {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        read_evidence(stream, deadline).await
    }

    /// Waits (bounded) for every server process to end after our DISCONNECT.
    fn all_ended(&self) -> bool {
        for _ in 0..100 {
            let mut kids = self.children.lock().unwrap_or_else(|e| e.into_inner());
            if kids.iter_mut().all(|c| matches!(c.try_wait(), Ok(Some(_)))) {
                return true;
            }
            drop(kids);
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Inetd {
    fn drop(&mut self) {
        for child in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sshd_command(dir: &Path, key: &Path, extra: &[&str]) -> Command {
    // Privilege separation wants this directory when sshd runs as root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let mut cmd = Command::new(SSHD);
    cmd.arg("-i").arg("-f").arg("/dev/null").arg("-h").arg(key);
    for opt in [
        "PidFile=none",
        "UsePAM=no",
        "StrictModes=no",
        "LogLevel=QUIET",
        "AuthorizedKeysFile=none",
    ] {
        cmd.arg("-o").arg(opt);
    }
    for opt in extra {
        cmd.arg("-o").arg(opt);
    }
    cmd.current_dir(dir);
    cmd
}

/// What `sshd -T` says the server offers: the oracle for the algorithm lists.
fn sshd_effective(key: &Path, extra: &[&str], field: &str) -> Vec<String> {
    let mut cmd = sshd_command(Path::new("/"), key, extra);
    cmd.arg("-T");
    // `-T` and `-i` do not mix; build the command again without `-i`.
    let args: Vec<_> = cmd
        .get_args()
        .filter(|a| *a != "-i")
        .map(|a| a.to_owned())
        .collect();
    let text = run(Command::new(SSHD).args(args));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field} ")))
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}

fn keygen(dir: &Path, kind: &str, bits: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let key = dir.join(format!("host_{kind}"));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-t", kind, "-f"]).arg(&key);
    if let Some(bits) = bits {
        cmd.args(["-b", bits]);
    }
    run(&mut cmd);
    key
}

/// `ssh-keygen -lf KEY.pub`: "256 SHA256:… comment (ED25519)" → the fingerprint.
fn keygen_fingerprint(public: &Path) -> String {
    let text = run(Command::new("ssh-keygen").arg("-lf").arg(public));
    text.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

fn assert_complete(e: &Evidence) {
    assert_eq!(e.failure, None, "{e:#?}");
    assert_eq!(e.signature, Some(SignatureCheck::Verified), "{e:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn sshd_host_keys_of_each_type_match_ssh_keygen_and_are_verified() {
    need(SSHD);
    let dir = scratch("sshd-keys");
    for (kind, bits, key_type) in [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", Some("256"), "ecdsa-sha2-nistp256"),
        ("ecdsa", Some("384"), "ecdsa-sha2-nistp384"),
        ("rsa", Some("3072"), "ssh-rsa"),
    ] {
        let key = keygen(&dir.join(bits.unwrap_or("x")), kind, bits);
        let (d, k) = (dir.clone(), key.clone());
        let server = Inetd::start(move || sshd_command(&d, &k, &[]));
        let evidence = server.evidence().await;
        assert_complete(&evidence);
        let shown = evidence.host_key.unwrap_or_else(|| panic!("no host key"));
        assert_eq!(shown.key_type, key_type);
        assert_eq!(
            shown.fingerprint,
            keygen_fingerprint(&key.with_extension("pub"))
        );
        assert!(
            server.all_ended(),
            "sshd still running after the DISCONNECT"
        );
        assert_eq!(
            server.connections.load(Ordering::SeqCst),
            1,
            "one connection per server"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sshd_algorithm_lists_are_what_sshd_t_reports() {
    need(SSHD);
    let dir = scratch("sshd-algs");
    let key = keygen(&dir, "ed25519", None);
    let extra: &[&str] = &[
        "Ciphers=chacha20-poly1305@openssh.com,aes128-cbc,aes256-ctr",
        "MACs=hmac-sha1,hmac-sha2-256-etm@openssh.com",
        "KexAlgorithms=curve25519-sha256,diffie-hellman-group14-sha1",
    ];
    let (d, k) = (dir.clone(), key.clone());
    let server = Inetd::start(move || sshd_command(&d, &k, extra));
    let evidence = server.evidence().await;
    assert_complete(&evidence);
    let algs = evidence.algorithms.unwrap_or_else(|| panic!("no KEXINIT"));
    assert_eq!(algs.ciphers, sshd_effective(&key, extra, "ciphers"));
    assert_eq!(algs.macs, sshd_effective(&key, extra, "macs"));
    let kex: Vec<_> = algs
        .kex
        .iter()
        .filter(|k| !k.starts_with("ext-info") && !k.starts_with("kex-strict"))
        .cloned()
        .collect();
    assert_eq!(kex, sshd_effective(&key, extra, "kexalgorithms"));
    let grade = grade::grade(&algs, None, &grade::Policy::baseline());
    assert_eq!(grade.crypto, grade::Crypto::Weak, "{grade:?}");
    // Debian's OpenSSH 9.2 carries the strict key exchange backported against Terrapin.
    let expected = if algs
        .kex
        .iter()
        .any(|k| k == sshfleet_ssh::STRICT_KEX_SERVER)
    {
        Terrapin::Mitigated
    } else {
        Terrapin::Vulnerable
    };
    assert_eq!(grade::terrapin(&algs), Some(expected));
}

#[tokio::test(flavor = "current_thread")]
async fn dropbear_host_key_matches_dropbearkey_and_is_verified() {
    need(DROPBEAR);
    let dir = scratch("dropbear");
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let key = dir.join(format!("dropbear_{kind}"));
        run(Command::new("dropbearkey")
            .args(["-t", kind, "-f"])
            .arg(&key));
        let printed = run(Command::new("dropbearkey").arg("-y").arg("-f").arg(&key));
        let expected = printed
            .lines()
            .find_map(|l| l.strip_prefix("Fingerprint: "))
            .unwrap_or_else(|| panic!("dropbearkey printed no fingerprint: {printed}"))
            .to_owned();
        let k = key.clone();
        let server = Inetd::start(move || {
            let mut cmd = Command::new(DROPBEAR);
            cmd.args(["-i", "-s", "-r"]).arg(&k);
            cmd
        });
        let evidence = server.evidence().await;
        assert_complete(&evidence);
        let shown = evidence.host_key.unwrap_or_else(|| panic!("no host key"));
        assert_eq!(shown.fingerprint, expected, "{kind}");
        assert!(evidence
            .banner
            .as_deref()
            .is_some_and(|b| b.contains("dropbear")));
        assert!(
            server.all_ended(),
            "dropbear still running after the DISCONNECT"
        );
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }
}

/// What `ssh-audit -j` (PyPI) reads from the same server: kind → algorithm names.
/// Its exit status grades the server (non-zero on warnings), so only its output counts.
fn ssh_audit(addr: std::net::SocketAddr) -> serde_json::Value {
    let out = Command::new("ssh-audit")
        .arg("-j")
        .arg("-p")
        .arg(addr.port().to_string())
        .arg(addr.ip().to_string())
        .output()
        .unwrap_or_else(|e| panic!("ssh-audit: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ssh-audit -j: {e}: {text}"))
}

fn audit_names(audit: &serde_json::Value, kind: &str) -> Vec<String> {
    audit[kind]
        .as_array()
        .unwrap_or_else(|| panic!("ssh-audit gave no {kind}: {audit}"))
        .iter()
        .filter_map(|a| a["algorithm"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn algorithm_lists_and_fingerprint_match_ssh_audit() {
    need(SSHD);
    assert!(
        Command::new("ssh-audit").arg("-h").output().is_ok(),
        "ssh-audit is missing: the evidence is compared with it (install with .ci/install-deps)"
    );
    let dir = scratch("ssh-audit");
    let key = keygen(&dir, "ed25519", None);
    let extra: &[&str] = &["Ciphers=aes128-ctr,aes256-gcm@openssh.com,aes128-cbc"];
    let (d, k) = (dir.clone(), key.clone());
    let ours = Inetd::start(move || sshd_command(&d, &k, extra));
    let (d, k) = (dir.clone(), key.clone());
    // ssh-audit opens several connections; it gets a server of its own.
    let theirs = Inetd::start(move || sshd_command(&d, &k, extra));
    let evidence = ours.evidence().await;
    assert_complete(&evidence);
    let audit = tokio::task::spawn_blocking(move || ssh_audit(theirs.addr))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let algs = evidence.algorithms.unwrap_or_else(|| panic!("no KEXINIT"));
    let kex: Vec<_> = algs
        .kex
        .iter()
        .filter(|k| !k.starts_with("ext-info-"))
        .cloned()
        .collect();
    assert_eq!(kex, audit_names(&audit, "kex"));
    assert_eq!(algs.ciphers, audit_names(&audit, "enc"));
    assert_eq!(algs.macs, audit_names(&audit, "mac"));
    let shown = evidence.host_key.unwrap_or_else(|| panic!("no host key"));
    let audited: Vec<&str> = audit["fingerprints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["hash_alg"] == "SHA256")
        .filter_map(|f| f["hash"].as_str())
        .collect();
    assert!(
        audited
            .iter()
            .any(|h| shown.fingerprint == format!("SHA256:{h}") || shown.fingerprint == *h),
        "{} not among ssh-audit's {audited:?}",
        shown.fingerprint
    );
}
