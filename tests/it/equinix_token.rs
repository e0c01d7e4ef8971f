//! The token source against the mock: one renewal shared by concurrent requests, a 401
//! renews at most once, refused credentials are never sent again, and the mock's lockout.

use std::time::Duration;

use sshfleet_core::secret::Secret;
use sshfleet_equinix::{Credentials, EquinixError, RefusedToken, TokenError};
use sshfleet_sim::EquinixFaults;

use sshfleet_core::shutdown;
use sshfleet_equinix::client::Backoff;

use crate::equinix_support::{api, client, client_stopped_by, mock, sim_credentials};
use crate::support::{args, code, eventually, run, stderr};

#[tokio::test(start_paused = true)]
async fn one_renewal_is_shared_by_concurrent_requests_near_expiry() {
    let faults = EquinixFaults {
        token_lifetime: Duration::from_secs(600),
        ..EquinixFaults::default()
    };
    let fleet = mock(20, faults).await;
    let client = client(&fleet, sim_credentials());
    let uuid = api(&fleet).users()[0].uuid.clone();
    client.get_user(&uuid).await.expect("first call");
    assert_eq!(api(&fleet).stats().token_requests, 1);

    // Past the renewal point (30 s before expiry), but the old token would still work.
    tokio::time::advance(Duration::from_secs(575)).await;
    let calls = (0..16).map(|_| {
        let (client, uuid) = (client.clone(), uuid.clone());
        tokio::spawn(async move { client.get_user(&uuid).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.expect("task").expect("call succeeds");
    }
    let stats = api(&fleet).stats();
    assert_eq!(stats.token_requests, 2, "{stats:?}");
    assert_eq!(stats.unauthorized, 0, "renewed before expiry: {stats:?}");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_per_401_and_the_call_succeeds() {
    let faults = EquinixFaults {
        expire_every: Some(3),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let client = client(&fleet, sim_credentials());
    let uuid = api(&fleet).users()[0].uuid.clone();
    for _ in 0..6 {
        client
            .get_user(&uuid)
            .await
            .expect("call succeeds after renewal");
    }
    let stats = api(&fleet).stats();
    assert!(stats.unauthorized >= 2, "{stats:?}");
    assert_eq!(stats.token_requests, 1 + stats.unauthorized, "{stats:?}");
}

#[tokio::test]
async fn a_second_401_after_renewal_is_final() {
    let faults = EquinixFaults {
        expire_every: Some(1),
        ..EquinixFaults::default()
    };
    let fleet = mock(10, faults).await;
    let client = client(&fleet, sim_credentials());
    let err = client
        .get_user("x")
        .await
        .expect_err("every call is refused");
    assert!(
        matches!(
            err,
            EquinixError::Unauthorized {
                token: RefusedToken::Renewed,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("HTTP 401 even with a freshly renewed token"),
        "{err}"
    );
    let stats = api(&fleet).stats();
    assert_eq!(
        (stats.token_requests, stats.api_requests),
        (2, 2),
        "{stats:?}"
    );
}

#[tokio::test]
async fn refused_credentials_are_sent_once_however_many_calls_wait() {
    let fleet = mock(10, EquinixFaults::default()).await;
    let wrong = Credentials::Client {
        id: "sim-client".into(),
        secret: Secret::new("wrong-secret"),
    };
    let client = client(&fleet, wrong);
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_user("abc").await })
        })
        .collect();
    for call in calls {
        let err = call.await.expect("task").expect_err("refused");
        assert!(
            matches!(
                err,
                EquinixError::Token(TokenError::Rejected { status: 401, .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("INVALID_CLIENT"), "{err}");
        assert!(!err.to_string().contains("wrong-secret"));
    }
    let stats = api(&fleet).stats();
    assert_eq!(
        (stats.token_requests, stats.api_requests),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_ready_token_is_used_as_is_and_its_refusal_is_final() {
    let fleet = mock(10, EquinixFaults::default()).await;
    let client = client(&fleet, Credentials::Token(Secret::new("not-a-token")));
    let err = client.get_user("abc").await.expect_err("unknown token");
    assert!(
        matches!(
            err,
            EquinixError::Unauthorized {
                token: RefusedToken::Ready,
                ..
            }
        ),
        "{err}"
    );
    // Nothing was renewed: the message says why not, not that a renewal failed.
    let message = err.to_string();
    assert!(!message.contains("renewed token"), "{message}");
    assert!(
        message.contains(
            "HTTP 401 for the ready token from EQUINIX_API_TOKEN, which cannot be renewed"
        ),
        "{message}"
    );
    let stats = api(&fleet).stats();
    assert_eq!(
        (stats.token_requests, stats.api_requests),
        (0, 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_locks_the_client_after_five_failures_and_each_run_tries_once() {
    let fleet = mock(10, EquinixFaults::default()).await;
    let url = fleet.equinix_url().expect("url");
    let list = |secret: &'static str| {
        let url = url.clone();
        async move {
            run(
                &args(&["equinix", "ssh-users", "list", "--endpoint", &url, "-q"]),
                &[
                    ("EQUINIX_API_CLIENTID", "sim-client"),
                    ("EQUINIX_API_CLIENTSECRET", secret),
                ],
            )
            .await
        }
    };
    for attempt in 1..=5 {
        let output = list("bad").await;
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert!(
            stderr(&output).contains("not retried"),
            "{}",
            stderr(&output)
        );
        assert_eq!(api(&fleet).stats().token_requests, attempt);
    }
    let output = list("sim-secret").await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ACCOUNT_LOCKED"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn absurd_token_lifetimes_neither_crash_nor_renew_on_every_call() {
    for text in ["18446744073709551615", "1e30", "-5", "soon", "0"] {
        let faults = EquinixFaults {
            token_timeout_text: Some(text.into()),
            ..EquinixFaults::default()
        };
        let fleet = mock(5, faults).await;
        let client = client(&fleet, sim_credentials());
        let uuid = api(&fleet).users()[0].uuid.clone();
        for _ in 0..3 {
            client.get_user(&uuid).await.expect("the token works");
        }
        let stats = api(&fleet).stats();
        assert_eq!(stats.token_requests, 1, "token_timeout {text:?}: {stats:?}");
    }
}

/// An IMF-fixdate a year from now (the weekday is not checked by readers, so any will do).
pub(crate) fn http_date_a_year_ahead() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let later = now.as_millis() as i64 + 365 * 86_400_000;
    let iso = sshfleet_core::time::format_rfc3339_millis(later);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = iso[5..7].parse().expect("month");
    format!(
        "Mon, {} {} {} {} GMT",
        &iso[8..10],
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

#[tokio::test]
async fn a_token_wait_beyond_the_longest_wait_fails_at_once_without_sleeping() {
    let a_year_ahead = http_date_a_year_ahead();
    let too_long = [
        "18446744073709551615",
        "999999",
        a_year_ahead.as_str(),
        "99999999999999999999999999999",
    ];
    for asked in too_long {
        let faults = EquinixFaults {
            token_throttle: Some(asked.into()),
            ..EquinixFaults::default()
        };
        let fleet = mock(5, faults).await;
        let client = client(&fleet, sim_credentials());
        let started = std::time::Instant::now();
        let err = client.get_user("abc").await.expect_err("throttled");
        assert!(
            matches!(err, EquinixError::Token(TokenError::WaitTooLong { .. })),
            "Retry-After {asked:?}: {err}"
        );
        assert!(err.to_string().contains("longest wait"), "{err}");
        assert_eq!(api(&fleet).stats().token_requests, 1, "{asked:?}");
        // Generous: the point is that it did not sleep for what was asked.
        assert!(started.elapsed() < Duration::from_secs(20), "{asked:?}");
    }
}

#[tokio::test]
async fn a_stop_request_ends_a_wait_between_token_requests() {
    let faults = EquinixFaults {
        token_throttle: Some("50".into()),
        ..EquinixFaults::default()
    };
    let fleet = mock(5, faults).await;
    let (trigger, stop) = shutdown::channel();
    let client = client_stopped_by(&fleet, sim_credentials(), Backoff::default(), stop);
    let call = tokio::spawn(async move { client.get_user("abc").await });
    // The first request is answered at once; the client then waits 50 s to retry.
    let asked = || api(&fleet).stats().token_requests >= 1;
    assert!(
        eventually(asked, Duration::from_secs(2)).await,
        "the first token request"
    );
    assert_eq!(api(&fleet).stats().token_requests, 1);
    trigger.trigger();
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the wait ends on the stop request")
        .expect("task")
        .expect_err("interrupted");
    assert!(
        matches!(err, EquinixError::Token(TokenError::Interrupted { .. })),
        "{err}"
    );
    assert_eq!(api(&fleet).stats().token_requests, 1);
}

#[tokio::test]
async fn the_binary_reports_a_token_wait_it_will_not_sit_through() {
    let faults = EquinixFaults {
        token_throttle: Some("999999".into()),
        ..EquinixFaults::default()
    };
    let fleet = mock(5, faults).await;
    let url = fleet.equinix_url().expect("url");
    let output = run(
        &args(&["equinix", "ssh-users", "list", "--endpoint", &url, "-q"]),
        &[
            ("EQUINIX_API_CLIENTID", "sim-client"),
            ("EQUINIX_API_CLIENTSECRET", "sim-secret"),
        ],
    )
    .await;
    let err = stderr(&output);
    // An API failure before any page: exit 1, per the Equinix exit-code table.
    assert_eq!(code(&output), 1, "{err}");
    assert!(
        err.contains("999999 s") && err.contains("longest wait"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(api(&fleet).stats().token_requests, 1);
}
