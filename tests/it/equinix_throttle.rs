//! 429 and 5xx handling, timed on paused tokio time from the mock's request log:
//! `Retry-After` is honoured, otherwise the backoff grows exponentially with jitter, and
//! server errors are retried only for calls that are safe to repeat.

use std::time::Duration;

use sshfleet_core::secret::Secret;
use sshfleet_equinix::client::Backoff;
use sshfleet_equinix::{EquinixError, NewUser};
use sshfleet_sim::{EquinixFaults, LoggedRequest};

use crate::equinix_support::{api, client_with, mock, sim_credentials};

fn api_calls(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter()
        .filter(|r| r.target.starts_with("/ne/"))
        .collect()
}

fn gaps(calls: &[&LoggedRequest]) -> Vec<Duration> {
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_the_retry() {
    let faults = EquinixFaults {
        throttle_every: Some(2),
        retry_after: Some(7),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let client = client_with(&fleet, sim_credentials(), Backoff::default());
    let uuid = api(&fleet).users()[0].uuid.clone();
    for _ in 0..3 {
        client
            .get_user(&uuid)
            .await
            .expect("succeeds after waiting");
    }
    let log = api(&fleet).requests();
    let calls = api_calls(&log);
    assert_eq!(calls.iter().filter(|c| c.status == 429).count(), 2);
    assert_eq!(calls.len(), 5);
    for (pair, gap) in calls.windows(2).zip(gaps(&calls)) {
        if pair[0].status == 429 {
            assert!(gap >= Duration::from_secs(7), "{gap:?}");
            assert!(gap <= Duration::from_millis(7_700), "{gap:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_retry_after_the_backoff_doubles_with_jitter_then_gives_up() {
    let faults = EquinixFaults {
        throttle_every: Some(1),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let backoff = Backoff {
        retries: 4,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let client = client_with(&fleet, sim_credentials(), backoff);
    let err = client.get_user("abc").await.expect_err("always throttled");
    assert_eq!(err.status(), Some(429), "{err}");
    assert_eq!(err.api_codes(), ["TOO_MANY_REQUESTS"]);
    let log = api(&fleet).requests();
    let calls = api_calls(&log);
    assert_eq!(calls.len(), 5, "one try and four retries");
    for (k, gap) in gaps(&calls).into_iter().enumerate() {
        let full = Duration::from_secs(1 << k);
        assert!(gap >= full / 2 && gap <= full, "retry {k}: {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_longest_wait_is_not_waited_for() {
    let faults = EquinixFaults {
        throttle_every: Some(1),
        retry_after: Some(3_600),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let client = client_with(&fleet, sim_credentials(), Backoff::default());
    let err = client
        .get_user("abc")
        .await
        .expect_err("throttled for an hour");
    assert_eq!(err.status(), Some(429));
    assert_eq!(api(&fleet).stats().api_requests, 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_only_for_idempotent_calls() {
    let faults = EquinixFaults {
        error_every: Some(1),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let backoff = Backoff {
        retries: 2,
        ..Backoff::default()
    };
    let client = client_with(&fleet, sim_credentials(), backoff);
    let (device, _) = api(&fleet).devices();
    let user = NewUser {
        username: "newbie".into(),
        password: Secret::new("pass12"),
        device_uuid: device,
    };
    let err = client.create(&user).await.expect_err("500");
    assert!(
        matches!(err, EquinixError::Api { status: 500, .. }),
        "{err}"
    );
    assert_eq!(
        api(&fleet).stats().api_requests,
        1,
        "a POST is never repeated"
    );

    let uuid = api(&fleet).users()[0].uuid.clone();
    client.get_user(&uuid).await.expect_err("500 every time");
    assert_eq!(
        api(&fleet).stats().api_requests,
        1 + 3,
        "a GET is tried three times"
    );
    client
        .set_password(&uuid, &Secret::new("pass13"))
        .await
        .expect_err("500 every time");
    assert_eq!(api(&fleet).stats().api_requests, 4 + 3, "a PUT too");
}
