//! Remediation: dry runs touch nothing; applied runs write each device once, under the limits
//! as the devices saw them, verified, and resumable after SIGKILL from the journal.

use std::path::Path;
use std::time::Duration;

use sshfleet_sim::{
    DeviceAuth, DeviceSpec, Fault, FaultProfile, Firmware, SimConfig, SshFault, WriteEvent,
};

use crate::support::{
    args, code, eventually, read_jsonl, run, stderr, Sshfleet, TestFleet, PASSWORD,
};

fn camera(ssh_enabled: bool, firmware: Firmware) -> DeviceSpec {
    DeviceSpec {
        ssh_enabled,
        fault: Fault::None,
        firmware,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    }
}

pub(crate) async fn remediate(
    fleet: &TestFleet,
    out: &str,
    extra: &[&str],
) -> (std::process::Output, Vec<serde_json::Value>) {
    remediate_env(fleet, out, extra, &[]).await
}

/// [`remediate`] with more environment than the password.
async fn remediate_env(
    fleet: &TestFleet,
    out: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, Vec<serde_json::Value>) {
    let out_path = fleet.path(out);
    let mut env = env.to_vec();
    env.push(("SSHFLEET_PASSWORD", PASSWORD));
    let output = run(&remediate_args(fleet, &out_path, extra), &env).await;
    (output, read_jsonl(&out_path))
}

/// `remediate --ssh disabled` of `fleet` with its report at `out`, then `extra`.
fn remediate_args(fleet: &TestFleet, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut list = vec![
        "remediate",
        "--inventory",
        fleet.inventory.to_str().unwrap_or_default(),
        "--ssh",
        "disabled",
        "-o",
        out.to_str().unwrap_or_default(),
        "--timeout",
        "5s",
        "--quiet",
    ];
    list.extend_from_slice(extra);
    args(&list)
}

/// The most writes any one-second window holds, from the devices' own timestamps.
fn busiest_second(writes: &[u64]) -> usize {
    let mut times = writes.to_vec();
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 1000 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

pub(crate) fn all_writes(fleet: &TestFleet) -> Vec<Vec<WriteEvent>> {
    fleet
        .fleet
        .snapshot()
        .into_iter()
        .map(|d| d.writes)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_and_writes_nothing() {
    let mut specs = vec![
        camera(true, Firmware::Modern),
        camera(false, Firmware::Modern),
        camera(true, Firmware::ParamOnly),
    ];
    specs.push(DeviceSpec {
        fault: Fault::WrongPassword,
        ..camera(true, Firmware::Modern)
    });
    let fleet = TestFleet::of(specs).await;
    let (output, records) = remediate(&fleet, "plan.jsonl", &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let actions: Vec<&str> = (0..4)
        .map(|i| {
            let r = records
                .iter()
                .find(|r| r["address"] == fleet.fleet.address(i))
                .expect("record");
            r["action"].as_str().unwrap_or_default()
        })
        .collect();
    assert_eq!(actions, ["set", "none", "set", "skip"]);
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "a dry run writes nothing"
    );
    assert!(
        !fleet.path("plan.journal.jsonl").exists(),
        "and keeps no journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_run_fixes_every_device_once_and_verifies() {
    let mut specs: Vec<DeviceSpec> = (0..24)
        .map(|i| camera(i % 3 != 0, Firmware::Modern))
        .collect();
    specs.extend([
        camera(true, Firmware::ParamOnly),
        camera(false, Firmware::ParamOnly),
    ]);
    let fleet = TestFleet::of(specs.clone()).await;
    let (output, records) = remediate(
        &fleet,
        "apply.jsonl",
        &["--apply", "--yes", "--rate", "50/s"],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(records.len(), specs.len());
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        assert!(!device.ssh_enabled, "device {i} disabled after");
        assert_eq!(
            device.writes.len(),
            usize::from(specs[i].ssh_enabled),
            "device {i}: {:?}",
            device.writes
        );
        let r = records
            .iter()
            .find(|r| r["address"] == fleet.fleet.address(i))
            .expect("record");
        if specs[i].ssh_enabled {
            assert_eq!(r["action"], "set", "{r}");
            assert_eq!(r["before"], true);
            assert_eq!(r["after"], false);
            assert_eq!(r["verified"], true);
        } else {
            assert_eq!(r["action"], "none", "{r}");
        }
    }
    let param = records
        .iter()
        .find(|r| r["address"] == fleet.fleet.address(24))
        .expect("record");
    assert_eq!(param["method"], "param.cgi");
    assert_eq!(param["verified"], true);
}

/// The planned writes wait for their wave in a temporary file; without one they are held in
/// memory, said once, and the run is the same: every wrong camera written once, verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_temporary_directory_the_writes_wait_in_memory_and_go_out_once() {
    let specs: Vec<DeviceSpec> = (0..12)
        .map(|i| camera(i % 4 != 0, Firmware::Modern))
        .collect();
    for tmpdir in [None, Some("/nonexistent/sshfleet-tmp")] {
        let fleet = TestFleet::of(specs.clone()).await;
        let env: Vec<(&str, &str)> = tmpdir.iter().map(|dir| ("TMPDIR", *dir)).collect();
        let extra = [
            "--apply",
            "--yes",
            "--rate",
            "100/s",
            "--waves",
            "1,50%,100%",
        ];
        let (output, records) = remediate_env(&fleet, "apply.jsonl", &extra, &env).await;
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        let warned = stderr(&output).contains("no temporary file for the planned writes");
        assert_eq!(warned, tmpdir.is_some(), "{tmpdir:?}: {}", stderr(&output));
        assert_eq!(records.len(), specs.len());
        let verified = records.iter().filter(|r| r["verified"] == true).count();
        assert_eq!(verified, 9, "{records:?}");
        for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
            assert!(!device.ssh_enabled, "device {i} disabled after");
            let want = usize::from(specs[i].ssh_enabled);
            assert_eq!(device.writes.len(), want, "device {i}: {:?}", device.writes);
        }
    }
    // A dry run holds no writes: it has nothing to warn of.
    let fleet = TestFleet::of(specs).await;
    let env = [("TMPDIR", "/nonexistent/sshfleet-tmp")];
    let (output, records) = remediate_env(&fleet, "dry.jsonl", &[], &env).await;
    assert_eq!(code(&output), 1, "findings: {}", stderr(&output));
    assert_eq!(records.len(), 12);
    assert!(
        !stderr(&output).contains("temporary"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_burst_hold_as_seen_by_the_devices() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 30]).await;
    let (output, _) = remediate(
        &fleet,
        "r.jsonl",
        &["--apply", "--yes", "--rate", "10/s", "--burst", "3"],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let times: Vec<u64> = all_writes(&fleet)
        .iter()
        .flatten()
        .map(|w| w.at_ms)
        .collect();
    assert_eq!(times.len(), 30);
    // GCRA: at most rate + burst writes in any one-second window.
    assert!(
        busiest_second(&times) <= 13,
        "busiest second: {}",
        busiest_second(&times)
    );
    // And the limit is not slack: 30 writes at 10/s take at least ~2.4 s of device time.
    let span = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    assert!(span >= 2_400, "writes spread over {span} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_site_limit_holds_for_each_site() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 12]).await;
    let (output, _) = remediate(
        &fleet,
        "s.jsonl",
        &[
            "--apply",
            "--yes",
            "--rate",
            "100/s",
            "--burst",
            "10",
            "--site-rate",
            "3/s",
        ],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap_or_default();
    let site_of = |address: &str| {
        inventory
            .lines()
            .find(|l| l.starts_with(address))
            .and_then(|l| l.split(',').nth(2))
            .unwrap_or_default()
            .to_string()
    };
    let mut by_site: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for (i, writes) in all_writes(&fleet).iter().enumerate() {
        by_site
            .entry(site_of(fleet.fleet.address(i)))
            .or_default()
            .extend(writes.iter().map(|w| w.at_ms));
    }
    assert!(by_site.len() > 1, "the fleet spans sites");
    for (site, times) in by_site {
        assert!(
            busiest_second(&times) <= 4,
            "site {site}: {}",
            busiest_second(&times)
        );
    }
}

fn journal_lines(path: &Path, kind: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("\"type\":\"{kind}\"")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_several_points_then_resume_writes_each_device_exactly_once() {
    let fleet = TestFleet::start(SimConfig {
        devices: 60,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i % 4 != 0);
    }
    let journal = fleet.path("j.jsonl");
    let out = fleet.path("run.jsonl");
    let run_args = |rate: &str| {
        Sshfleet::remediate(&fleet.inventory)
            .args(&["--ssh", "disabled", "--apply", "--yes", "--rate", rate])
            .file("--journal", &journal)
            .out(&out)
            .arg("--quiet")
    };
    for kill_after_intents in [3, 20] {
        let mut child = run_args("10/s").command().spawn().expect("spawn");
        let reached = eventually(
            || journal_lines(&journal, "intent") >= kill_after_intents,
            Duration::from_secs(8),
        )
        .await;
        assert!(reached, "the run got going");
        child.start_kill().expect("SIGKILL");
        let _ = child.wait().await;
    }
    let output = run_args("50/s").run().await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        assert!(!device.ssh_enabled, "device {i} disabled");
        assert_eq!(
            device.writes.len(),
            usize::from(i % 4 != 0),
            "device {i} written {:?}",
            device.writes
        );
    }
    // Every device that was written has an outcome in the journal.
    assert_eq!(journal_lines(&journal, "outcome"), 45);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_journal_for_another_target_or_inventory_is_refused() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 3]).await;
    let journal = fleet.path("j.jsonl");
    let j = journal.to_str().unwrap_or_default();
    let (first, _) = remediate(&fleet, "a.jsonl", &["--apply", "--yes", "--journal", j]).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    // Only an unfinished run binds its journal (a finished one starts a new run).
    cut_short(&journal);
    let bound = |inventory: &Path, ssh: &str| {
        Sshfleet::remediate(inventory).args(&[
            "--ssh",
            ssh,
            "--apply",
            "--yes",
            "--journal",
            j,
            "-o",
            "-",
        ])
    };
    let output = bound(&fleet.inventory, "enabled").run().await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("another run"),
        "{}",
        stderr(&output)
    );
    let other = fleet.path("other.csv");
    std::fs::write(&other, format!("address\n{}\n", fleet.fleet.address(0))).expect("write");
    let output = bound(&other, "disabled").run().await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("different inventory"),
        "{}",
        stderr(&output)
    );
    assert!(
        all_writes(&fleet).iter().all(|w| w.len() == 1),
        "no extra writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_is_refused_without_yes_off_a_terminal_and_beyond_max_changes() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 4]).await;
    let (output, _) = remediate(&fleet, "a.jsonl", &["--apply"]).await;
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
    let (output, records) = remediate(
        &fleet,
        "b.jsonl",
        &["--apply", "--yes", "--max-changes", "3"],
    )
    .await;
    assert_eq!(code(&output), 2);
    assert_eq!(records.len(), 4, "the plan is still reported");
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "nothing written"
    );
}

/// Runs the real binary with the journal's file system "full" after `journal_bytes`:
/// RLIMIT_FSIZE makes every write past it fail (EFBIG), as a full disk fails with ENOSPC.
/// SIGXFSZ is ignored so the write fails instead of killing the process. The report goes to
/// stdout, which the limit does not touch.
async fn remediate_with_file_size_limit(
    fleet: &TestFleet,
    journal: &Path,
    journal_bytes: u64,
) -> std::process::Output {
    let script = r#"trap '' XFSZ; exec prlimit --fsize="$0" -- "$@""#;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args(["-c", script, &journal_bytes.to_string()])
        .arg(env!("CARGO_BIN_EXE_sshfleet"))
        .args([
            "remediate",
            "--inventory",
            fleet.inventory.to_str().unwrap_or_default(),
            "--ssh",
            "disabled",
            "--apply",
            "--yes",
            "--rate",
            "50/s",
            "--journal",
            journal.to_str().unwrap_or_default(),
            "-o",
            "-",
            "--timeout",
            "5s",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SSHFLEET_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("finished in time")
        .expect("ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_fills_up_stops_writes_says_so_and_exits_4() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 30]).await;
    let journal = fleet.path("full.journal.jsonl");
    // The header and a handful of entries fit; the rest of the run's entries do not.
    let output = remediate_with_file_size_limit(&fleet, &journal, 900).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 4, "{err}");
    assert!(
        err.contains(&journal.display().to_string()) && err.contains("journal"),
        "names the journal: {err}"
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSONL"))
        .collect();
    assert_eq!(records.len(), 30, "the report keeps every device");
    // Every line left in the journal is whole, and no device went out without its intent.
    let intents: std::collections::HashSet<String> = read_jsonl(&journal)
        .into_iter()
        .filter(|l| l["type"] == "intent")
        .map(|l| l["address"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut written = 0;
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        let address = fleet.fleet.address(i);
        let record = records
            .iter()
            .find(|r| r["address"] == address)
            .expect("record");
        if device.writes.is_empty() {
            assert_eq!(record["verified"], serde_json::Value::Null, "{record}");
            assert!(
                record["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not written")),
                "{record}"
            );
        } else {
            written += 1;
            assert_eq!(device.writes.len(), 1);
            assert!(intents.contains(address), "{address} written unjournaled");
            assert_eq!(record["verified"], true, "{record}");
        }
    }
    assert!(written > 0 && written < 30, "{written} written");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_written_at_start_changes_nothing_and_exits_2() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 3]).await;
    let journal = fleet.path("journal-on-full-disk");
    std::os::unix::fs::symlink("/dev/full", &journal).expect("symlink");
    let (output, _) = remediate(
        &fleet,
        "a.jsonl",
        &[
            "--apply",
            "--yes",
            "--journal",
            journal.to_str().unwrap_or_default(),
        ],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(err.contains(&journal.display().to_string()), "{err}");
    assert_eq!(
        err.matches("No space left on device").count(),
        1,
        "the OS error once: {err}"
    );
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_device_ignores_is_unverified_with_an_error() {
    let fleet = TestFleet::start(SimConfig {
        specs: Some(vec![DeviceSpec {
            fault: Fault::IgnoresWrites,
            ..camera(true, Firmware::Modern)
        }]),
        ..SimConfig::default()
    })
    .await;
    let (output, records) = remediate(
        &fleet,
        "ignored.jsonl",
        &["--apply", "--yes", "--rate", "50/s"],
    )
    .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let record = &records[0];
    assert_eq!(record["action"], "set", "{record}");
    assert_eq!(record["after"], true, "{record}");
    assert_eq!(record["verified"], false, "{record}");
    assert_eq!(record["compliant"], false, "{record}");
    let error = record["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("read-back shows SSH still enabled"),
        "{record}"
    );
    fleet.fleet.shutdown().await;
}

/// Ctrl-C while `--apply` is still planning: nothing is written, and the devices already
/// planned for a write are reported (not written, stopped), not dropped from the report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_planning_writes_nothing_and_reports_what_was_planned() {
    let hang = DeviceSpec {
        fault: Fault::Hang,
        ..camera(true, Firmware::Modern)
    };
    let mut specs = vec![camera(true, Firmware::Modern); 5];
    specs.extend([hang.clone(), hang]);
    specs.extend(vec![camera(true, Firmware::Modern); 10]);
    let fleet = TestFleet::of(specs).await;
    let out = fleet.path("stopped.jsonl");
    let extra = ["--apply", "--yes", "--concurrency", "2", "--retries", "0"];
    let list = remediate_args(&fleet, &out, &extra);
    let child = crate::support::command(&list, &[("SSHFLEET_PASSWORD", PASSWORD)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Rows go out in order, two at a time: once both hanging cameras were asked, the first
    // five were read and planned.
    let asked = || {
        let snapshot = fleet.fleet.snapshot();
        snapshot[5].requests > 0 && snapshot[6].requests > 0
    };
    let planning = eventually(asked, Duration::from_secs(4)).await;
    assert!(planning, "the hanging cameras were asked");
    crate::support::interrupt(&child);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits within the grace period")
        .expect("wait");
    assert_eq!(code(&output), 130, "{}", stderr(&output));
    // The last line is a whole sentence naming the command that resumes the run.
    let err = stderr(&output);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "interrupted before every device was written; resume with: sshfleet remediate "
        ) && last.contains(" --apply ")
            && last.contains("--journal "),
        "{err}"
    );
    let journal = fleet.path("stopped.journal.jsonl");
    assert!(
        last.ends_with(&format!("--journal {}", journal.display())),
        "the journal a rerun resumes is named: {last}"
    );
    assert!(
        all_writes(&fleet).iter().all(Vec::is_empty),
        "nothing written"
    );
    let records = read_jsonl(&out);
    for i in 0..5 {
        let r = records
            .iter()
            .find(|r| r["address"] == fleet.fleet.address(i))
            .unwrap_or_else(|| {
                panic!("camera {i} planned, then dropped from the report: {records:?}")
            });
        assert_eq!(r["action"], "set", "{r}");
        assert_eq!(r["ssh_enabled"], true, "{r}");
        assert_eq!(r["verified"], serde_json::Value::Null, "{r}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains("stopped"), "{r}");
    }
    fleet.fleet.shutdown().await;
}

/// Takes the `finished` entries out of a journal, as a run killed before its end leaves it.
pub(crate) fn cut_short(journal: &Path) {
    let text = std::fs::read_to_string(journal).expect("journal");
    let cut: String = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"finished\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(journal, cut).expect("cut the journal short");
}

/// The record of the camera at `i` in `records`.
pub(crate) fn row_of<'a>(
    fleet: &TestFleet,
    records: &'a [serde_json::Value],
    i: usize,
) -> &'a serde_json::Value {
    let address = fleet.fleet.address(i);
    records
        .iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("no record of {address}"))
}

/// The nightly run, rerun after another client turned SSH back on for a camera it had
/// disabled: the finished journal starts a new run, which reads every camera again and
/// writes the one turned back on (it used to be reported compliant from the journal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_on_a_finished_journal_reads_every_camera_again() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 3]).await;
    let (first, _) = remediate(&fleet, "nightly.jsonl", &["--apply", "--yes"]).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let journal = fleet.path("nightly.journal.jsonl");
    assert_eq!(journal_lines(&journal, "finished"), 1);
    fleet.fleet.set_ssh_enabled(1, true);
    let requests_before: Vec<u64> = fleet.fleet.snapshot().iter().map(|d| d.requests).collect();
    let (second, records) = remediate(&fleet, "nightly.jsonl", &["--apply", "--yes"]).await;
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    let now = fleet.fleet.snapshot();
    for (i, device) in now.iter().enumerate() {
        assert!(
            device.requests > requests_before[i],
            "camera {i} read again"
        );
        assert!(!device.ssh_enabled, "camera {i} disabled");
    }
    assert_eq!(now[1].writes.len(), 2, "camera 1 written again");
    assert_eq!(now[0].writes.len(), 1, "camera 0 not written twice");
    let row = row_of(&fleet, &records, 1);
    assert_eq!(row["action"], "set", "{row}");
    assert_eq!(row["before"], true, "{row}");
    assert_eq!(row["verified"], true, "{row}");
    assert_eq!(row_of(&fleet, &records, 0)["action"], "none");
    // Two runs, each with its header, each finished.
    assert_eq!(journal_lines(&journal, "header"), 2);
    assert_eq!(journal_lines(&journal, "finished"), 2);
}

/// A run cut short (as SIGKILL leaves its journal: no `finished`) is resumed: a camera it
/// wrote is not written twice, but it is read again and reported as it is now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_reports_what_it_wrote_as_read_now_and_does_not_write_it_twice() {
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); 3]).await;
    let (first, _) = remediate(&fleet, "nightly.jsonl", &["--apply", "--yes"]).await;
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let journal = fleet.path("nightly.journal.jsonl");
    cut_short(&journal);
    fleet.fleet.set_ssh_enabled(1, true);
    let requests_before = fleet.fleet.snapshot()[1].requests;
    let (second, records) = remediate(&fleet, "nightly.jsonl", &["--apply", "--yes"]).await;
    assert_eq!(code(&second), 1, "a finding: {}", stderr(&second));
    let camera_1 = &fleet.fleet.snapshot()[1];
    assert!(camera_1.requests > requests_before, "read again");
    assert!(camera_1.ssh_enabled, "not written twice in one run");
    assert_eq!(camera_1.writes.len(), 1);
    let row = row_of(&fleet, &records, 1);
    assert_eq!(row["ssh_enabled"], true, "{row}");
    assert_eq!(row["compliant"], false, "{row}");
    assert!(
        row["error"]
            .as_str()
            .unwrap_or_default()
            .contains("again since this run wrote it"),
        "{row}"
    );
    // The resumed run finished: the next one is new and writes camera 1.
    let (third, _) = remediate(&fleet, "nightly.jsonl", &["--apply", "--yes"]).await;
    assert_eq!(code(&third), 0, "{}", stderr(&third));
    assert!(!fleet.fleet.snapshot()[1].ssh_enabled);
}

/// Ten cameras on one site at a low site rate: the last waits 4.5 s for its permit, longer
/// than its whole device time (4 s with `--timeout 1s --retries 0`). The wait is the run's
/// rate limit, not the camera's time: every camera is written and verified, each permit
/// apart as the cameras saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_site_rate_writes_and_verifies_every_camera_of_the_site() {
    let count = 10;
    let fleet = TestFleet::of(vec![camera(true, Firmware::Modern); count]).await;
    let inventory = fleet.path("one-site.csv");
    let rows: String = (0..count)
        .map(|i| format!("{},lobby\n", fleet.fleet.address(i)))
        .collect();
    std::fs::write(&inventory, format!("address,site\n{rows}")).expect("inventory");
    let out = fleet.path("site.jsonl");
    let output = run(
        &args(&[
            "remediate",
            "--inventory",
            inventory.to_str().unwrap_or_default(),
            "--ssh",
            "disabled",
            "--apply",
            "--yes",
            "--site-rate",
            "120/m",
            "--timeout",
            "1s",
            "--retries",
            "0",
            "--quiet",
            "-o",
            out.to_str().unwrap_or_default(),
        ]),
        &[("SSHFLEET_PASSWORD", PASSWORD)],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let records = read_jsonl(&out);
    for i in 0..count {
        let row = row_of(&fleet, &records, i);
        assert_eq!(row["status"], "ok", "{row}");
        assert_eq!(row["action"], "set", "{row}");
        assert_eq!(row["verified"], true, "{row}");
    }
    let mut times: Vec<u64> = Vec::new();
    for (i, device) in fleet.fleet.snapshot().iter().enumerate() {
        assert!(!device.ssh_enabled, "camera {i} disabled");
        assert_eq!(device.writes.len(), 1, "camera {i} written once");
        times.extend(device.writes.iter().map(|w| w.at_ms));
    }
    times.sort_unstable();
    let span = times.last().copied().unwrap_or(0) - times.first().copied().unwrap_or(0);
    assert!(span >= 4_000, "ten writes at 2/s span {span} ms");
}
