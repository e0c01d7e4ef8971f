//! Output files: a planted symbolic link is never followed, an output that would destroy
//! the inventory, the journal, a plan or another output is refused before anything runs,
//! a killed merge leaves no partial report under its name, an oversized plan is refused
//! unread, and a large waiver file loads at once.

use std::path::Path;
use std::time::{Duration, Instant};

use sshfleet_sim::{FaultProfile, SimConfig};

use crate::remediate::all_writes;
use crate::support::{args, code, command, run, stderr, TestFleet, PASSWORD};

async fn fleet(devices: usize, seed: u64, latency: Duration) -> TestFleet {
    let fleet = TestFleet::start(SimConfig {
        devices,
        seed,
        faults: FaultProfile::None,
        latency,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, true);
    }
    fleet
}

fn path_arg(fleet: &TestFleet, name: &str) -> String {
    fleet.path(name).display().to_string()
}

/// `remediate --inventory <fleet> --ssh disabled --timeout 5s --quiet` plus `extra`.
fn remediate_args(fleet: &TestFleet, extra: &[&str]) -> Vec<String> {
    let inventory = fleet.inventory.display().to_string();
    let mut list = vec![
        "remediate",
        "--inventory",
        &inventory,
        "--ssh",
        "disabled",
        "--timeout",
        "5s",
        "--quiet",
    ];
    list.extend_from_slice(extra);
    args(&list)
}

fn requests(fleet: &TestFleet) -> u64 {
    fleet.fleet.snapshot().iter().map(|d| d.requests).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporaries_never_follow_a_planted_symbolic_link() {
    // Each request waits, so the links are planted long before any output is written.
    let fleet = fleet(2, 61, Duration::from_millis(400)).await;
    let victim = fleet.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let outputs = ["plan.json", "m.prom", "page.html"];
    let list = remediate_args(
        &fleet,
        &[
            "-o",
            &path_arg(&fleet, "plan.jsonl"),
            "--plan-out",
            &path_arg(&fleet, outputs[0]),
            "--metrics-out",
            &path_arg(&fleet, outputs[1]),
            "--html-out",
            &path_arg(&fleet, outputs[2]),
        ],
    );
    let env = [("SSHFLEET_PASSWORD", PASSWORD)];
    let child = command(&list, &env).spawn().unwrap();
    let pid = child.id().unwrap();
    // The names the temporaries had: `.NAME.PID.tmp`, beside each output.
    for name in outputs {
        let planted = fleet.path(&format!(".{name}.{pid}.tmp"));
        std::os::unix::fs::symlink(&victim, planted).unwrap();
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    for name in outputs {
        let meta = std::fs::symlink_metadata(fleet.path(name)).unwrap();
        assert!(meta.is_file() && meta.len() > 0, "{name} written in place");
    }

    // `report html` writes its page the same way.
    let report = path_arg(&fleet, "plan.jsonl");
    let page = fleet.path("report.html");
    let html = args(&["report", "html", &report, "-o", &page.display().to_string()]);
    let child = command(&html, &[]).spawn().unwrap();
    let planted = fleet.path(&format!(".report.html.{}.tmp", child.id().unwrap()));
    // The page may be written before the link is there: then the check below is moot,
    // never wrong.
    let _ = std::os::unix::fs::symlink(&victim, planted);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::symlink_metadata(&page).unwrap().is_file());
}

/// Runs `list`, which must be refused (exit 2) with `words` in stderr before any request,
/// leaving every file in `kept` as it was.
async fn refused(fleet: &TestFleet, list: &[String], words: &str, kept: &[&Path]) {
    let before: Vec<Vec<u8>> = kept.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let sent = requests(fleet);
    let output = run(list, &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{list:?}\n{err}");
    assert!(err.contains(words), "{list:?}: {err}");
    assert_eq!(
        requests(fleet),
        sent,
        "{list:?}: refused before any request"
    );
    for (path, bytes) in kept.iter().zip(before) {
        assert_eq!(
            std::fs::read(path).unwrap(),
            bytes,
            "{} kept",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_would_destroy_an_input_or_another_output_is_refused() {
    let fleet = fleet(3, 62, Duration::ZERO).await;
    let inventory = fleet.inventory.display().to_string();
    let journal = fleet.path("run.journal.jsonl");
    std::fs::write(&journal, "precious journal\n").unwrap();
    let journal_arg = journal.display().to_string();
    let inv = fleet.inventory.as_path();

    // -o is the inventory (scan and remediate), also spelled another way.
    let dotted = format!("{}/./inventory.csv", fleet.dir.path().display());
    let scan = args(&["scan", "--inventory", &inventory, "-o", &dotted, "--quiet"]);
    refused(&fleet, &scan, "is the --inventory file", &[inv]).await;
    let plan_out = remediate_args(&fleet, &["--plan-out", &inventory]);
    refused(&fleet, &plan_out, "--plan-out", &[inv]).await;

    // -o and --journal name one file (a hard link to it, too).
    let linked = fleet.path("report.jsonl");
    std::fs::hard_link(&journal, &linked).unwrap();
    let list = remediate_args(
        &fleet,
        &[
            "--apply",
            "--yes",
            "-o",
            &linked.display().to_string(),
            "--journal",
            &journal_arg,
        ],
    );
    refused(&fleet, &list, "-o", &[journal.as_path()]).await;
    assert!(all_writes(&fleet).iter().all(Vec::is_empty));

    // -o and --html-out name one file that does not exist yet.
    let same = path_arg(&fleet, "same.out");
    let list = remediate_args(&fleet, &["-o", &same, "--html-out", &same]);
    refused(&fleet, &list, "is also given to -o", &[]).await;
    assert!(!fleet.path("same.out").exists());

    // A plan being applied is not an output.
    let plan = fleet.path("plan.json");
    let plan_arg = plan.display().to_string();
    let list = remediate_args(
        &fleet,
        &["-o", &path_arg(&fleet, "p.jsonl"), "--plan-out", &plan_arg],
    );
    let output = run(&list, &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let list = remediate_args(
        &fleet,
        &["--plan", &plan_arg, "--apply", "--yes", "-o", &plan_arg],
    );
    refused(&fleet, &list, "is the --plan file", &[plan.as_path()]).await;

    // `report html` over its own report.
    let report = path_arg(&fleet, "p.jsonl");
    let html = args(&["report", "html", &report, "-o", &report]);
    refused(
        &fleet,
        &html,
        "is the REPORT file",
        &[fleet.path("p.jsonl").as_path()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_killed_half_way_leaves_no_partial_report_under_its_name() {
    let fleet = fleet(6, 63, Duration::ZERO).await;
    let first = path_arg(&fleet, "s0.jsonl");
    let (output, _) = fleet.scan("s0.jsonl", &["--shard", "0/2"]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let (output, _) = fleet.scan("s1.jsonl", &["--shard", "1/2"]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    // The second shard is a FIFO: the merge waits on it, after the first is merged.
    let second = fleet.path("s1.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&second)
        .status()
        .unwrap();
    assert!(made.success());
    let merged = fleet.path("fleet.jsonl");
    let list = args(&[
        "report",
        "merge",
        "--inventory",
        &fleet.inventory.display().to_string(),
        "-o",
        &merged.display().to_string(),
        "--quiet",
        &first,
        &second.display().to_string(),
    ]);
    let mut child = command(&list, &[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = std::fs::read(fleet.path("s1.jsonl")).unwrap();
    let fifo = second.clone();
    let feed = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        // First open: the merge reads the shard's shape before it opens its output.
        // Written until the merge closes its end (a write then fails), so that the second
        // open below waits for the merge's next read.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let mut written = w.write_all(&text);
        while written.is_ok() {
            written = w.write_all(&[b'\n'; 4096]);
        }
        drop(w);
        // Second open: the merge is streaming, its output open and the first shard in it.
        std::fs::OpenOptions::new().write(true).open(&fifo).unwrap()
    });
    let held = tokio::time::timeout(Duration::from_secs(60), feed).await;
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(
        held.is_ok(),
        "the merge did not read its shards: {}",
        stderr(&output)
    );
    assert!(!output.status.success());
    assert!(
        !merged.exists(),
        "a killed merge left {} under its name",
        merged.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_plan_is_refused_without_being_read() {
    let fleet = fleet(2, 64, Duration::ZERO).await;
    let plan = fleet.path("junk.json");
    // Sparse: 300 MB by its size, no disk used.
    std::fs::File::create(&plan)
        .unwrap()
        .set_len(300_000_000)
        .unwrap();
    let list = remediate_args(
        &fleet,
        &[
            "--plan",
            &plan.display().to_string(),
            "--apply",
            "--yes",
            "-o",
            &path_arg(&fleet, "r.jsonl"),
        ],
    );
    let started = Instant::now();
    refused(&fleet, &list, "300000000 bytes, more than the 256 MiB", &[]).await;
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_waivers_load_in_linear_time() {
    let fleet = fleet(2, 65, Duration::ZERO).await;
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "[[waiver]]\nid = \"W-{i}\"\nmatch = {{ serial = \"NONE{i:06}\" }}\nssh = \"enabled\"\n\
             reason = \"r\"\nowner = \"o@example.com\"\nexpires = \"2099-01-01\"\n\n"
        ));
    }
    let waivers = fleet.path("waivers.toml");
    std::fs::write(&waivers, text).unwrap();
    let started = Instant::now();
    let (output, records) = fleet
        .scan("w.jsonl", &["--waivers", &waivers.display().to_string()])
        .await;
    let took = started.elapsed();
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    assert_eq!(records.len(), 2);
    // Quadratic, this took minutes in a debug build; linear, a few seconds.
    assert!(took < Duration::from_secs(30), "{took:?}");
}
