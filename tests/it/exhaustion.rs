//! Outputs that cannot be written: the report on `/dev/full`, in a read-only directory and on
//! a tiny tmpfs that fills up, and the remediation journal on that tmpfs. Each ends with an
//! error naming the path, no partial report left looking finished, and an exit code that
//! says whether work was done (4) or nothing was (2).
//!
//! The read-only directory and the tmpfs are made in a private mount namespace
//! (`unshare -m`), which needs root; elsewhere those tests print `SKIPPED: <reason>`, or fail
//! when `SSHFLEET_REQUIRE_ROOT` is set (as CI does).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use sshfleet_sim::{DeviceAuth, DeviceSpec, Fault, FaultProfile, Firmware, SimConfig, SshFault};

use crate::support::{code, stderr, Sshfleet, TestFleet, PASSWORD};

/// 300 clean cameras: a JSONL report of them is far over 64 KiB.
async fn fleet(devices: usize) -> TestFleet {
    TestFleet::start(SimConfig {
        devices,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await
}

fn scan_args(fleet: &TestFleet, out: &Path) -> Sshfleet {
    Sshfleet::scan(&fleet.inventory)
        .out(out)
        .args(&["--timeout", "5s", "--quiet"])
}

/// `devices` cameras with SSH on: `remediate --ssh disabled` writes every one.
async fn enabled_fleet(devices: usize) -> TestFleet {
    let spec = DeviceSpec {
        ssh_enabled: true,
        fault: Fault::None,
        firmware: Firmware::Modern,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    };
    TestFleet::of(vec![spec; devices]).await
}

/// `remediate --ssh disabled --apply --yes` of `fleet` with its journal at `journal` and
/// the report on stdout, then `extra`.
fn apply_args(fleet: &TestFleet, journal: &Path, extra: &[&str]) -> Vec<String> {
    let inventory = fleet.inventory.to_str().unwrap_or_default();
    let journal = journal.to_str().unwrap_or_default();
    let fixed = [
        "remediate",
        "--inventory",
        inventory,
        "--ssh",
        "disabled",
        "--apply",
        "--yes",
        "--journal",
        journal,
        "-o",
        "-",
        "--timeout",
        "5s",
    ];
    fixed.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn requests(fleet: &TestFleet) -> u64 {
    fleet.fleet.snapshot().iter().map(|d| d.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_dev_full_is_an_error_naming_it_and_exit_4() {
    let fleet = fleet(300).await;
    let output = scan_args(&fleet, Path::new("/dev/full")).run().await;
    let err = stderr(&output);
    assert_eq!(code(&output), 4, "work was done, the report failed: {err}");
    assert!(err.contains("/dev/full"), "names the path: {err}");
    assert!(err.to_lowercase().contains("no space left"), "{err}");
    assert!(requests(&fleet) > 0, "the scan ran");
    fleet.fleet.shutdown().await;
}

/// Whether this process may make mount namespaces (root with `unshare`); when not, the test
/// skips (or fails under `SSHFLEET_REQUIRE_ROOT`).
fn mount_namespaces() -> bool {
    let made = mount_namespace_probe();
    if let Err(why) = &made {
        crate::support::skip("SSHFLEET_REQUIRE_ROOT", why);
    }
    made.is_ok()
}

/// `Ok` when `unshare -m` works here, else why not.
fn mount_namespace_probe() -> Result<(), String> {
    let probe = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .output()
        .map_err(|e| format!("no unshare binary: {e}"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cannot make a mount namespace (root needed): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ))
    }
}

/// How `dir` is made unwritable inside the namespace.
#[derive(Clone, Copy)]
enum Mount {
    /// A 64 KiB tmpfs over it: the first 64 KiB written fit, then ENOSPC.
    TinyTmpfs,
    /// Bound onto itself read-only (as root, permission bits would not stop a write).
    ReadOnly,
    /// The 64 KiB tmpfs, filled but for its last 4 KiB page.
    NearlyFull,
}

/// Runs the binary with `args` in a private mount namespace where `dir` is mounted as
/// `mount` says; afterwards what the run left in `dir` is copied to `kept` (the mount goes
/// with the namespace).
async fn run_mounted(dir: &Path, mount: Mount, kept: &Path, args: &[String]) -> Output {
    run_mounted_env(dir, mount, kept, args, &[]).await
}

/// [`run_mounted`] with more environment than the password.
async fn run_mounted_env(
    dir: &Path,
    mount: Mount,
    kept: &Path,
    args: &[String],
    env: &[(&str, &str)],
) -> Output {
    let setup = match mount {
        Mount::TinyTmpfs => r#"mount -t tmpfs -o size=64k tmpfs "$0""#,
        Mount::ReadOnly => r#"mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0""#,
        Mount::NearlyFull => {
            r#"mount -t tmpfs -o size=64k tmpfs "$0" && head -c 61440 /dev/zero > "$0/.filler""#
        }
    };
    let script = format!(
        r#"{setup} || exit 97; kept="$1"; shift; "$@"; rc=$?; cp -a "$0"/. "$kept"/; exit $rc"#
    );
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(dir)
        .arg(kept)
        .arg(env!("CARGO_BIN_EXE_sshfleet"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SSHFLEET_PASSWORD", PASSWORD)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("finished in time")
        .expect("ran");
    assert_ne!(code(&output), 97, "mount failed: {}", stderr(&output));
    output
}

struct Dirs {
    _root: tempfile::TempDir,
    mounted: PathBuf,
    kept: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().expect("dir");
    let mounted = root.path().join("out");
    let kept = root.path().join("kept");
    std::fs::create_dir(&mounted).expect("out");
    std::fs::create_dir(&kept).expect("kept");
    Dirs {
        _root: root,
        mounted,
        kept,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_into_a_read_only_directory_is_refused_before_any_device_is_asked() {
    if !mount_namespaces() {
        return;
    }
    let fleet = fleet(5).await;
    let dirs = dirs();
    let out = dirs.mounted.join("scan.jsonl");
    let output = run_mounted(
        &dirs.mounted,
        Mount::ReadOnly,
        &dirs.kept,
        scan_args(&fleet, &out).argv(),
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "nothing done: {err}");
    assert!(
        err.contains(&out.display().to_string()),
        "names the path: {err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(requests(&fleet), 0, "no device asked");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_that_fills_the_disk_is_an_error_and_not_left_looking_finished() {
    if !mount_namespaces() {
        return;
    }
    let fleet = fleet(300).await;
    let dirs = dirs();
    let out = dirs.mounted.join("scan.jsonl");
    let output = run_mounted(
        &dirs.mounted,
        Mount::TinyTmpfs,
        &dirs.kept,
        scan_args(&fleet, &out).argv(),
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 4, "work was done, the report failed: {err}");
    assert!(
        err.contains(&out.display().to_string()),
        "names the path: {err}"
    );
    assert!(err.to_lowercase().contains("no space left"), "{err}");
    assert!(
        !dirs.kept.join("scan.jsonl").exists(),
        "a partial report is not left under the report's name"
    );
    let partial = dirs.kept.join("scan.jsonl.partial");
    assert!(
        err.contains("scan.jsonl.partial"),
        "says where the rest is: {err}"
    );
    // What was written is kept: whole lines, perhaps one cut short at the end.
    let text = std::fs::read_to_string(&partial).expect("the partial report");
    let whole = text
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count();
    assert!(whole > 0 && whole < 300, "{whole} whole lines");
    assert!(
        text.lines().count() <= whole + 1,
        "only the last line is cut"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_on_a_disk_that_fills_stops_writes_before_they_go_out() {
    if !mount_namespaces() {
        return;
    }
    let fleet = enabled_fleet(40).await;
    let dirs = dirs();
    let journal = dirs.mounted.join("journal.jsonl");
    let list = apply_args(&fleet, &journal, &["--rate", "50/s"]);
    let output = run_mounted(&dirs.mounted, Mount::NearlyFull, &dirs.kept, &list).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 4, "{err}");
    assert!(
        err.contains(&journal.display().to_string()),
        "names the journal: {err}"
    );
    let records = String::from_utf8_lossy(&output.stdout).lines().count();
    assert_eq!(records, 40, "the report keeps every device: {err}");
    let kept = std::fs::read_to_string(dirs.kept.join("journal.jsonl")).unwrap_or_default();
    let intents: std::collections::HashSet<String> = kept
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["type"] == "intent")
        .filter_map(|l| l["address"].as_str().map(str::to_owned))
        .collect();
    let mut written = 0;
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        if !device.writes.is_empty() {
            written += 1;
            let address = fleet.fleet.address(i);
            assert!(
                intents.contains(address),
                "{address} written without its intent journaled"
            );
        }
    }
    assert!(
        written < 40,
        "writes stopped once the journal failed: {written}"
    );
    fleet.fleet.shutdown().await;
}

/// The planned writes wait for their wave in a temporary file: when its disk fills during
/// planning, what it held is carried into memory, the run says so, and every write still goes
/// out once, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_writes_whose_temporary_disk_fills_are_held_in_memory_and_all_go_out() {
    if !mount_namespaces() {
        return;
    }
    // 200 planned writes of about 1 KB each: far over the 64 KiB tmpfs.
    let fleet = enabled_fleet(200).await;
    let dirs = dirs();
    let journal = dirs.kept.join("journal.jsonl");
    let extra = ["--rate", "1000/s", "--burst", "50", "--quiet"];
    let list = apply_args(&fleet, &journal, &extra);
    let tmpdir = dirs.mounted.to_str().unwrap_or_default();
    let env = [("TMPDIR", tmpdir)];
    let output = run_mounted_env(&dirs.mounted, Mount::TinyTmpfs, &dirs.kept, &list, &env).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 0, "{err}");
    assert!(
        err.contains("the temporary file of the planned writes failed")
            && err.to_lowercase().contains("no space left"),
        "says why the writes are held in memory: {err}"
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(records.len(), 200, "{err}");
    assert!(records.iter().all(|r| r["verified"] == true), "{records:?}");
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        assert_eq!(device.writes.len(), 1, "camera {i} written once");
        assert!(!device.ssh_enabled, "camera {i} disabled");
    }
    fleet.fleet.shutdown().await;
}
