//! `--notify URL`: a receiver on loopback gets one POST of exactly what changed after a run,
//! nothing after a run where nothing did; a 500 is retried with the same idempotency key; a
//! receiver that never answers costs a bounded wait and never the exit code; the URL's token
//! is never printed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sshfleet_sim::{FaultProfile, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{code, stderr, Sshfleet, TestFleet};

/// One request the receiver read.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    head: String,
    pub(crate) body: Value,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }
}

/// How the receiver answers.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// These statuses in turn, then 200.
    Statuses(&'static [u16]),
    /// Reads the request and never answers.
    Never,
}

/// A webhook receiver on loopback that keeps what it was sent.
pub(crate) struct Receiver {
    pub(crate) url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            for n in 0usize.. {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let read = tokio::time::timeout(Duration::from_secs(10), read_request(&mut socket));
                let Ok(Some(request)) = read.await else {
                    continue;
                };
                log.lock().unwrap().push(request);
                let status = match answer {
                    Answer::Never => {
                        held.push(socket);
                        continue;
                    }
                    Answer::Statuses(list) => list.get(n).copied().unwrap_or(200),
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/SECRET-PATH?token=SECRET-TOKEN"),
            got,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Reads one request: the head, then `content-length` bytes of JSON body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body = serde_json::from_slice(&data[head_end..head_end + length]).ok()?;
    Some(Received { head, body })
}

async fn fleet(devices: usize) -> TestFleet {
    TestFleet::start(SimConfig {
        devices,
        seed: 3,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await
}

/// `scan --expect disabled --history … --notify URL` plus `extra`.
async fn scan(fleet: &TestFleet, url: &str, extra: &[&str]) -> std::process::Output {
    Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path("report.jsonl"))
        .file("--history", &fleet.path("history.db"))
        .args(&["--expect", "disabled", "--notify", url, "--timeout", "5s"])
        .args(extra)
        .run()
        .await
}

fn addresses(listed: &Value) -> Vec<String> {
    let mut out: Vec<String> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["address"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_carries_exactly_the_changes_and_none_is_sent_when_nothing_changed() {
    let fleet = fleet(6).await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 1);
    }
    let address = |i: usize| fleet.fleet.address(i).to_owned();
    let receiver = Receiver::start(Answer::Statuses(&[])).await;

    // The first run into an empty history: camera 1 is new exposure.
    let output = scan(&fleet, &receiver.url, &["--quiet"]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["new_exposure"]["count"], 1);
    assert_eq!(addresses(&got[0].body["new_exposure"]), vec![address(1)]);
    assert!(got[0]
        .head
        .starts_with("POST /hooks/SECRET-PATH?token=SECRET-TOKEN "));
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/json")
    );

    // Nothing changed: nothing is sent, and the run says so.
    let output = scan(&fleet, &receiver.url, &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing changed, nothing sent"
    );
    let said = stderr(&output);
    assert!(
        said.contains("nothing changed: no notification to http://127.0.0.1:"),
        "{said}"
    );
    assert!(!said.contains("SECRET"), "{said}");

    // Another client turns SSH on for 2 and off for 1; camera 4 leaves the inventory.
    fleet.fleet.set_ssh_enabled(2, true);
    fleet.fleet.set_ssh_enabled(1, false);
    let inventory = std::fs::read_to_string(&fleet.inventory).unwrap();
    let kept: String = inventory
        .lines()
        .filter(|l| !l.starts_with(&format!("{},", address(4))))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&fleet.inventory, kept).unwrap();
    let output = scan(&fleet, &receiver.url, &[]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one POST for the run: {got:?}");
    let body = &got[1].body;
    assert_eq!(addresses(&body["regressed"]), vec![address(2)]);
    assert_eq!(addresses(&body["fixed"]), vec![address(1)]);
    assert_eq!(addresses(&body["gone"]), vec![address(4)]);
    assert_eq!(body["new_exposure"]["count"], 0);
    assert_eq!(body["summary"], "1 regressed, 1 fixed, 1 gone");
    let said = stderr(&output);
    assert!(said.contains("notified http://127.0.0.1:"), "{said}");
    assert!(!said.contains("SECRET"), "{said}");
    assert_ne!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_retried_with_the_same_key_and_slack_gets_text() {
    let fleet = fleet(3).await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 0);
    }
    let receiver = Receiver::start(Answer::Statuses(&[500])).await;
    let output = scan(&fleet, &receiver.url, &["--notify-format", "slack"]).await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let got = receiver.received();
    assert_eq!(got.len(), 2, "the 500, then the delivery: {got:?}");
    assert_eq!(got[0].body, got[1].body);
    assert!(got[0].header("idempotency-key").is_some());
    assert_eq!(
        got[0].header("idempotency-key"),
        got[1].header("idempotency-key")
    );
    let text = got[1].body["text"].as_str().unwrap();
    assert!(text.starts_with("sshfleet scan: 1 new exposure"), "{text}");
    assert!(text.contains(fleet.fleet.address(0)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_costs_a_bounded_wait_and_not_the_exit_code() {
    let fleet = fleet(3).await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 0);
    }
    let receiver = Receiver::start(Answer::Never).await;
    let started = Instant::now();
    let output = scan(&fleet, &receiver.url, &[]).await;
    let took = started.elapsed();
    // A finding: exit 1, as without --notify.
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    // 3 tries of at most 5 s, 3 s of waits, and the scan itself.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(receiver.received().len(), 3, "three tries");
    let said = stderr(&output);
    assert!(
        said.contains("warning: the notification was not delivered"),
        "{said}"
    );
    assert!(said.contains("3 tries"), "{said}");
    assert!(!said.contains("SECRET"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_needs_a_previous_run_to_compare_with() {
    let fleet = fleet(1).await;
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path("r.jsonl"))
        .args(&["--notify", "http://127.0.0.1:9/SECRET"])
        .run()
        .await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    let said = stderr(&output);
    assert!(said.contains("give --history or --baseline"), "{said}");
    assert!(!said.contains("SECRET"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_announces_the_devices_it_fixed() {
    let fleet = fleet(4).await;
    for i in 0..fleet.fleet.len() {
        fleet.fleet.set_ssh_enabled(i, i == 2);
    }
    let history = fleet.path("history.db");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&fleet.path("scan.jsonl"))
        .file("--history", &history)
        .args(&["--expect", "disabled", "--quiet"])
        .run()
        .await;
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let receiver = Receiver::start(Answer::Statuses(&[])).await;
    let output = Sshfleet::remediate(&fleet.inventory)
        .out(&fleet.path("fix.jsonl"))
        .file("--history", &history)
        .args(&["--ssh", "disabled", "--apply", "--yes", "--quiet"])
        .args(&["--notify", &receiver.url])
        .run()
        .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    // The camera really is off now, and the notification says it was fixed.
    assert_eq!(fleet.fleet.truth(2).ssh_enabled, Some(false));
    let got = receiver.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["command"], "remediate");
    assert_eq!(
        addresses(&got[0].body["fixed"]),
        vec![fleet.fleet.address(2).to_owned()]
    );
    assert_eq!(got[0].body["summary"], "1 fixed");
}
