//! `sshfleet sim` as a separate process: the ready line, the files, the control API, SIGTERM.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{ready_line, scan_matches_truth, url_in};

/// The body of `GET path` on a control URL (`http://…`), bounded in time.
pub(crate) async fn http_get(url: &str, path: &str) -> String {
    let authority = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("control reachable");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("control answers")
    .expect("read");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_announces_ready_serves_control_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let inventory = dir.path().join("inv.csv");
    let truth = dir.path().join("truth.jsonl");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sshfleet"))
        .args([
            "sim",
            "--devices",
            "40",
            "--seed",
            "3",
            "--control",
            "127.0.0.1:0",
            "--inventory-out",
            &inventory.display().to_string(),
            "--truth-out",
            &truth.display().to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sim");
    let ready = ready_line(&mut child).await;
    assert!(
        ready.starts_with("ready devices=40 control=http://127.0.0.1:"),
        "{ready}"
    );
    let control = url_in(&ready, "control");
    scan_matches_truth(&inventory, &truth, &dir.path().join("scan.jsonl")).await;

    let devices: serde_json::Value =
        serde_json::from_str(&http_get(control, "/devices").await).expect("JSON");
    let devices = devices.as_array().expect("array");
    assert_eq!(devices.len(), 40);
    assert!(devices
        .iter()
        .all(|d| d["requests"].as_u64().is_some() && d["writes"].is_array()));
    assert!(devices.iter().any(|d| d["requests"].as_u64() > Some(0)));

    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
