//! What remediate says at change time: a waived device is counted once in the waivers'
//! summary, however often the run judged it; devices left by a closed change window are
//! said to be so (not blamed on a failure budget), and counted among those to set.

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{code, stderr, Sshfleet, TestFleet, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waived_device_is_counted_once_in_the_summary() {
    let fleet = TestFleet::start(SimConfig {
        devices: 3,
        seed: 91,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let waivers = fleet.path("waivers.toml");
    std::fs::write(
        &waivers,
        format!(
            "[[waiver]]\nid = \"W-1\"\nmatch = {{ address = \"{}\" }}\nssh = \"enabled\"\n\
             reason = \"vendor access\"\nowner = \"secops@example.com\"\nexpires = \"2099-01-01\"\n",
            fleet.fleet.address(0)
        ),
    )
    .unwrap();
    let (out, waivers) = (fleet.path("plan.jsonl"), waivers.display().to_string());
    let out = out.display().to_string();
    let output = Sshfleet::remediate(&fleet.inventory)
        .args(&["--ssh", "disabled", "--waivers", &waivers, "-o", &out])
        .args(&["--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(
        err.contains("waiver W-1 (secops@example.com, until 2099-01-01) allows 1 device(s)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_window_is_the_reason_given_and_the_counts_add_up() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        seed: 92,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    // A window that opens in two hours and closes in three (UTC, wrapping the day).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let at = |hours: u64| {
        let m = (now + hours * 60) % (24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    let closed = format!("{}-{}", at(2), at(3));
    let out = fleet.path("closed.jsonl").display().to_string();
    let output = Sshfleet::remediate(&fleet.inventory)
        .args(&["--ssh", "disabled", "--apply", "--yes", "--window", &closed])
        .args(&["-o", &out, "--timeout", "5s"])
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 3, "{err}");
    assert!(!err.contains("failure budget"), "{err}");
    assert!(!err.contains("--continue-after-failures"), "{err}");
    assert!(err.contains("outside the change window"), "{err}");
    assert!(err.contains("remediation: 4 to set,"), "{err}");
    assert!(err.contains("DEFERRED: 4 of them not written"), "{err}");
}

/// `remediate --apply` (no `--yes`) of `fleet` run by `script` on a pseudo-terminal, its
/// output through `2>&1 | tee LOG`; stdin and stdout piped to the test.
fn on_a_terminal(fleet: &TestFleet, out: &str, log: &str) -> tokio::process::Child {
    let line = format!(
        "{} remediate --inventory {} --ssh disabled --apply -o {} --timeout 5s 2>&1 | tee {}",
        env!("CARGO_BIN_EXE_sshfleet"),
        fleet.inventory.display(),
        fleet.path(out).display(),
        fleet.path(log).display()
    );
    tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SSHFLEET_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("script runs (Debian package bsdutils): {e}"))
}

/// Reads the child's output until `words` appear (bounded); everything read.
pub(crate) async fn until(child: &mut tokio::process::Child, words: &str) -> String {
    use tokio::io::AsyncReadExt as _;
    let stdout = child.stdout.as_mut().unwrap();
    let mut seen = Vec::new();
    let wait = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(words) {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "ended before {words:?}: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
    };
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), wait).await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(waited.is_ok(), "no {words:?} within 60 s: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_question_is_asked_on_the_terminal_through_tee_and_type_ahead_never_answers_it() {
    use tokio::io::AsyncWriteExt as _;
    let fleet = TestFleet::start(SimConfig {
        devices: 3,
        seed: 93,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    let question = "Type 'yes' to apply: ";
    let writes = |fleet: &TestFleet| -> usize {
        fleet.fleet.snapshot().iter().map(|d| d.writes.len()).sum()
    };

    // A `yes` typed before the question is discarded; the `no` typed after it answers.
    let mut child = on_a_terminal(&fleet, "first.jsonl", "first.log");
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"yes\n").await.unwrap();
    stdin.flush().await.unwrap();
    until(&mut child, question).await;
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"no\n").await.unwrap();
    stdin.flush().await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await;
    assert!(status.is_ok(), "the run ended after its answer");
    assert_eq!(
        writes(&fleet),
        0,
        "nothing written without a yes to the question"
    );

    // `yes` after the question applies, and the log holds the run's output.
    let mut child = on_a_terminal(&fleet, "second.jsonl", "second.log");
    until(&mut child, question).await;
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"yes\n").await.unwrap();
    stdin.flush().await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait()).await;
    assert!(status.is_ok(), "the run ended");
    assert_eq!(writes(&fleet), 3);
    let log = std::fs::read_to_string(fleet.path("second.log")).unwrap();
    assert!(log.contains("remediation: 3 to set,"), "{log}");
}
