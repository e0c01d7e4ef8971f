//! `--history postgresql://…` at the CLI: the real binary scanning the simulator records
//! into a throwaway PostgreSQL cluster exactly what it records into an SQLite file — the
//! same drift of what another client changed between the runs, the same runs, timeline
//! and HTML page read back — and never prints a password.

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::pg_cluster::Cluster;
use crate::support::{args, by_address, code, run, stderr, TestFleet};

/// The run rows of `history LOCATION runs --json` without their times.
async fn runs_of(history: &str) -> Vec<Value> {
    let output = run(&args(&["history", history, "runs", "--json"]), &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let mut runs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    for r in &mut runs {
        let row = r.as_object_mut().unwrap();
        assert!(row.remove("started_at").unwrap().is_string());
        assert!(row.remove("finished_at").unwrap().is_string());
    }
    runs
}

/// The `data-value` of the page's element `data-testid=ID`.
fn headline(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("data-testid=\"{id}\""))
        .unwrap_or_else(|| panic!("no {id}"));
    let rest = &page[at..];
    let v = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_history_records_and_reads_back_what_an_sqlite_file_does() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let fleet = TestFleet::start(SimConfig {
        devices: 30,
        seed: 7,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 4);
    }
    let sqlite = fleet.path("h.sqlite").display().to_string();
    let database = cluster.database();
    // A password in the URL (trust auth ignores it) must never be printed.
    let url = database.replacen("sshfleet@", "sshfleet:s3cret@", 1);
    let scan = |out: String, history: String| {
        let fleet = &fleet;
        async move {
            let extra = ["--expect", "disabled", "--history", &history];
            let (output, records) = fleet.scan(&out, &extra).await;
            assert_eq!(code(&output), 1, "{}", stderr(&output));
            assert!(!stderr(&output).contains("s3cret"), "{}", stderr(&output));
            records
        }
    };
    scan("s1.jsonl".into(), sqlite.clone()).await;
    scan("p1.jsonl".into(), url.clone()).await;
    // Another client changes three cameras between the runs.
    fleet.fleet.set_ssh_enabled(2, true);
    fleet.fleet.set_ssh_enabled(3, true);
    fleet.fleet.set_ssh_enabled(4, false);
    let from_sqlite = by_address(&scan("s2.jsonl".into(), sqlite.clone()).await);
    let from_pg = by_address(&scan("p2.jsonl".into(), url.clone()).await);
    for i in 0..fleet.fleet.len() {
        let address = fleet.fleet.address(i);
        let want = match i {
            2 | 3 => "regressed",
            4 => "fixed",
            _ => "unchanged",
        };
        assert_eq!(from_pg[address]["change"], want, "camera {i}");
        assert_eq!(from_sqlite[address]["change"], want, "camera {i}");
    }

    let runs = runs_of(&url).await;
    assert_eq!(runs, runs_of(&sqlite).await, "the same runs in both");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["regressed"], 2);
    assert_eq!(runs[0]["ssh_enabled"], 2);

    let device = fleet.fleet.address(4).to_owned();
    let timeline = run(&args(&["history", &url, "device", &device, "--json"]), &[]).await;
    assert_eq!(code(&timeline), 0, "{}", stderr(&timeline));
    let periods: Vec<Value> = serde_json::from_slice(&timeline.stdout).unwrap();
    let states: Vec<(i64, i64, bool)> = periods
        .iter()
        .map(|p| {
            (
                p["run_first"].as_i64().unwrap(),
                p["run_last"].as_i64().unwrap(),
                p["ssh_enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [(1, 1, true), (2, 2, false)]);

    let page = fleet.path("fleet.html").display().to_string();
    let html = run(
        &args(&["report", "html", "--history", &url, "-o", &page]),
        &[],
    )
    .await;
    assert_eq!(code(&html), 0, "{}", stderr(&html));
    let text = std::fs::read_to_string(&page).unwrap();
    for (id, want) in [("headline-devices", "30"), ("headline-ssh-enabled", "2")] {
        assert_eq!(headline(&text, id), want, "{id}");
    }
    assert!(!text.contains("s3cret"));
}

/// The output of `sshfleet history …`, exit 0 expected.
async fn history_command(argv: &[&str]) -> String {
    let output = run(&args(argv), &[]).await;
    assert_eq!(code(&output), 0, "{argv:?}: {}", stderr(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// Offline first: with the central history unreachable the scans complete, write their
/// reports, exit as a scan does and keep their runs in the spool, saying so without the
/// password; `history push` uploads them once, in order, however often it is run, and the
/// next scan against the central history compares with the last pushed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_central_history_spools_the_runs_and_push_uploads_each_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let fleet = TestFleet::start(SimConfig {
        devices: 12,
        seed: 3,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 1);
    }
    let nowhere = format!(
        "postgresql://scan:s3cret@/fleet?host={}&connect_timeout=5",
        fleet.path("no-such-dir").display()
    );
    let spool = fleet.path("site.spool.sqlite").display().to_string();
    let offline = |out: &'static str| {
        let (fleet, nowhere, spool) = (&fleet, &nowhere, &spool);
        async move {
            let extra = [
                "--expect",
                "disabled",
                "--history",
                nowhere,
                "--spool",
                spool,
            ];
            let (output, records) = fleet.scan(out, &extra).await;
            let text = stderr(&output);
            assert_eq!(code(&output), 1, "a finding, as the scan says: {text}");
            assert!(text.contains("postgresql://scan:***@/fleet"), "{text}");
            assert!(text.contains("cannot be reached"), "{text}");
            assert!(text.contains(&format!("in the spool {spool}")), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
            assert_eq!(records.len(), 12, "the report is complete");
            records
        }
    };
    offline("r1.jsonl").await;
    fleet.fleet.set_ssh_enabled(5, true);
    let second = by_address(&offline("r2.jsonl").await);
    assert_eq!(second[fleet.fleet.address(5)]["change"], "regressed");

    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let rows = |table: &str| cluster.psql(&name, &format!("SELECT count(*) FROM {table}"));
    let said = history_command(&["history", "push", &spool, "--to", &url]).await;
    assert!(said.starts_with("pushed 2 run(s)"), "{said}");
    assert_eq!((rows("runs"), rows("intervals")), ("2".into(), "13".into()));
    let order = cluster.psql(
        &name,
        "SELECT string_agg(regressed::text, ',' ORDER BY id) FROM runs",
    );
    assert_eq!(order, "0,1", "in the order they ran");
    for _ in 0..2 {
        let said = history_command(&["history", &spool, "push", "--to", &url]).await;
        assert!(
            said.starts_with("pushed 0 run(s)") && said.contains("2 were there already"),
            "{said}"
        );
        assert_eq!((rows("runs"), rows("intervals")), ("2".into(), "13".into()));
    }

    let (output, records) = fleet
        .scan("r3.jsonl", &["--expect", "disabled", "--history", &url])
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert!(
        records.iter().all(|r| r["change"] == "unchanged"),
        "compared with the pushed run"
    );
    assert_eq!((rows("runs"), rows("intervals")), ("3".into(), "13".into()));
}
