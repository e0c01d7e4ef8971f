//! `--history postgresql://…` at the CLI: the real binary scanning the simulator records
//! into a throwaway PostgreSQL cluster exactly what it records into an SQLite file — the
//! same drift of what another client changed between the runs, the same runs, timeline
//! and HTML page read back — and never prints a password.

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};

use crate::pg_cluster::Cluster;
use crate::support::{args, by_address, code, eventually, run, stderr, Sshfleet, TestFleet};

/// The run rows of `history LOCATION runs --json` without their times.
async fn runs_of(history: &str) -> Vec<Value> {
    let output = run(&args(&["history", history, "runs", "--json"]), &[]).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let mut runs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    for r in &mut runs {
        let row = r.as_object_mut().unwrap();
        assert!(row.remove("started_at").unwrap().is_string());
        assert!(row.remove("finished_at").unwrap().is_string());
        // Made from the start time too, so different for each back end's run.
        assert!(row
            .remove("uid")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("run:"));
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
    // A copy, as a push interrupted after the central commits would have left the spool.
    let copy = fleet.path("copy.spool.sqlite").display().to_string();
    std::fs::copy(&spool, &copy).unwrap();
    let said = history_command(&["history", "push", &spool, "--to", &url]).await;
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].starts_with("spool run 1 (started "), "{said}");
    assert!(
        lines[0].ends_with("pushed as run 1; removed from the spool"),
        "{said}"
    );
    assert!(
        lines[1].ends_with("pushed as run 2; removed from the spool"),
        "{said}"
    );
    assert!(lines[2].starts_with("pushed 2 run(s)"), "{said}");
    assert_eq!(lines[3], format!("the spool {spool} is empty now (the file is kept for the next run that cannot reach the central history)"));
    assert_eq!((rows("runs"), rows("intervals")), ("2".into(), "13".into()));
    let order = cluster.psql(
        &name,
        "SELECT string_agg(regressed::text, ',' ORDER BY id) FROM runs",
    );
    assert_eq!(order, "0,1", "in the order they ran");
    assert_eq!(
        history_command(&["history", &spool, "runs", "--json"])
            .await
            .trim(),
        "[]"
    );
    let said = history_command(&["history", &spool, "push", "--to", &url]).await;
    assert!(
        said.starts_with("pushed 0 run(s)") && said.contains("is empty now"),
        "{said}"
    );
    assert_eq!((rows("runs"), rows("intervals")), ("2".into(), "13".into()));
    // The copy's runs are the central store's already: each said so, none recorded again.
    let said = history_command(&["history", "push", &copy, "--to", &url]).await;
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].ends_with(
            "already in the central history as run 1, not recorded again; removed from the spool"
        ),
        "{said}"
    );
    assert!(
        lines[1].ends_with(
            "already in the central history as run 2, not recorded again; removed from the spool"
        ),
        "{said}"
    );
    assert!(
        lines[2].starts_with("pushed 0 run(s)") && lines[2].ends_with("2 were there already"),
        "{said}"
    );
    assert_eq!((rows("runs"), rows("intervals")), ("2".into(), "13".into()));
    assert_eq!(
        history_command(&["history", &copy, "runs", "--json"])
            .await
            .trim(),
        "[]"
    );

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

/// The requests every camera of the fleet has answered so far.
fn requests(fleet: &TestFleet) -> Vec<u64> {
    fleet.fleet.snapshot().iter().map(|c| c.requests).collect()
}

/// A central history lost in the middle of a run (the server stopped after the run's
/// transaction began, before its commit): the run completes, exits as the scan does, keeps
/// itself in the spool and says so even with `--quiet`; once the server is back, `history
/// push` records it once — one run row more, no device twice, one period for the one change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_history_lost_during_the_run_keeps_it_in_the_spool_and_push_records_it_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let fleet = TestFleet::start(SimConfig {
        devices: 10,
        seed: 11,
        faults: FaultProfile::None,
        latency: std::time::Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 1);
    }
    let url = cluster.database();
    let name = Cluster::name_of(&url).to_owned();
    let rows = |table: &str| cluster.psql(&name, &format!("SELECT count(*) FROM {table}"));
    let spool = fleet.path("site.spool.sqlite").display().to_string();
    let central = ["--expect", "disabled", "--history", &url, "--spool", &spool];
    let (output, _) = fleet.scan("r1.jsonl", &central).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(
        (rows("runs"), rows("tracks"), rows("intervals")),
        ("1".into(), "10".into(), "10".into())
    );

    fleet.fleet.set_ssh_enabled(5, true);
    let asked_before = requests(&fleet);
    let report = fleet.path("r2.jsonl");
    let child = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .args(&["--quiet", "--timeout", "5s", "--concurrency", "1"])
        .args(&central)
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run's transaction is open and its first camera asked: the run is under way.
    let under_way = eventually(
        || {
            requests(&fleet) != asked_before
                && cluster.psql(
                    "postgres",
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'sshfleet' AND xact_start IS NOT NULL",
                ) == "1"
        },
        std::time::Duration::from_secs(60),
    )
    .await;
    assert!(under_way, "the scan began recording");
    cluster.stop("fast");
    let asked = requests(&fleet);
    let unasked = asked
        .iter()
        .zip(&asked_before)
        .filter(|(now, then)| now == then)
        .count();
    assert!(
        unasked > 0,
        "the server went away while the run was still going: {asked:?}"
    );

    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = stderr(&output);
    assert_eq!(
        code(&output),
        1,
        "the scan's own exit (a finding), not 4: {text}"
    );
    assert!(text.contains("was lost during the run"), "{text}");
    assert!(
        text.contains(&format!("kept as run 1 in the spool {spool}")),
        "{text}"
    );
    assert!(!text.contains("did not record"), "{text}");
    let records = by_address(&crate::support::read_jsonl(&report));
    assert_eq!(records.len(), 10, "the report is complete");
    assert_eq!(
        records[fleet.fleet.address(5)]["change"],
        "regressed",
        "against the central run"
    );
    let spooled = history_command(&["history", &spool, "runs", "--json"]).await;
    let spooled: Vec<Value> = serde_json::from_str(&spooled).unwrap();
    assert_eq!(
        (spooled.len(), &spooled[0]["devices"]),
        (1, &Value::from(10)),
        "{spooled:?}"
    );
    let uid = spooled[0]["uid"].as_str().unwrap().to_owned();

    cluster.restart();
    assert_eq!(
        rows("runs"),
        "1",
        "nothing of the lost run reached the central history"
    );
    let said = history_command(&["history", "push", &spool, "--to", &url]).await;
    assert!(said.contains("pushed 1 run(s)"), "{said}");
    let counts = || (rows("runs"), rows("tracks"), rows("intervals"));
    assert_eq!(counts(), ("2".into(), "10".into(), "11".into()), "{said}");
    let order = cluster.psql(
        &name,
        "SELECT string_agg(regressed::text, ',' ORDER BY id) FROM runs",
    );
    assert_eq!(order, "0,1");
    let listed = history_command(&["history", &url, "runs", "--json"]).await;
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        listed[0]["uid"],
        uid.as_str(),
        "the run goes by the spool's uid centrally"
    );
    assert_eq!(
        cluster.psql(
            &name,
            &format!("SELECT count(*) FROM runs WHERE uid = '{uid}'")
        ),
        "1"
    );
    let again = history_command(&["history", "push", &spool, "--to", &url]).await;
    assert!(again.contains("pushed 0 run(s)"), "{again}");
    assert_eq!(counts(), ("2".into(), "10".into(), "11".into()), "{again}");
}

/// The last line of a spooled run names the files it wrote: the spool, never the central
/// history it could not reach (no PostgreSQL needed: nothing listens there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_run_names_the_spool_among_the_files_written() {
    let fleet = TestFleet::start(SimConfig {
        devices: 4,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let nowhere = format!(
        "postgresql://scan:s3cret@/fleet?host={}&connect_timeout=5",
        fleet.path("no-such-dir").display()
    );
    let spool = fleet.path("site.spool.sqlite").display().to_string();
    let report = fleet.path("r.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&report)
        .args(&["--history", &nowhere, "--spool", &spool])
        .run()
        .await;
    let text = stderr(&output);
    assert!(text.contains(&format!("in the spool {spool}")), "{text}");
    let written = text
        .lines()
        .find(|l| l.starts_with("files written: "))
        .unwrap_or_else(|| panic!("no files line: {text}"));
    assert_eq!(
        written,
        format!("files written: {}, {spool}", report.display()),
        "{text}"
    );
    // Said once: the warning and the files line, no second log line saying it again.
    let naming: Vec<&str> = text.lines().filter(|l| l.contains(&spool)).collect();
    assert_eq!(naming.len(), 2, "{naming:#?}");
    fleet.fleet.shutdown().await;
}
