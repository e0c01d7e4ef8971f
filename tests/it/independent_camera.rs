//! Cameras served by an independent implementation (Python's http.server with its own Digest
//! code, in `fixtures/`) are read correctly: our simulator is not the only judge.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::{code, read_jsonl, stderr, Sshfleet};

async fn start_camera(algorithm: &str, qop: &str, enabled: bool) -> (tokio::process::Child, u16) {
    start_camera_with(algorithm, qop, enabled, &[]).await
}

async fn start_camera_with(
    algorithm: &str,
    qop: &str,
    enabled: bool,
    extra: &[&str],
) -> (tokio::process::Child, u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/fixtures/independent_camera.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .args([
            script,
            algorithm,
            qop,
            if enabled { "true" } else { "false" },
        ])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (it is on every machine this project targets)");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("camera starts")
    .expect("read")
    .expect("port line");
    (child, line.trim().parse().expect("a port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_digest_cameras_are_read_correctly() {
    let cases = [
        ("MD5", "auth", true),
        ("MD5", "none", false),
        ("SHA-256", "auth", true),
    ];
    let mut cameras = Vec::new();
    let mut inventory = String::from("address,name\n");
    for (i, (algorithm, qop, enabled)) in cases.iter().enumerate() {
        let (child, port) = start_camera(algorithm, qop, *enabled).await;
        inventory.push_str(&format!("127.0.0.1:{port},indep-{i}\n"));
        cameras.push(child);
    }
    let dir = tempfile::tempdir().expect("dir");
    let inv = dir.path().join("inv.csv");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&inv, inventory).expect("write");
    let output = Sshfleet::scan(&inv)
        .out(&out)
        .args(&["--timeout", "5s"])
        .run()
        .await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    let records = read_jsonl(&out);
    for (i, (algorithm, qop, enabled)) in cases.iter().enumerate() {
        let record = records
            .iter()
            .find(|r| r["name"] == format!("indep-{i}"))
            .expect("record");
        assert_eq!(record["status"], "ok", "{algorithm}/{qop}: {record}");
        assert_eq!(record["ssh_enabled"], *enabled, "{algorithm}/{qop}");
        assert_eq!(record["api_version"], "1.0");
    }
    for mut camera in cameras {
        drop(camera.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), camera.wait()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_nonces_and_long_headers_are_read_correctly() {
    let (mut camera, port) = start_camera_with("MD5", "auth", true, &["long-heads"]).await;
    let dir = tempfile::tempdir().expect("dir");
    let inv = dir.path().join("inv.csv");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&inv, format!("address,name\n127.0.0.1:{port},long\n")).expect("write");
    let output = Sshfleet::scan(&inv)
        .out(&out)
        .args(&["--timeout", "5s"])
        .run()
        .await;
    let records = read_jsonl(&out);
    assert_eq!(records.len(), 1, "{}", stderr(&output));
    assert_eq!(records[0]["status"], "ok", "{}", records[0]);
    assert_eq!(records[0]["ssh_enabled"], true);
    drop(camera.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(10), camera.wait()).await;
}
