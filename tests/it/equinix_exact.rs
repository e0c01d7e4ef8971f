//! An exact listing or none: pages that overlap, a `total` of 0 or 10^12 or below what
//! full pages serve are detected, read again, and named; a policy survey built on such a
//! listing is refused. The real binary against the mock, judged by the users it printed.

use std::collections::HashSet;

use sshfleet_sim::{EquinixFaults, Fleet};

use crate::equinix_policy::{detaches, POLICY};
use crate::equinix_support::{api, client, list_with, mock, sim_credentials};
use crate::support::{code, run, stderr};

const CREDENTIALS: [(&str, &str); 2] = [
    ("EQUINIX_API_CLIENTID", "sim-client"),
    ("EQUINIX_API_CLIENTSECRET", "sim-secret"),
];

/// `ssh-users list` (brief users: no audit flags) with `extra`; the uuids printed.
async fn list(fleet: &Fleet, extra: &[&str]) -> (std::process::Output, Vec<String>) {
    let url = fleet.equinix_url().expect("url");
    let mut argv: Vec<String> = [
        "equinix",
        "ssh-users",
        "list",
        "--verbose=false",
        "--endpoint",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(url);
    argv.extend(extra.iter().map(|s| s.to_string()));
    let output = run(&argv, &CREDENTIALS).await;
    let uuids = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
            row["uuid"].as_str().expect("uuid").to_owned()
        })
        .collect();
    (output, uuids)
}

fn all_uuids(fleet: &Fleet) -> Vec<String> {
    api(fleet).users().into_iter().map(|u| u.uuid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_pages_are_named_and_the_listing_exits_1() {
    for concurrency in ["1", "8"] {
        let faults = EquinixFaults {
            second_page_early_by: 10,
            ..EquinixFaults::default()
        };
        let fleet = mock(250, faults).await;
        let (output, uuids) = list(&fleet, &["--page-concurrency", concurrency]).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 1, "{concurrency}: {err}");
        let unique: HashSet<&String> = uuids.iter().collect();
        assert_eq!(unique.len(), uuids.len(), "each user printed once");
        // The mock never serves the ten before the third page: the listing says so
        // instead of passing.
        let all = all_uuids(&fleet);
        assert_eq!(uuids, [&all[..190], &all[200..]].concat());
        assert!(err.contains("the listing is not exact"), "{err}");
        assert!(
            err.contains("10 user(s) served again by the page(s) at offset 100"),
            "{err}"
        );
        assert!(
            err.contains("240 distinct users served of the API's total of 250: 10 never served"),
            "{err}"
        );
        assert!(
            err.contains("also when read again one page at a time"),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_total_of_0_or_below_full_pages_is_followed_to_the_last_page_and_named() {
    for claimed in [0, 150] {
        let faults = EquinixFaults {
            total_claimed: Some(claimed),
            ..EquinixFaults::default()
        };
        let fleet = mock(250, faults).await;
        let (output, uuids) = list(&fleet, &[]).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 1, "{claimed}: {err}");
        assert_eq!(uuids, all_uuids(&fleet), "every user, once, in order");
        assert!(
            err.contains(&format!(
                "full pages served 200 users though the API's total is {claimed}"
            )),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_total_is_not_followed() {
    let faults = EquinixFaults {
        total_claimed: Some(1_000_000_000_000),
        ..EquinixFaults::default()
    };
    let fleet = mock(250, faults).await;
    let (output, uuids) = list(&fleet, &[]).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert_eq!(uuids, all_uuids(&fleet));
    assert!(
        err.contains("the API's total of 1000000000000 is implausible"),
        "{err}"
    );
    let lists = api(&fleet).stats().list_requests;
    assert!(lists <= 3 + 8, "{lists} list requests");

    // Pages full without end stop at the cap: the first page bounds nothing here.
    let faults = EquinixFaults {
        total_claimed: Some(0),
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    let fetcher = sshfleet_equinix::PageFetcher::new(
        client(&fleet, sim_credentials()),
        sshfleet_equinix::ListFilter::default(),
        100,
        8,
    )
    .with_max_users(300);
    let (users, stats) = list_with(fetcher).await;
    assert_eq!(users.len(), 300, "{stats:?}");
    assert!(
        stats
            .doubts
            .contains(&sshfleet_equinix::paging::Doubt::CapReached { cap: 300 }),
        "{stats:?}"
    );
    let lists = api(&fleet).stats().list_requests;
    assert!(lists <= 4 + 1, "{lists} list requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_survey_of_an_inexact_listing_is_refused() {
    let faults = EquinixFaults {
        second_page_early_by: 10,
        ..EquinixFaults::default()
    };
    let fleet = mock(250, faults).await;
    let before = api(&fleet).users();
    let dir = tempfile::tempdir().expect("dir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy");
    let out = dir.path().join("run.jsonl");
    let url = fleet.equinix_url().expect("url");
    let argv: Vec<String> = [
        "equinix",
        "ssh-users",
        "remediate",
        "--endpoint",
        &url,
        "--policy",
        &policy.display().to_string(),
        "--apply",
        "--yes",
        "--allow-user-deletion",
        "--rate",
        "200/s",
        "-o",
        &out.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let output = run(&argv, &CREDENTIALS).await;
    let err = stderr(&output);
    assert_eq!(code(&output), 1, "{err}");
    assert!(err.contains("the listing is not exact"), "{err}");
    assert!(err.contains("no detach was planned"), "{err}");
    assert!(detaches(&fleet).0.is_empty(), "nothing sent");
    assert_eq!(api(&fleet).users(), before);
    assert!(!out.exists(), "no report of a refused survey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_refused_before_its_first_page_leaves_the_earlier_report_as_it_was() {
    let fleet = mock(30, EquinixFaults::default()).await;
    let dir = tempfile::tempdir().expect("dir");
    let url = fleet.equinix_url().expect("url");
    for name in ["users.csv", "users.json"] {
        let out = dir.path().join(name);
        std::fs::write(&out, "the report of yesterday\n").expect("earlier");
        let argv: Vec<String> = [
            "equinix",
            "ssh-users",
            "list",
            "--endpoint",
            &url,
            "-o",
            &out.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let wrong = [
            ("EQUINIX_API_CLIENTID", "sim-client"),
            ("EQUINIX_API_CLIENTSECRET", "wrong"),
        ];
        let output = run(&argv, &wrong).await;
        let err = stderr(&output);
        assert_eq!(code(&output), 2, "{err}");
        assert!(err.contains("rejected the client credentials"), "{err}");
        assert!(
            !err.contains("0 listed") && !err.contains("listed 0 users"),
            "no summary of nothing: {err}"
        );
        assert!(err.contains("no report was written"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&out).expect("out"),
            "the report of yesterday\n"
        );
        // With the right credentials the report is replaced.
        let output = run(&argv, &CREDENTIALS).await;
        assert_eq!(code(&output), 1, "flags are findings: {}", stderr(&output));
        let text = std::fs::read_to_string(&out).expect("out");
        assert!(!text.contains("yesterday") && text.len() > 1_000, "{text}");
    }
}
