//! Waves with a failure budget: writes go out canary first, wave after wave, and a run whose
//! failures exceed `--max-failures` stops before the next wave, leaves the rest `deferred`
//! (exit 3), and stays stopped until told `--continue-after-failures`.

use sshfleet_sim::{DeviceAuth, DeviceSpec, Fault, Firmware, SshFault};

use crate::remediate::{all_writes, remediate};
use crate::support::{code, eventually, stderr, Sshfleet, TestFleet};

fn camera(fault: Fault) -> DeviceSpec {
    DeviceSpec {
        ssh_enabled: true,
        fault,
        firmware: Firmware::Modern,
        auth: DeviceAuth::Policy,
        ssh: SshFault::None,
    }
}

/// 30 cameras with SSH on; those in `failing` acknowledge writes and keep SSH on.
async fn fleet(failing: &[usize]) -> TestFleet {
    let specs = (0..30)
        .map(|i| match failing.contains(&i) {
            true => camera(Fault::IgnoresWrites),
            false => camera(Fault::None),
        })
        .collect();
    TestFleet::of(specs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_go_out_one_after_another_with_a_pause() {
    let fleet = fleet(&[]).await;
    let (output, records) = remediate(
        &fleet,
        "waves.jsonl",
        &[
            "--apply",
            "--yes",
            "--rate",
            "100/s",
            "--waves",
            "1,4,50%,100%",
            "--wave-pause",
            "600ms",
        ],
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(records.iter().filter(|r| r["verified"] == true).count(), 30);
    let mut times: Vec<u64> = all_writes(&fleet)
        .iter()
        .map(|w| {
            assert_eq!(w.len(), 1, "each camera written once");
            w[0].at_ms
        })
        .collect();
    times.sort_unstable();
    // Wave sizes 1, 4, 15, 10: a pause of at least ~600 ms before writes 2, 6 and 21.
    let gap = |i: usize| times[i] - times[i - 1];
    for boundary in [1, 5, 20] {
        assert!(
            gap(boundary) >= 550,
            "no pause before write {}: {times:?}",
            boundary + 1
        );
    }
    // The pauses fall between waves, nowhere else: the three longest gaps are those three
    // (an order, not a wall-clock bound a busy machine could break).
    let mut longest: Vec<usize> = (1..times.len()).collect();
    longest.sort_by_key(|&i| std::cmp::Reverse(gap(i)));
    longest.truncate(3);
    longest.sort_unstable();
    assert_eq!(longest, [1, 5, 20], "{times:?}");
    // The canary waves spread over sites: the first five writes hit five different sites.
    let site_of: std::collections::HashMap<String, String> = records
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_owned(),
                r["site"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut first: Vec<(u64, String)> = (0..30)
        .map(|i| {
            let w = &all_writes(&fleet)[i];
            (w[0].at_ms, site_of[fleet.fleet.address(i)].clone())
        })
        .collect();
    first.sort();
    let sites: std::collections::HashSet<&String> = first.iter().take(5).map(|(_, s)| s).collect();
    assert_eq!(sites.len(), 5, "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_exceeded_stops_before_the_next_wave_and_stays_stopped() {
    // Six failing cameras: whichever wave they fall in, two failures exceed a budget of 1.
    let failing = [0, 5, 10, 15, 20, 25];
    let fleet = fleet(&failing).await;
    let journal = fleet.path("budget.journal.jsonl").display().to_string();
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut list: Vec<String> = [
            "--apply",
            "--yes",
            "--rate",
            "100/s",
            "--waves",
            "2,4,25%,100%",
            "--journal",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        list.push(journal.clone());
        list.extend(extra.iter().map(|s| s.to_string()));
        list
    };
    let first = args(&["--max-failures", "1"]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (output, records) = remediate(&fleet, "first.jsonl", &first).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 3, "{err}");
    assert!(err.contains("--continue-after-failures"), "{err}");
    assert_eq!(records.len(), 30, "every device accounted for");
    let deferred = records.iter().filter(|r| r["action"] == "deferred").count();
    let written: usize = all_writes(&fleet).iter().map(Vec::len).sum();
    assert!(deferred > 0, "{records:?}");
    assert_eq!(
        written + deferred,
        30,
        "each device written or deferred, never both"
    );
    let failed = records.iter().filter(|r| r["verified"] == false).count();
    assert!(failed >= 2, "more failures than the budget: {failed}");
    for r in records.iter().filter(|r| r["action"] == "deferred") {
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("exceeded --max-failures"),
            "{r}"
        );
    }

    // Stopped stays stopped.
    let (again, _) = remediate(&fleet, "again.jsonl", &first).await;
    assert_eq!(code(&again), 2, "{}", stderr(&again));
    assert!(
        stderr(&again).contains("stopped by its failure budget"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        all_writes(&fleet).iter().map(Vec::len).sum::<usize>(),
        written
    );

    // Told to continue, it goes on from where it stopped, never writing a device twice.
    let go_on = args(&["--continue-after-failures", "--max-failures", "100%"]);
    let go_on: Vec<&str> = go_on.iter().map(String::as_str).collect();
    let (go_on, after) = remediate(&fleet, "continued.jsonl", &go_on).await;
    assert!(matches!(code(&go_on), 1 | 3), "{}", stderr(&go_on));
    assert!(after.iter().all(|r| r["action"] != "deferred"), "{after:?}");
    for (i, w) in all_writes(&fleet).iter().enumerate() {
        assert_eq!(w.len(), 1, "camera {i} written once over both runs");
    }
    let snapshot = fleet.fleet.snapshot();
    for (i, d) in snapshot.iter().enumerate() {
        assert_eq!(d.ssh_enabled, failing.contains(&i), "camera {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_waves_asks_on_a_terminal_and_a_no_defers_the_rest() {
    use tokio::io::AsyncWriteExt as _;
    let fleet = fleet(&[]).await;
    let inventory = fleet.inventory.display().to_string();
    let out = fleet.path("asked.jsonl");
    let command = format!(
        "{} remediate --inventory {inventory} --ssh disabled --apply --yes --rate 100/s --timeout 5s \
         --waves 3,100% --confirm-waves -o {} --journal {}",
        env!("CARGO_BIN_EXE_sshfleet"),
        out.display(),
        fleet.path("asked.journal.jsonl").display()
    );
    // Off a terminal it refuses at once.
    let off = Sshfleet::remediate(&fleet.inventory)
        .args(&["--ssh", "disabled", "--apply", "--yes", "--waves", "3,100%"])
        .arg("--confirm-waves")
        .out(&out)
        .run()
        .await;
    assert_eq!(code(&off), 2, "{}", stderr(&off));
    assert!(
        stderr(&off).contains("asks on a terminal"),
        "{}",
        stderr(&off)
    );
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));

    // On a terminal (util-linux `script` gives it one), the answer `no` after the canary
    // wave defers the rest.
    let Ok(mut child) = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("SSHFLEET_PASSWORD", crate::support::PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        eprintln!("SKIPPED PART: no `script` (util-linux) to give the run a terminal");
        return;
    };
    // Answered once the question is shown: what is typed before it is discarded.
    let mut shown = crate::change_text::until(&mut child, "Type 'yes' to go on: ").await;
    // The canary wave's result is shown before the next wave is asked for.
    let result = shown
        .find("Wave 1 done: 3 device(s), 0 failed write(s) or verification(s).")
        .unwrap_or_else(|| panic!("no result of wave 1: {shown}"));
    assert!(result < shown.find("Wave 2: set SSH").unwrap(), "{shown}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"no\n").await.unwrap();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the run ends")
        .unwrap();
    drop(stdin);
    shown.push_str(&String::from_utf8_lossy(&output.stdout));
    assert!(
        shown.contains("Wave 2: set SSH disabled on 27 more device(s)?"),
        "{shown}"
    );
    assert_eq!(output.status.code(), Some(3), "{shown}");
    let written: usize = all_writes(&fleet).iter().map(Vec::len).sum();
    assert_eq!(written, 3, "only the canary wave");
    let records = crate::support::read_jsonl(&out);
    assert_eq!(
        records.iter().filter(|r| r["action"] == "deferred").count(),
        27
    );
}

/// The journal's entries of `kind` (`wave`, `outcome`, …), in order.
fn journal_entries(path: &std::path::Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

/// Outcomes journaled after the last `wave` entry numbered `wave` (0-based).
fn outcomes_in_wave(path: &std::path::Path, wave: u64) -> Option<usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let start = entries
        .iter()
        .rposition(|v| v["type"] == "wave" && v["number"] == wave)?;
    Some(
        entries[start..]
            .iter()
            .filter(|v| v["type"] == "outcome")
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_inside_a_wave_then_a_rerun_goes_on_in_that_wave_writing_each_camera_once() {
    let fleet = fleet(&[]).await;
    let journal = fleet.path("killed.journal.jsonl");
    let out = fleet.path("killed.jsonl");
    let run_args = |rate: &str| {
        Sshfleet::remediate(&fleet.inventory)
            .args(&["--ssh", "disabled", "--apply", "--yes", "--rate", rate])
            .args(&["--waves", "2,10,100%"])
            .file("--journal", &journal)
            .out(&out)
            .arg("--quiet")
    };
    // Waves of 2, 10 and 18; killed once the second wave has journaled three outcomes.
    let mut child = run_args("10/s").command().spawn().expect("spawn");
    let in_second_wave = || outcomes_in_wave(&journal, 1).is_some_and(|n| n >= 3);
    let reached = eventually(in_second_wave, std::time::Duration::from_secs(15)).await;
    assert!(reached, "the second wave got going");
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let done_in_wave = outcomes_in_wave(&journal, 1).unwrap();
    assert!(done_in_wave < 10, "killed inside the wave: {done_in_wave}");
    let waves_before = journal_entries(&journal, "wave").len();
    assert_eq!(waves_before, 2, "the kill came in the second wave");
    let written_before: usize = all_writes(&fleet).iter().map(Vec::len).sum();

    let output = run_args("100/s").run().await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // Each camera written exactly once over both runs, and every one is now disabled.
    for (i, writes) in all_writes(&fleet).iter().enumerate() {
        assert_eq!(writes.len(), 1, "camera {i}: {writes:?}");
    }
    assert!(fleet.fleet.snapshot().iter().all(|d| !d.ssh_enabled));
    // The rerun went on in the second wave, with what it had left, then the last wave;
    // the waves are still cut from the 30 planned at first.
    let waves = journal_entries(&journal, "wave");
    let resumed: Vec<(u64, u64, u64)> = waves[waves_before..]
        .iter()
        .map(|w| {
            (
                w["number"].as_u64().unwrap(),
                w["devices"].as_u64().unwrap(),
                w["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    assert_eq!(resumed[0].0, 1, "the second wave goes on: {resumed:?}");
    assert!(
        resumed[0].1 <= (10 - done_in_wave) as u64 && resumed[0].1 > 0,
        "it has only what it had left: {resumed:?}, {done_in_wave} done"
    );
    assert_eq!((resumed[1].0, resumed[1].2), (2, 30), "{resumed:?}");
    let rerun_writes: u64 = resumed.iter().map(|w| w.1).sum();
    assert_eq!(rerun_writes as usize, 30 - written_before, "{resumed:?}");
    // The last wave is the planned 18 (17 when a write was out, unjournaled, at the kill).
    assert!((17..=18).contains(&resumed[1].1), "{resumed:?}");
}
