//! The concurrent listing against the mock: every user exactly once and in offset order,
//! under a drifting total, with trailing empty pages, and with pages that fail.

use std::collections::HashMap;

use sshfleet_equinix::client::Backoff;
use sshfleet_equinix::paging::Doubt;
use sshfleet_equinix::EquinixError;
use sshfleet_sim::EquinixFaults;

use crate::equinix_support::{api, client, client_with, list_all, mock, sim_credentials};

fn counts<'a>(uuids: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut counts = HashMap::new();
    for uuid in uuids {
        *counts.entry(uuid).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_exactly_once_in_the_api_order_at_any_concurrency() {
    let fleet = mock(2_500, EquinixFaults::default()).await;
    let expected: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    for concurrency in [1, 8, 32] {
        let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, concurrency).await;
        let got: Vec<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
        assert_eq!(got, expected, "concurrency {concurrency}");
        assert_eq!((stats.pages, stats.users, stats.duplicates), (25, 2_500, 0));
        assert!(!stats.total_changed && stats.error.is_none());
    }
}

#[tokio::test]
async fn a_page_size_that_does_not_divide_the_total() {
    let fleet = mock(1_002, EquinixFaults::default()).await;
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 77, 5).await;
    assert_eq!(users.len(), 1_002);
    assert_eq!(stats.pages, 14, "13 full pages and a short one");
    assert!(users.iter().all(|u| u.device_uuids.is_some()), "verbose");
}

#[tokio::test]
async fn an_empty_listing_is_one_page() {
    let fleet = mock(0, EquinixFaults::default()).await;
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    assert!(users.is_empty());
    assert_eq!(
        (stats.pages, stats.first_total, stats.ended_early_at),
        (1, Some(0), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_total_is_followed_deduplicated_and_reported() {
    let faults = EquinixFaults {
        drift_per_page: 7,
        ..EquinixFaults::default()
    };
    let fleet = mock(2_000, faults).await;
    let originals: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    let seen = counts(users.iter().map(|u| u.uuid.as_str()));
    assert!(seen.values().all(|n| *n == 1), "a user delivered twice");
    for uuid in &originals {
        assert_eq!(seen.get(uuid.as_str()), Some(&1), "{uuid} missing");
    }
    assert!(stats.total_changed && stats.rechecked, "{stats:?}");
    assert!(stats.duplicates > 0, "{stats:?}");
    assert_eq!(stats.first_total, Some(2_000));
    assert!(stats.last_total > Some(2_000));
}

#[tokio::test]
async fn a_shrinking_total_ends_at_an_empty_page_without_repeats() {
    let faults = EquinixFaults {
        drift_per_page: -40,
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 1).await;
    let seen = counts(users.iter().map(|u| u.uuid.as_str()));
    assert!(seen.values().all(|n| *n == 1));
    assert!(stats.total_changed, "{stats:?}");
    // Users removed at the front shift the rest past the reader: read again one page at
    // a time, the total still moves, so the listing is named inexact (it used to pass).
    assert!(stats.rechecked, "{stats:?}");
    let Some(EquinixError::Inexact { doubts, .. }) = &stats.error else {
        panic!("{stats:?}");
    };
    assert!(
        doubts
            .iter()
            .any(|d| matches!(d, Doubt::TotalChanged { .. })),
        "{doubts:?}"
    );
}

#[tokio::test]
async fn an_overstated_total_stops_at_the_first_empty_page() {
    let faults = EquinixFaults {
        total_overstated_by: 450,
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    assert_eq!(users.len(), 1_000);
    assert_eq!(stats.ended_early_at, Some(1_000));
    assert!(!stats.total_changed);
    // Every user served was delivered, but the API counts 450 more: incomplete.
    assert_eq!(
        stats.error,
        Some(EquinixError::EndedEarly {
            offset: 1_000,
            listed: 1_000,
            total: 1_450
        })
    );
    // Pages past the empty one may have been in flight, but no more than the window.
    let lists = api(&fleet).stats().list_requests;
    assert!((11..=15).contains(&lists), "{lists} list requests");
}

#[tokio::test]
async fn a_failed_page_ends_the_listing_and_names_its_offset() {
    let faults = EquinixFaults {
        error_every: Some(4),
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    let no_retries = Backoff {
        retries: 0,
        ..Backoff::default()
    };
    let (users, stats) = list_all(client_with(&fleet, sim_credentials(), no_retries), 100, 1).await;
    assert_eq!(users.len(), 300);
    let err = stats.error.expect("a page failed");
    assert!(
        matches!(err, EquinixError::Page { offset: 300, .. }),
        "{err}"
    );
    assert_eq!(err.status(), Some(500));
    assert!(err.to_string().contains("INTERNAL_SERVER_ERROR"), "{err}");
}

#[tokio::test]
async fn a_short_page_ends_the_listing_whatever_the_total_claims() {
    let faults = EquinixFaults {
        total_overstated_by: 2_000_000_000,
        ..EquinixFaults::default()
    };
    let fleet = mock(250, faults).await;
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    assert_eq!(users.len(), 250);
    // A total past the cap is implausible, not a count the listing fell short of.
    assert_eq!(
        stats.error,
        Some(EquinixError::Inexact {
            listed: 250,
            doubts: vec![Doubt::Implausible {
                total: 2_000_000_250,
                cap: 1_000_000
            }],
            rechecked: false,
        })
    );
    // The three pages up to the short one, and at most a window of eight beyond it: a
    // second walk would not change what the API says its total is.
    let lists = api(&fleet).stats().list_requests;
    assert!(lists <= 3 + 8, "{lists} list requests");
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_ends_the_listing_after_the_pages_delivered() {
    let fleet = crate::equinix_support::mock_with_latency(
        1_000,
        EquinixFaults::default(),
        std::time::Duration::from_secs(1),
    )
    .await;
    let (trigger, shutdown) = sshfleet_core::shutdown::channel();
    let filter = sshfleet_equinix::ListFilter::default();
    let fetcher =
        sshfleet_equinix::PageFetcher::new(client(&fleet, sim_credentials()), filter, 100, 4);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let run = tokio::spawn(fetcher.run(tx, shutdown));
    let mut users = 0;
    while rx.recv().await.is_some() {
        users += 1;
        trigger.trigger();
    }
    let stats = run.await.expect("listing task");
    assert!(stats.interrupted, "{stats:?}");
    assert!(users < 1_000 && users as u64 == stats.users, "{users}");
}

/// An API that accepts connections and reads requests but never answers; resolves once the
/// first request has arrived, and keeps that connection open.
async fn silent_api() -> (String, tokio::sync::oneshot::Receiver<()>) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (arrived, wait) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = arrived.send(());
        // Hold the connection: nothing is ever answered.
        let _ = tcp.read(&mut buf).await;
    });
    (url, wait)
}

#[tokio::test]
async fn a_stop_request_during_the_first_page_ends_the_listing_at_once() {
    let (url, arrived) = silent_api().await;
    let http = std::sync::Arc::new(
        sshfleet_net::HttpClient::new(&sshfleet_net::ClientSettings {
            timeout: std::time::Duration::from_secs(3600),
            ..sshfleet_net::ClientSettings::default()
        })
        .expect("client"),
    );
    let tokens = std::sync::Arc::new(sshfleet_equinix::TokenSource::new(
        http.clone(),
        &url,
        sim_credentials(),
        Backoff::default(),
    ));
    let client = std::sync::Arc::new(sshfleet_equinix::EquinixClient::new(
        http,
        url,
        tokens,
        sshfleet_equinix::ClientPolicy::default(),
    ));
    let (trigger, shutdown) = sshfleet_core::shutdown::channel();
    let fetcher = sshfleet_equinix::PageFetcher::new(client, Default::default(), 100, 8);
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let run = tokio::spawn(fetcher.run(tx, shutdown));
    arrived.await.expect("the token request arrived");
    trigger.trigger();
    let stats = tokio::time::timeout(std::time::Duration::from_secs(20), run)
        .await
        .expect("the listing ends without waiting for the request deadline")
        .expect("listing task");
    assert!(stats.interrupted, "{stats:?}");
    assert_eq!((stats.pages, stats.users), (0, 0));
    assert!(stats.error.is_none(), "{stats:?}");
}

#[tokio::test]
async fn an_api_that_ignores_offset_ends_the_listing_as_incomplete() {
    for concurrency in [1, 8] {
        let faults = EquinixFaults {
            ignore_offset: true,
            ..EquinixFaults::default()
        };
        let fleet = mock(1_000, faults).await;
        let first_page: Vec<String> = api(&fleet).users()[..100]
            .iter()
            .map(|u| u.uuid.clone())
            .collect();
        let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, concurrency).await;
        let got: Vec<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
        assert_eq!(got, first_page, "the repeated page's users, once each");
        let err = stats.error.expect("the listing is reported incomplete");
        assert_eq!(
            err,
            EquinixError::NoProgress {
                offset: 100,
                listed: 100,
                total: Some(1_000)
            }
        );
        assert!(err.to_string().contains("ignore `offset`"), "{err}");
        // The first page, the repeat, and at most the rest of the window in flight.
        let lists = api(&fleet).stats().list_requests;
        assert!(
            lists <= 2 + concurrency as u64,
            "{concurrency}: {lists} list requests"
        );
    }
}

/// Lists the mock's users (uuid and username only, so the padding is nearly all of a page)
/// with `concurrency` pages at once and a byte budget; a hang guard bounds the run.
async fn list_padded(
    fleet: &sshfleet_sim::Fleet,
    concurrency: usize,
    window_bytes: Option<usize>,
) -> (Vec<String>, sshfleet_equinix::ListingStats) {
    let mut fetcher = sshfleet_equinix::PageFetcher::new(
        client(fleet, sim_credentials()),
        sshfleet_equinix::ListFilter::default(),
        100,
        concurrency,
    );
    if let Some(bytes) = window_bytes {
        fetcher = fetcher.with_window_bytes(bytes);
    }
    let (users, stats) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        crate::equinix_support::list_with(fetcher),
    )
    .await
    .expect("the mock's held pages were released: enough were requested at once");
    (users.into_iter().map(|u| u.uuid).collect(), stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_pages_narrow_the_window_to_its_byte_budget() {
    const PADDING: usize = 256 * 1024;
    let faults = |hold| EquinixFaults {
        page_padding: PADDING,
        hold_pages_until: Some(hold),
        ..EquinixFaults::default()
    };
    // The default budget holds eight such pages: the mock sees all eight at once (it
    // answers none of them before), so the concurrency is real and the client's to narrow.
    let fleet = mock(1_000, faults(8)).await;
    let expected: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    let (got, stats) = list_padded(&fleet, 8, None).await;
    assert_eq!(got, expected);
    assert_eq!(api(&fleet).stats().max_lists_in_flight, 8);
    assert_eq!(stats.narrowed_to, None, "{stats:?}");
    assert!(stats.largest_page_bytes > PADDING, "{stats:?}");

    // Two and a half pages of budget: at most two pages requested and not yet delivered.
    // The mock holds pages until two are in flight (the window really is two wide), and
    // records whether a third ever arrived before one was answered.
    let fleet = crate::equinix_support::mock_with_latency(
        1_000,
        faults(2),
        std::time::Duration::from_millis(10),
    )
    .await;
    let expected: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    let budget = PADDING * 5 / 2;
    let (got, stats) = list_padded(&fleet, 8, Some(budget)).await;
    assert_eq!(got, expected, "every user once, in order");
    assert_eq!((stats.pages, stats.users, stats.duplicates), (10, 1_000, 0));
    assert!(stats.error.is_none(), "{stats:?}");
    assert_eq!(budget / stats.largest_page_bytes, 2, "{stats:?}");
    assert_eq!(stats.narrowed_to, Some(2), "{stats:?}");
    let mock = api(&fleet).stats();
    assert_eq!(mock.max_lists_in_flight, 2, "{mock:?}");
    assert_eq!(mock.list_requests, 10, "{mock:?}");
}

#[tokio::test]
async fn an_api_that_ignores_offset_and_gives_no_total_stops_at_the_first_repeat() {
    // Without a total nothing bounds the walk but the pages themselves.
    let faults = EquinixFaults {
        ignore_offset: true,
        omit_total: true,
        ..EquinixFaults::default()
    };
    let fleet = mock(1_000, faults).await;
    let first_page: Vec<String> = api(&fleet).users()[..100]
        .iter()
        .map(|u| u.uuid.clone())
        .collect();
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    let got: Vec<&str> = users.iter().map(|u| u.uuid.as_str()).collect();
    assert_eq!(got, first_page);
    assert_eq!(
        stats.error,
        Some(EquinixError::NoProgress {
            offset: 100,
            listed: 100,
            total: None
        })
    );
    // One page at a time without a total: the first page and its repeat, nothing more.
    assert_eq!(api(&fleet).stats().list_requests, 2);
}

#[tokio::test]
async fn a_total_of_1000_with_100_users_served_is_an_incomplete_listing() {
    let faults = EquinixFaults {
        total_overstated_by: 900,
        ..EquinixFaults::default()
    };
    let fleet = mock(100, faults).await;
    let expected: Vec<String> = api(&fleet).users().into_iter().map(|u| u.uuid).collect();
    let (users, stats) = list_all(client(&fleet, sim_credentials()), 100, 8).await;
    let got: Vec<String> = users.into_iter().map(|u| u.uuid).collect();
    assert_eq!(got, expected);
    assert_eq!(stats.first_total, Some(1_000));
    let err = stats.error.expect("the listing is reported incomplete");
    assert_eq!(
        err,
        EquinixError::EndedEarly {
            offset: 100,
            listed: 100,
            total: 1_000
        }
    );
    assert!(err.to_string().contains("total is 1000"), "{err}");
    // The first page, then at most a window of eight pages past it.
    let lists = api(&fleet).stats().list_requests;
    assert!((2..=1 + 8).contains(&lists), "{lists} list requests");
}
