//! One device's conversation: sequential requests over the pooled client, the auth
//! handshake with a cached challenge, bounded retries with jitter, and backoff when throttled.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Jitter};
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

use crate::net::auth::{AuthError, AuthSession, Credentials};
use crate::net::retry::{self, jitter, MAX_RETRY_AFTER, USER_AGENT};
use crate::net::tls::Fingerprint;
use crate::net::{HttpClient, HttpError, HttpResponse};

/// Least wait after a 403/429/503: AXIS OS blocks a client for 10 s after too many failures.
pub const THROTTLE_BACKOFF: Duration = Duration::from_secs(10);

/// How one session behaves; shared by every device of a run.
#[derive(Clone)]
pub struct SessionPolicy {
    /// Extra tries of a request after a transient failure or throttling.
    pub retries: u32,
    pub allow_basic_http: bool,
    /// Optional global request rate (scans) — never applied to writes here.
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub throttle_backoff: Duration,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            retries: 1,
            allow_basic_http: false,
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
    creds: &'a Credentials,
    base: String,
    tls: bool,
    auth: AuthSession,
    /// Credentials have been accepted at least once on this device.
    authenticated: bool,
    retries_left: u32,
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
}

impl<'a> DeviceSession<'a> {
    /// `base` is `scheme://authority` with no trailing slash; `deadline` ends the device.
    pub fn new(
        http: &'a HttpClient,
        policy: &'a SessionPolicy,
        creds: &'a Credentials,
        base: String,
        deadline: Instant,
    ) -> DeviceSession<'a> {
        DeviceSession {
            http,
            policy,
            creds,
            tls: base.starts_with("https://"),
            base,
            auth: AuthSession::default(),
            authenticated: false,
            retries_left: policy.retries,
            deadline,
            requests: 0,
            attempts: 1,
            last_status: None,
            fingerprint: None,
            serial: None,
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
    pub async fn post_json(
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
        let mut challenges = 0u32;
        let mut rechallenged = false;
        loop {
            let authorization = self.auth.authorization(method.as_str(), target, self.creds);
            let sent_credentials = authorization.is_some();
            let request = self.build(&method, target, body.clone(), authorization, connection)?;
            let response = match self.send(request).await {
                Ok(r) => r,
                Err(e)
                    if resend == Resend::IfTransient && e.is_transient() && self.take_retry() =>
                {
                    tracing::debug!(error = %e, "request failed in transit; sent again");
                    tokio::time::sleep(jitter(Duration::from_millis(200))).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match response.status {
                StatusCode::UNAUTHORIZED => {
                    // Without credentials this is the normal challenge; with them it is final,
                    // except once for a nonce that went stale (or expired without saying so
                    // on a device where these credentials already worked).
                    let retry = if !sent_credentials {
                        challenges += 1;
                        challenges <= 2
                    } else if !rechallenged {
                        rechallenged = true;
                        self.adopt(&response.headers)?;
                        if self.auth.is_stale() || self.authenticated {
                            continue;
                        }
                        false
                    } else {
                        false
                    };
                    if !retry {
                        return Err(CallError::AuthFailed {
                            privilege: self.authenticated,
                        });
                    }
                    self.adopt(&response.headers)?;
                }
                StatusCode::FORBIDDEN
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE => {
                    let status = response.status.as_u16();
                    let asked = retry::retry_after(&response.headers);
                    let wait = self.backoff(asked);
                    // A wait past the device's deadline would only end as a timeout: say now
                    // what the device said.
                    let too_long = asked.is_some_and(|a| a > MAX_RETRY_AFTER)
                        || Instant::now()
                            .checked_add(wait)
                            .map_or(true, |end| end >= self.deadline);
                    if too_long {
                        return Err(CallError::Throttled {
                            status,
                            asked_secs: asked.map(|a| a.as_secs()),
                        });
                    }
                    if !self.take_retry() {
                        return Err(CallError::Throttled {
                            status,
                            asked_secs: None,
                        });
                    }
                    tracing::debug!(status, ?wait, "throttled by the device; backing off");
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    if sent_credentials {
                        self.authenticated = true;
                    }
                    return Ok(response);
                }
            }
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        if let Some(limiter) = &self.policy.limiter {
            limiter
                .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(20)))
                .await;
        }
        self.requests += 1;
        let response = self.http.send(request).await?;
        self.last_status = Some(response.status.as_u16());
        if response.peer.is_some() {
            self.fingerprint = response.peer;
        }
        Ok(response)
    }

    /// Takes the device's challenge for the next requests.
    fn adopt(&mut self, headers: &http::HeaderMap) -> Result<(), CallError> {
        let allow_basic_http = self.policy.allow_basic_http;
        let adopted = self
            .auth
            .adopt(headers, self.creds, self.tls, allow_basic_http);
        if self.serial.is_none() {
            self.serial = self
                .auth
                .realm()
                .and_then(super::identity::serial_from_realm);
        }
        adopted?;
        Ok(())
    }

    fn take_retry(&mut self) -> bool {
        if self.retries_left == 0 {
            return false;
        }
        self.retries_left -= 1;
        self.attempts += 1;
        true
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
