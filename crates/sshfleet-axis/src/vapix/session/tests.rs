//! [`DeviceSession`] against in-process simulated cameras on loopback, under paused tokio
//! time: the simulator's clock (nonce lifetimes) and the session's sleeps are both virtual,
//! so a 10 s backoff is measured exactly and costs no real time. With paused time tokio
//! jumps to the next timer only when nothing is ready, and loopback delivers on write, so
//! real sockets do not trip the request timeouts.

use std::time::Duration;

use super::*;
use sshfleet_core::secret::Secret;
use sshfleet_net::ClientSettings;
use sshfleet_sim::{DeviceSpec, Fault, Fleet, SimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const VERSIONS: &str = r#"{"context":"t","method":"getSupportedVersions"}"#;

fn one_camera(spec: DeviceSpec) -> SimConfig {
    SimConfig {
        specs: Some(vec![spec]),
        ssh_ports: false,
        ..SimConfig::default()
    }
}

fn faulty(fault: Fault) -> DeviceSpec {
    DeviceSpec {
        fault,
        ..DeviceSpec::clean(false)
    }
}

fn client() -> Result<HttpClient, Box<dyn std::error::Error>> {
    Ok(HttpClient::new(&ClientSettings {
        timeout: Duration::from_secs(5),
        ..ClientSettings::default()
    })?)
}

fn creds(password: &str) -> Credentials {
    Credentials {
        username: "root".into(),
        password: Secret::new(password),
    }
}

fn session<'a>(
    fleet: &Fleet,
    http: &'a HttpClient,
    policy: &'a SessionPolicy,
    creds: &'a Credentials,
    time: Duration,
) -> DeviceSession<'a> {
    let base = format!("http://{}", fleet.address(0));
    DeviceSession::new(http, policy, creds.clone(), base, Instant::now() + time)
}

async fn versions(session: &mut DeviceSession<'_>) -> Result<HttpResponse, CallError> {
    session
        .post_json(
            "/axis-cgi/ssh.cgi",
            Bytes::from_static(VERSIONS.as_bytes()),
            Connection::KeepAlive,
            Resend::IfTransient,
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn a_challenge_then_the_answer_takes_two_requests_and_later_ones_one() -> TestResult {
    let fleet = Fleet::start(one_camera(DeviceSpec::clean(true))).await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("pass"));
    let mut session = session(&fleet, &http, &policy, &creds, Duration::from_secs(60));
    let first = versions(&mut session).await?;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!((session.requests, session.attempts), (2, 1));
    assert!(session.serial.is_some(), "serial read from the realm");
    // The challenge is cached: no second 401.
    versions(&mut session).await?;
    assert_eq!(session.requests, 3);
    assert_eq!(fleet.snapshot()[0].requests, 3);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_stale_nonce_is_answered_once_with_the_new_challenge() -> TestResult {
    let fleet = Fleet::start(SimConfig {
        nonce_lifetime: Duration::from_secs(1),
        ..one_camera(DeviceSpec::clean(true))
    })
    .await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("pass"));
    let mut session = session(&fleet, &http, &policy, &creds, Duration::from_secs(60));
    versions(&mut session).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = versions(&mut session).await?;
    assert_eq!(again.status, StatusCode::OK);
    // 401 + 200, then the stale nonce's 401 + 200 with the new one.
    assert_eq!((session.requests, session.attempts), (4, 1));
    assert_eq!(fleet.snapshot()[0].requests, 4);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn wrong_credentials_are_sent_once() -> TestResult {
    let fleet = Fleet::start(one_camera(DeviceSpec::clean(false))).await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("guess"));
    let mut session = session(&fleet, &http, &policy, &creds, Duration::from_secs(60));
    let refused = versions(&mut session).await;
    assert_eq!(
        refused.map(|r| r.status),
        Err(CallError::AuthFailed { privilege: false })
    );
    assert_eq!(
        session.requests, 2,
        "the challenge, then the credentials once"
    );
    assert_eq!(session.last_status, Some(401));
    assert!(
        session.serial.is_some(),
        "the realm is read even when refused"
    );
    assert_eq!(fleet.snapshot()[0].requests, 2);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_throttled_device_is_retried_once_after_the_backoff() -> TestResult {
    let fleet = Fleet::start(one_camera(faulty(Fault::Throttled))).await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("pass"));
    let mut session = session(&fleet, &http, &policy, &creds, Duration::from_secs(60));
    let (virtual_start, real_start) = (Instant::now(), std::time::Instant::now());
    let throttled = versions(&mut session).await;
    let waited = virtual_start.elapsed();
    assert_eq!(
        throttled.map(|r| r.status),
        Err(CallError::Throttled {
            status: 403,
            asked_secs: None
        })
    );
    assert_eq!((session.requests, session.attempts), (2, 2));
    assert_eq!(fleet.snapshot()[0].requests, 2);
    // The backoff plus at most its 20 % jitter, in virtual time only.
    assert!(waited >= THROTTLE_BACKOFF, "{waited:?}");
    assert!(waited < THROTTLE_BACKOFF * 6 / 5, "{waited:?}");
    assert!(real_start.elapsed() < THROTTLE_BACKOFF / 2);
    // The camera saw the pause too, on the same virtual clock.
    let arrivals = fleet.arrivals(0);
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert_eq!(arrivals[1].duration_since(arrivals[0]), waited);
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_throttled_device_whose_backoff_outlasts_the_deadline_fails_at_once() -> TestResult {
    let fleet = Fleet::start(one_camera(faulty(Fault::Throttled))).await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("pass"));
    let mut session = session(&fleet, &http, &policy, &creds, THROTTLE_BACKOFF / 2);
    let start = Instant::now();
    let throttled = versions(&mut session).await;
    assert_eq!(
        throttled.map(|r| r.status),
        Err(CallError::Throttled {
            status: 403,
            asked_secs: None
        })
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep at all");
    assert_eq!((session.requests, session.attempts), (1, 1));
    fleet.shutdown().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_deadline_fails_at_once_saying_what_was_asked() -> TestResult {
    let fleet = Fleet::start(one_camera(faulty(Fault::ThrottledLong))).await?;
    let (http, policy, creds) = (client()?, SessionPolicy::default(), creds("pass"));
    let mut session = session(&fleet, &http, &policy, &creds, Duration::from_secs(60));
    let start = Instant::now();
    let throttled = versions(&mut session).await;
    assert_eq!(
        throttled.map(|r| r.status),
        Err(CallError::Throttled {
            status: 429,
            asked_secs: Some(999_999)
        })
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "no sleep at all");
    assert_eq!((session.requests, session.attempts), (1, 1));
    assert_eq!(fleet.snapshot()[0].requests, 1);
    fleet.shutdown().await;
    Ok(())
}

#[test]
fn only_a_digest_challenge_saying_stale_calls_the_nonce_stale() {
    let headers = |value: &'static str| {
        let mut h = http::HeaderMap::new();
        h.insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(value),
        );
        h
    };
    let stale = r#"Digest realm="r", nonce="n", qop="auth", stale=true"#;
    assert_eq!(nonce_of(&headers(stale)), Nonce::Stale);
    let fresh = r#"Digest realm="r", nonce="n", qop="auth""#;
    assert_eq!(nonce_of(&headers(fresh)), Nonce::Fresh);
    assert_eq!(nonce_of(&headers(r#"Basic realm="r""#)), Nonce::Fresh);
    assert_eq!(nonce_of(&http::HeaderMap::new()), Nonce::Fresh);
}
