//! Authentication as cameras do it: every Digest flavour, Basic only over TLS, no hammering.

use sshfleet_sim::{
    AuthPolicy, DeviceAuth, DeviceSpec, Fault, FaultProfile, Firmware, SimConfig, SshFault,
};

use crate::support::{code, stderr, Sshfleet, TestFleet};

fn with_auth(auth: DeviceAuth) -> DeviceSpec {
    DeviceSpec {
        ssh_enabled: true,
        fault: Fault::None,
        firmware: Firmware::Modern,
        auth,
        ssh: SshFault::None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_digest_flavour_reads_the_state_with_a_cached_challenge() {
    let flavours = [
        DeviceAuth::DigestMd5,
        DeviceAuth::DigestMd5Sess,
        DeviceAuth::DigestNoQop,
        DeviceAuth::DigestSha256,
    ];
    let fleet = TestFleet::of(flavours.iter().map(|a| with_auth(*a)).collect()).await;
    let (output, records) = fleet.scan("scan.jsonl", &[]).await;
    assert!(matches!(code(&output), 0 | 1), "{}", stderr(&output));
    for (i, flavour) in flavours.iter().enumerate() {
        let record = records
            .iter()
            .find(|r| r["address"] == fleet.fleet.address(i))
            .expect("record");
        assert_eq!(record["status"], "ok", "{flavour:?}: {record}");
        assert_eq!(record["ssh_enabled"], true);
    }
    for device in fleet.fleet.snapshot() {
        assert_eq!(
            device.requests, 3,
            "second call pre-authenticated: {device:?}"
        );
    }
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_is_refused_over_plain_http_unless_allowed() {
    let fleet = TestFleet::of(vec![with_auth(DeviceAuth::Basic)]).await;
    let (_, records) = fleet.scan("refused.jsonl", &[]).await;
    assert_eq!(records[0]["status"], "auth_failed");
    assert!(records[0]["error"]
        .as_str()
        .unwrap_or_default()
        .contains("Basic"));
    assert_eq!(
        fleet.fleet.snapshot()[0].requests,
        1,
        "the password never went out"
    );

    let (_, records) = fleet.scan("allowed.jsonl", &["--allow-basic-http"]).await;
    assert_eq!(records[0]["status"], "ok", "{}", records[0]);
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_over_tls_is_used_by_default_on_https() {
    let fleet = TestFleet::start(SimConfig {
        devices: 3,
        faults: FaultProfile::None,
        https: true,
        auth: AuthPolicy::Digest,
        ..SimConfig::default()
    })
    .await;
    let (_, records) = fleet.scan("scan.jsonl", &["--insecure"]).await;
    assert!(records.iter().all(|r| r["status"] == "ok"), "{records:?}");
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_costs_one_failed_login_per_device() {
    let fleet = TestFleet::start(SimConfig {
        devices: 5,
        faults: FaultProfile::None,
        ..SimConfig::default()
    })
    .await;
    let out = fleet.path("scan.jsonl");
    let output = Sshfleet::scan(&fleet.inventory)
        .out(&out)
        .arg("--quiet")
        .password("wrong")
        .run()
        .await;
    assert_eq!(code(&output), 1);
    let records = crate::support::read_jsonl(&out);
    assert!(records
        .iter()
        .all(|r| r["status"] == "auth_failed" && r["http_status"] == 401));
    for device in fleet.fleet.snapshot() {
        assert_eq!(device.requests, 2, "challenge + one failed login, no retry");
    }
    fleet.fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_nonce_is_retried_once() {
    // Nonces go stale almost at once, so the pre-authenticated getSshInfo meets stale=true
    // and must re-challenge exactly once, then succeed.
    let fleet = TestFleet::start(SimConfig {
        devices: 3,
        faults: FaultProfile::None,
        latency: std::time::Duration::from_millis(150),
        nonce_lifetime: std::time::Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await;
    let (_, records) = fleet.scan("scan.jsonl", &[]).await;
    for record in &records {
        assert_eq!(record["status"], "ok", "{record}");
    }
    // challenge, getSupportedVersions, stale getSshInfo, re-challenged getSshInfo: 4, not 5+.
    for device in fleet.fleet.snapshot() {
        assert_eq!(device.requests, 4, "exactly one re-challenge: {device:?}");
    }
    fleet.fleet.shutdown().await;
}
