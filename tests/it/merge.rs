//! `report merge`: shard reports of one inventory become one report, and the merge proves
//! that every inventory row is in it exactly once.

use std::collections::HashMap;

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::support::{args, code, read_jsonl, run, stderr, TestFleet, PASSWORD};

const SHARDS: [&str; 4] = ["s0.jsonl", "s1.csv", "s2.json", "s3.jsonl"];

async fn sharded_fleet() -> TestFleet {
    let fleet = TestFleet::start(SimConfig {
        devices: 40,
        seed: 31,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 7);
    }
    for (k, name) in SHARDS.iter().enumerate() {
        let shard = format!("{k}/{}", SHARDS.len());
        let (output, _) = fleet.scan(name, &["--shard", &shard]).await;
        assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    }
    fleet
}

/// `report merge --inventory <fleet> -o <out> <shards…>` plus `extra`.
async fn merge(
    fleet: &TestFleet,
    out: &str,
    shards: &[String],
    extra: &[&str],
) -> std::process::Output {
    let mut list = args(&[
        "report",
        "merge",
        "--inventory",
        &fleet.inventory.display().to_string(),
        "-o",
        &fleet.path(out).display().to_string(),
    ]);
    list.extend(extra.iter().map(|s| s.to_string()));
    list.extend(shards.iter().cloned());
    run(&list, &[("SSHFLEET_PASSWORD", PASSWORD)]).await
}

fn shard_paths(fleet: &TestFleet) -> Vec<String> {
    SHARDS
        .iter()
        .map(|s| fleet.path(s).display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_in_any_format_merge_into_the_fleets_report_with_history_and_metrics() {
    let fleet = sharded_fleet().await;
    let (whole, unsharded) = fleet.scan("whole.jsonl", &[]).await;
    assert_eq!(code(&whole), 1, "{}", stderr(&whole));

    let history = fleet.path("fleet.sqlite").display().to_string();
    let prom = fleet.path("fleet.prom").display().to_string();
    let output = merge(
        &fleet,
        "merged.jsonl",
        &shard_paths(&fleet),
        &["--history", &history, "--metrics-out", &prom],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "one camera has SSH on: a finding\n{err}");
    assert!(
        err.contains("coverage: all 40 inventory rows, each exactly once"),
        "{err}"
    );
    let merged = read_jsonl(&fleet.path("merged.jsonl"));
    assert_eq!(merged.len(), 40);
    // The same devices in the same states as one unsharded scan, every column present.
    let state = |records: &[Value]| -> HashMap<String, (Value, Value, Value)> {
        records
            .iter()
            .map(|r| {
                (
                    r["address"].as_str().unwrap().to_owned(),
                    (
                        r["status"].clone(),
                        r["ssh_enabled"].clone(),
                        r["serial"].clone(),
                    ),
                )
            })
            .collect()
    };
    assert_eq!(state(&merged), state(&unsharded));
    let keys = |r: &Value| r.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&merged[0]), keys(&unsharded[0]));
    // New in the history: every device, drift against nothing.
    assert!(merged.iter().all(|r| r["change"] == "new"), "{merged:?}");

    let prom_text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        prom_text.lines().any(|l| l == "sshfleet_devices 40"),
        "{prom_text}"
    );
    assert!(
        prom_text.contains("command=\"report merge\""),
        "{prom_text}"
    );
    let runs = run(&args(&["history", &history, "runs", "--json"]), &[]).await;
    assert_eq!(code(&runs), 0, "{}", stderr(&runs));
    let listed = String::from_utf8_lossy(&runs.stdout);
    assert!(listed.contains("report merge"), "{listed}");

    // A second merge of the same shards is unchanged against the first.
    let again = merge(
        &fleet,
        "again.jsonl",
        &shard_paths(&fleet),
        &["--history", &history],
    )
    .await;
    assert_eq!(code(&again), 1, "{}", stderr(&again));
    let again = read_jsonl(&fleet.path("again.jsonl"));
    assert!(
        again.iter().all(|r| r["change"] == "unchanged"),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_row_a_duplicate_and_a_stranger_fail_the_merge_by_name() {
    let fleet = sharded_fleet().await;
    // Drop the first record of shard 0.
    let s0 = fleet.path(SHARDS[0]);
    let text = std::fs::read_to_string(&s0).unwrap();
    let (dropped, rest) = text.split_once('\n').unwrap();
    let dropped: Value = serde_json::from_str(dropped).unwrap();
    let address = dropped["address"].as_str().unwrap().to_owned();
    std::fs::write(&s0, rest).unwrap();
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    let line = inventory
        .lines()
        .position(|l| l.starts_with(&format!("{address},")))
        .unwrap()
        + 1;

    let output = merge(&fleet, "merged.jsonl", &shard_paths(&fleet), &["--quiet"]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(err.contains("NOT COVERED: 39 of 40"), "{err}");
    assert!(
        err.contains(&format!("missing: line {line} {address}")),
        "{err}"
    );
    assert_eq!(read_jsonl(&fleet.path("merged.jsonl")).len(), 39);

    // Shard 1 given twice, and a report of another fleet's camera.
    let stranger = fleet.path("stranger.jsonl");
    std::fs::write(
        &stranger,
        "{\"address\":\"http://192.0.2.1\",\"status\":\"timeout\",\"checked_at\":\"2026-12-01T00:00:00.000Z\"}\n",
    )
    .unwrap();
    let mut shards = shard_paths(&fleet);
    shards.push(shards[1].clone());
    shards.push(stranger.display().to_string());
    let output = merge(&fleet, "twice.jsonl", &shards, &["--quiet"]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(err.contains("duplicate: line "), "{err}");
    assert!(
        err.contains(&format!("in {}, {}", shards[1], shards[1])),
        "{err}"
    );
    assert!(
        err.contains("not in the inventory: http://192.0.2.1"),
        "{err}"
    );
    // Each row still once in the output; the stranger left out.
    let twice = read_jsonl(&fleet.path("twice.jsonl"));
    assert_eq!(twice.len(), 39);

    // A directory of shards, one of them written two days ago: stale with --max-age.
    let dir = fleet.path("shards");
    std::fs::create_dir(&dir).unwrap();
    for name in SHARDS {
        std::fs::copy(fleet.path(name), dir.join(name)).unwrap();
    }
    std::fs::write(dir.join(SHARDS[0]), text.as_bytes()).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a shard").unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dir.join(SHARDS[2]))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let dir_arg = dir.display().to_string();
    let output = merge(
        &fleet,
        "from-dir.jsonl",
        std::slice::from_ref(&dir_arg),
        &[],
    )
    .await;
    let err = stderr(&output);
    assert!(err.contains("coverage: all 40 inventory rows"), "{err}");
    let output = merge(&fleet, "from-dir.jsonl", &[dir_arg], &["--max-age", "36h"]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(
        err.contains(&format!(
            "stale: {} was last written 2d ago",
            dir.join(SHARDS[2]).display()
        )),
        "{err}"
    );

    // A shard that is not a report refuses the merge (exit 2), naming the file and line.
    let broken = fleet.path("broken.jsonl");
    std::fs::write(&broken, "{\"address\":\"x\",\"status\":\"ok\"}\nnot json\n").unwrap();
    let output = merge(
        &fleet,
        "broken-out.jsonl",
        &[broken.display().to_string()],
        &["--quiet"],
    )
    .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{err}");
    assert!(
        err.contains("broken.jsonl") && err.contains("line 2"),
        "{err}"
    );
}
