//! The token source against the mock: one renewal shared by concurrent requests, a 401
//! renews at most once, refused credentials are never sent again, and the mock's lockout.

use std::time::Duration;

use sshfleet::equinix::{Credentials, EquinixError, TokenError};
use sshfleet::secret::Secret;
use sshfleet::sim::EquinixFaults;

use crate::equinix_support::{api, client, mock, sim_credentials};
use crate::support::{args, code, run, stderr};

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
        matches!(err, EquinixError::Unauthorized { renewed: true, .. }),
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
        matches!(err, EquinixError::Unauthorized { renewed: false, .. }),
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
