//! One device's conversation: sequential requests over the pooled client, the auth
//! handshake with a cached challenge, bounded retries with jitter, and backoff when throttled.
//! What follows each answer is decided in `handshake`; this module does the sending.

mod handshake;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Jitter};
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

use handshake::{Account, Answer, Nonce, Sent, State, Step};
use sshfleet_net::auth::{self, AuthError, AuthSession, BasicOverHttp, Credentials, Transport};
use sshfleet_net::breaker::CredentialVerdict;
use sshfleet_net::retry::{self, jitter, MAX_RETRY_AFTER, USER_AGENT};
use sshfleet_net::tls::Fingerprint;
use sshfleet_net::{HttpClient, HttpError, HttpResponse};

/// Least wait after a 403/429/503: AXIS OS blocks a client for 10 s after too many failures.
pub const THROTTLE_BACKOFF: Duration = Duration::from_secs(10);

/// Test-only knob, never documented to users: milliseconds that replace [`THROTTLE_BACKOFF`],
/// so that the integration tests can watch a throttled device being retried without waiting
/// 10 s (as uv's `UV_TEST_NO_HTTP_RETRY_DELAY`). Read in one place, by the device settings'
/// build step, and given to [`throttle_backoff_from`].
pub const TEST_THROTTLE_BACKOFF_ENV: &str = "SSHFLEET_TEST_THROTTLE_BACKOFF_MS";

/// [`THROTTLE_BACKOFF`], unless the test-only [`TEST_THROTTLE_BACKOFF_ENV`] holds a number of
/// milliseconds (`millis`: its value); anything unparsable is ignored.
pub fn throttle_backoff_from(millis: Option<&str>) -> Duration {
    millis
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(THROTTLE_BACKOFF, Duration::from_millis)
}

/// Pause before a request that failed in transit is sent again (plus jitter).
const TRANSIT_PAUSE: Duration = Duration::from_millis(200);

/// How one session behaves; shared by every device of a run.
#[derive(Clone)]
pub struct SessionPolicy {
    /// Extra tries of a request after a transient failure or throttling.
    pub retries: u32,
    pub basic_over_http: BasicOverHttp,
    /// Optional global request rate (scans) — never applied to writes here.
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub throttle_backoff: Duration,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            retries: 1,
            basic_over_http: BasicOverHttp::Refuse,
            limiter: None,
            throttle_backoff: THROTTLE_BACKOFF,
        }
    }
}

/// Why a request to the device did not produce an answer worth parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Http(#[from] HttpError),
    /// 401 although credentials were sent. `privilege` when they had worked on this device.
    #[error("{}", if *.privilege { "HTTP 401 for an account that authenticated earlier: it lacks the privilege for this API" } else { "HTTP 401: the device rejected the credentials" })]
    AuthFailed { privilege: bool },
    #[error(transparent)]
    AuthRefused(#[from] AuthError),
    /// 403, 429 or 503 that outlasted the retries, or that asked (`Retry-After`) for a
    /// longer wait than sshfleet gives a device: then it fails at once instead of sleeping
    /// into a timeout.
    #[error("HTTP {status}: {}{}", if *.status == 403 { "forbidden (blocked or throttled by the device)" } else { "throttled by the device" }, match .asked_secs { Some(secs) => format!("; it asks to wait {secs} s, beyond this device's deadline"), None => String::new() })]
    Throttled {
        status: u16,
        /// The wait the device asked for when it was too long to honour.
        asked_secs: Option<u64>,
    },
}

/// Whether the connection stays open for the device's next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    KeepAlive,
    /// The device's last request: ask it to close rather than pool the connection.
    Close,
}

/// Whether a request that failed in transit (reset, timeout) may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// Reads: sending again changes nothing on the device.
    IfTransient,
    /// Writes: whether one applied is learned by reading back, never by writing again.
    Never,
}

/// A device's conversation state. Requests are strictly one at a time.
pub struct DeviceSession<'a> {
    http: &'a HttpClient,
    policy: &'a SessionPolicy,
    creds: Credentials,
    base: String,
    transport: Transport,
    auth: AuthSession,
    /// What the handshake has learned and spent so far.
    state: State,
    /// No wait (backoff, throttling) is started that would end after this instant.
    deadline: Instant,
    /// HTTP requests sent, including challenged ones.
    pub requests: u32,
    /// Device-level tries: 1, plus one per retry taken.
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub fingerprint: Option<Fingerprint>,
    /// The serial named by the device's realm, from its first challenge.
    pub serial: Option<String>,
    /// The device answered the credentials with a final 401.
    rejected: bool,
}

impl<'a> DeviceSession<'a> {
    /// `base` is `scheme://authority` with no trailing slash; `deadline` ends the device.
    pub fn new(
        http: &'a HttpClient,
        policy: &'a SessionPolicy,
        creds: Credentials,
        base: String,
        deadline: Instant,
    ) -> DeviceSession<'a> {
        DeviceSession {
            http,
            policy,
            creds,
            transport: if base.starts_with("https://") {
                Transport::Tls
            } else {
                Transport::Plain
            },
            base,
            auth: AuthSession::default(),
            state: State::new(policy.retries),
            deadline,
            requests: 0,
            attempts: 1,
            last_status: None,
            fingerprint: None,
            serial: None,
            rejected: false,
        }
    }

    /// What the device made of the credentials so far.
    pub fn credential_verdict(&self) -> CredentialVerdict {
        match (self.state.account, self.rejected) {
            (Account::Proven, _) => CredentialVerdict::Accepted,
            (Account::Unproven, true) => CredentialVerdict::Rejected,
            (Account::Unproven, false) => CredentialVerdict::Untested,
        }
    }

    /// When the device's time is up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Gives the device a new deadline (remediation: after waiting for its write permit,
    /// which is the run's rate limit and not the device's time).
    pub fn renew_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// POSTs a JSON body.
    pub(crate) async fn post_json(
        &mut self,
        target: &str,
        body: Bytes,
        connection: Connection,
        resend: Resend,
    ) -> Result<HttpResponse, CallError> {
        self.exchange(Method::POST, target, body, connection, resend)
            .await
    }

    pub async fn get(
        &mut self,
        target: &str,
        connection: Connection,
        resend: Resend,
    ) -> Result<HttpResponse, CallError> {
        self.exchange(Method::GET, target, Bytes::new(), connection, resend)
            .await
    }

    async fn exchange(
        &mut self,
        method: Method,
        target: &str,
        body: Bytes,
        connection: Connection,
        resend: Resend,
    ) -> Result<HttpResponse, CallError> {
        self.state = self.state.for_request();
        loop {
            let (sent, request) = self.request(&method, target, &body, connection)?;
            let result = self.send(request).await;
            let answer = self.answer_to(&result, sent, resend);
            let refused = matches!(
                answer,
                Answer::Unauthorized {
                    sent: Sent::Credentials,
                    ..
                }
            );
            let (state, step) = handshake::on_answer(self.state, answer);
            self.state = state;
            match step {
                Step::Done => return result.map_err(CallError::from),
                Step::Fail(error) => {
                    self.rejected |= refused;
                    return Err(error);
                }
                Step::Rechallenge => self.adopt_from(&result)?,
                Step::AdoptAndFail(error) => {
                    self.rejected |= refused;
                    self.adopt_from(&result)?;
                    return Err(error);
                }
                Step::Backoff(wait) => self.back_off(wait, &result).await,
                Step::Resend => {
                    tracing::debug!("connection closed after the challenge; sent again")
                }
            }
        }
    }

    /// The next request, with the credentials the cached challenge allows, if any.
    fn request(
        &mut self,
        method: &Method,
        target: &str,
        body: &Bytes,
        connection: Connection,
    ) -> Result<(Sent, Request<Full<Bytes>>), HttpError> {
        let authorization = self
            .auth
            .authorization(method.as_str(), target, &self.creds);
        let sent = match authorization {
            Some(_) => Sent::Credentials,
            None => Sent::Anonymous,
        };
        let request = self.build(method, target, body.clone(), authorization, connection)?;
        Ok((sent, request))
    }

    /// Sleeps before the next try, which is one more device-level attempt.
    async fn back_off(&mut self, wait: Duration, result: &Result<HttpResponse, HttpError>) {
        self.attempts = self.attempts.saturating_add(1);
        match result {
            Ok(response) => tracing::debug!(
                status = response.status.as_u16(),
                ?wait,
                "throttled by the device; backing off"
            ),
            Err(error) => tracing::debug!(error = %error, "request failed in transit; sent again"),
        }
        tokio::time::sleep(wait).await;
    }

    /// What became of a request, as the handshake needs to know it.
    fn answer_to(
        &self,
        result: &Result<HttpResponse, HttpError>,
        sent: Sent,
        resend: Resend,
    ) -> Answer {
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                return Answer::Lost {
                    error: error.clone(),
                    resend,
                    pause: jitter(TRANSIT_PAUSE),
                }
            }
        };
        match response.status {
            StatusCode::UNAUTHORIZED => Answer::Unauthorized {
                sent,
                nonce: nonce_of(&response.headers),
            },
            StatusCode::FORBIDDEN
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::SERVICE_UNAVAILABLE => {
                let asked = retry::retry_after(&response.headers);
                Answer::Throttled {
                    status: response.status.as_u16(),
                    asked,
                    wait: self.backoff(asked),
                    remaining: self.deadline.saturating_duration_since(Instant::now()),
                }
            }
            _ => Answer::Answered { sent },
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        if let Some(limiter) = &self.policy.limiter {
            limiter
                .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(20)))
                .await;
        }
        self.requests = self.requests.saturating_add(1);
        // The method and path only: the query is VAPIX parameters, the headers hold the
        // credentials and are never logged.
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let started = Instant::now();
        let response = self.http.send(request).await;
        let elapsed = started.elapsed();
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%method, path = uri.path(), ?elapsed, %error, "request failed");
                return Err(error);
            }
        };
        tracing::debug!(
            %method,
            path = uri.path(),
            status = response.status.as_u16(),
            ?elapsed,
            "request answered"
        );
        self.last_status = Some(response.status.as_u16());
        if response.peer.is_some() {
            self.fingerprint = response.peer;
        }
        Ok(response)
    }

    /// Takes the challenge of the 401 in `result` for the next requests.
    fn adopt_from(&mut self, result: &Result<HttpResponse, HttpError>) -> Result<(), CallError> {
        match result {
            Ok(response) => self.adopt(&response.headers),
            // Only 401s are adopted, and a request that failed in transit has none.
            Err(error) => Err(error.clone().into()),
        }
    }

    /// Takes the device's challenge for the next requests.
    fn adopt(&mut self, headers: &http::HeaderMap) -> Result<(), CallError> {
        let adopted = self.auth.adopt(
            headers,
            &self.creds,
            self.transport,
            self.policy.basic_over_http,
        );
        if self.serial.is_none() {
            self.serial = self
                .auth
                .realm()
                .and_then(super::identity::serial_from_realm);
        }
        adopted?;
        tracing::debug!(
            realm = self.auth.realm().unwrap_or_default(),
            scheme = self.auth.scheme().unwrap_or_default(),
            stale = self.auth.is_stale(),
            "challenge adopted"
        );
        Ok(())
    }

    /// At least the policy backoff, longer if the device says so (capped), plus jitter so a
    /// site's blocked cameras are not all retried in the same instant.
    fn backoff(&self, asked: Option<Duration>) -> Duration {
        let asked = asked.unwrap_or_default().min(MAX_RETRY_AFTER);
        let base = self.policy.throttle_backoff.max(asked);
        base.saturating_add(jitter(base / 5))
    }

    fn build(
        &self,
        method: &Method,
        target: &str,
        body: Bytes,
        authorization: Option<http::HeaderValue>,
        connection: Connection,
    ) -> Result<Request<Full<Bytes>>, HttpError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{target}", self.base))
            .header(header::USER_AGENT, USER_AGENT);
        if !body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if connection == Connection::Close {
            builder = builder.header(header::CONNECTION, "close");
        }
        builder
            .body(Full::new(body))
            .map_err(|e| HttpError::Protocol(format!("cannot build request: {e}")))
    }
}

/// Whether a 401's challenge calls the nonce just used stale. The same challenge the session
/// adopts next: a Digest one with `stale=true`.
fn nonce_of(headers: &http::HeaderMap) -> Nonce {
    match auth::parse_challenges(headers) {
        Some(auth::Challenge::Digest(c)) if c.stale => Nonce::Stale,
        _ => Nonce::Fresh,
    }
}
