//! Strings from devices and inputs stay inert wherever a person reads them: `-v` lines and
//! summaries on a terminal, messages quoting a bad input line (cut short), and CSV cells.

use crate::hostile::{json, Conn, Hostile};
use crate::support::{args, code, run, stderr, Sshfleet, TestFleet, PASSWORD};
use sshfleet_sim::{FaultProfile, SimConfig};

/// Bytes a terminal would act on: C0 controls but the line feeds that end lines, and DEL.
fn active_bytes(text: &[u8]) -> Vec<u8> {
    text.iter()
        .copied()
        .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_site_with_escape_sequences_reaches_the_terminal_escaped() {
    let fleet = TestFleet::start(SimConfig {
        devices: 2,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let site = "hq\u{1b}[2J\u{1b}]0;owned\u{7}north";
    let text = std::fs::read_to_string(&fleet.inventory).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut fields: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    fields[2] = site.to_owned();
    lines[1] = fields.join(",");
    std::fs::write(&fleet.inventory, lines.join("\n") + "\n").unwrap();
    let out = fleet.path("report.jsonl").display().to_string();
    let inventory = fleet.inventory.display().to_string();
    let argv = args(&["scan", "--inventory", &inventory, "-o", &out, "-v"]);
    let output = run(&argv, &[("SSHFLEET_PASSWORD", PASSWORD)]).await;
    let err = stderr(&output);
    assert!(matches!(code(&output), 0 | 1), "{err}");
    assert_eq!(active_bytes(&output.stderr), b"", "{err:?}");
    let shown = "hq\\u{1b}[2J\\u{1b}]0;owned\\u{7}north";
    let logged = err.lines().filter(|l| l.contains(shown)).count();
    assert!(
        logged >= 2,
        "the -v line and the site table show it escaped: {err}"
    );
    fleet.fleet.shutdown().await;
}

#[tokio::test]
async fn a_bad_waivers_line_of_3_mb_is_quoted_in_a_few_hundred_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, "address\n127.0.0.1:9\n").unwrap();
    let waivers = dir.path().join("waivers.toml");
    let line = format!("id = \"W-1\" \u{1b}[2J{}\n", "x".repeat(3 << 20));
    std::fs::write(&waivers, format!("[[waiver]]\n{line}")).unwrap();
    let output = Sshfleet::scan(&inventory)
        .file("--waivers", &waivers)
        .out(&dir.path().join("out.jsonl"))
        .run()
        .await;
    let err = stderr(&output);
    assert_eq!(code(&output), 2, "{}", &err[..err.len().min(2000)]);
    assert!(
        output.stderr.len() < 4096,
        "{} bytes of stderr",
        output.stderr.len()
    );
    assert!(err.contains("waivers.toml"), "{err}");
    assert!(err.contains("xxx…"), "the line is cut, and says so: {err}");
    assert_eq!(active_bytes(&output.stderr), b"", "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_error_with_control_characters_is_escaped_in_its_csv_cell() {
    // The camera answers with a VAPIX error whose message moves the cursor, clears the
    // screen and breaks the line.
    let body = r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSupportedVersions","error":{"code":8000,"message":"\u001b[2J\r\n=HYPERLINK(\"x\")\u0007"}}"#;
    let camera = Hostile::start(move |mut conn: Conn| async move {
        while conn.request().await.is_some() {
            if !conn.send(&json(body)).await {
                return;
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.csv");
    std::fs::write(&inventory, format!("address\n{}\n", camera.url())).unwrap();
    let out = dir.path().join("report.csv");
    let output = Sshfleet::scan(&inventory)
        .out(&out)
        .args(&["--timeout", "2s", "--retries", "0", "-v"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(active_bytes(&output.stderr), b"", "{:?}", stderr(&output));
    let text = std::fs::read(&out).unwrap();
    assert_eq!(
        active_bytes(&text),
        b"",
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    assert_eq!(
        text.iter().filter(|&&b| b == b'\n').count(),
        2,
        "header and one row"
    );
    let mut reader = csv::Reader::from_reader(&text[..]);
    let header = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| row[header.iter().position(|h| h == name).unwrap()].to_owned();
    assert_eq!(cell("status"), "api_error");
    assert!(
        cell("error").contains("\\u{1b}[2J\\r\\n=HYPERLINK(\"x\")\\u{7}"),
        "{}",
        cell("error")
    );
}
