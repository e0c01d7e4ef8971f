//! The OAuth2 token source: a ready token, or client credentials exchanged at
//! `POST /oauth2/v1/token`. One token for every concurrent request, renewed shortly before it
//! expires, one renewal at a time; a token request refused for its credentials is never sent
//! again (the account locks after five failures in a row).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::errors::TokenError;
use super::{redact, wire};
use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_net::retry::{self, Backoff, Paused, USER_AGENT};
use sshfleet_net::{HttpClient, HttpResponse};

/// The token endpoint, relative to the API base.
pub(crate) const TOKEN_PATH: &str = "/oauth2/v1/token";

/// Assumed lifetime when the token response does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// Longest lifetime believed: a grant claiming more (`1e30`, `u64::MAX`) is renewed after
/// a day, never trusted into an instant no clock can hold.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// Renew this long before expiry at most (public clients renew about 10 s early; a little
/// more leaves room for a slow renewal).
const MAX_RENEW_MARGIN: Duration = Duration::from_secs(30);

/// Where tokens come from.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A ready token (`EQUINIX_API_TOKEN`): used as is, never renewed.
    Token(Secret),
    /// Client credentials (`EQUINIX_API_CLIENTID`/`EQUINIX_API_CLIENTSECRET`).
    Client { id: String, secret: Secret },
}

/// A token handed to one request. `generation` tells renewals apart.
#[derive(Clone, Debug)]
pub struct Bearer {
    pub value: Secret,
    generation: u64,
}

impl Bearer {
    /// The `Authorization` header value.
    pub(crate) fn header_value(
        &self,
    ) -> Result<http::HeaderValue, http::header::InvalidHeaderValue> {
        let mut value = http::HeaderValue::try_from(format!("Bearer {}", self.value.expose()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

struct Held {
    bearer: Bearer,
    renew_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    held: Option<Held>,
    generation: u64,
    /// A credential failure: returned to every later caller without a new request.
    refused: Option<TokenError>,
}

/// Shared by every request of a run (cheap to share behind an `Arc`).
pub struct TokenSource {
    http: Arc<HttpClient>,
    url: String,
    credentials: Credentials,
    backoff: Backoff,
    stop: Shutdown,
    state: Mutex<State>,
    /// The latest tokens issued, for redacting them from error text (read without waiting).
    issued: std::sync::Mutex<Vec<Secret>>,
}

/// Issued tokens remembered for redaction: the current one and a few it replaced.
const ISSUED_KEPT: usize = 4;

impl TokenSource {
    /// `base` is the API base (`https://api.equinix.com`), without a trailing slash.
    pub fn new(
        http: Arc<HttpClient>,
        base: &str,
        credentials: Credentials,
        backoff: Backoff,
    ) -> TokenSource {
        TokenSource {
            http,
            url: format!("{base}{TOKEN_PATH}"),
            credentials,
            backoff,
            stop: Shutdown::never(),
            state: Mutex::new(State::default()),
            issued: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Ends every wait between token requests when `stop` fires.
    pub fn with_stop(mut self, stop: Shutdown) -> TokenSource {
        self.stop = stop;
        self
    }

    /// Every secret this source knows (the client secret or ready token, and the latest
    /// tokens issued): none of them may appear in an error message.
    pub fn secrets(&self) -> Vec<Secret> {
        let mut secrets = match &self.credentials {
            Credentials::Token(token) => vec![token.clone()],
            Credentials::Client { secret, .. } => vec![secret.clone()],
        };
        secrets.extend(
            self.issued
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        );
        secrets
    }

    fn remember(&self, token: &Secret) {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.push(token.clone());
        let excess = issued.len().saturating_sub(ISSUED_KEPT);
        issued.drain(..excess);
    }

    /// A token that is not about to expire. Concurrent callers wait for one renewal.
    pub async fn bearer(&self) -> Result<Bearer, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(held) = &state.held {
            if held.renew_at.map_or(true, |at| Instant::now() < at) {
                return Ok(held.bearer.clone());
            }
        }
        self.obtain(&mut state).await
    }

    /// After a 401 with `stale`: a new token, unless another request already renewed it.
    pub(crate) async fn renew(&self, stale: &Bearer) -> Result<Bearer, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(held) = &state.held {
            if held.bearer.generation != stale.generation {
                return Ok(held.bearer.clone());
            }
        }
        if matches!(self.credentials, Credentials::Token(_)) {
            return Err(TokenError::StaticTokenRefused);
        }
        state.held = None;
        self.obtain(&mut state).await
    }

    async fn obtain(&self, state: &mut State) -> Result<Bearer, TokenError> {
        if let Some(refused) = &state.refused {
            return Err(refused.clone());
        }
        let (value, renew_at) = match &self.credentials {
            Credentials::Token(token) => (token.clone(), None),
            Credentials::Client { id, secret } => {
                let (value, lifetime) =
                    self.request_with_retries(id, secret).await.map_err(|e| {
                        // The endpoint may echo the secret it was sent.
                        let e = redact::token_error(e, std::slice::from_ref(secret));
                        if matches!(e, TokenError::Rejected { .. }) {
                            state.refused = Some(e.clone());
                        }
                        e
                    })?;
                self.remember(&value);
                (value, Some(renewal_instant(Instant::now(), lifetime)))
            }
        };
        state.generation += 1;
        let bearer = Bearer {
            value,
            generation: state.generation,
        };
        state.held = Some(Held {
            bearer: bearer.clone(),
            renew_at,
        });
        Ok(bearer)
    }

    /// Retries only what may pass a moment later (5xx, 429, resets, timeouts), and only when
    /// the server's `Retry-After` is within the longest wait; a refusal of the credentials
    /// returns at once, and so does a stop request during a wait.
    async fn request_with_retries(
        &self,
        id: &str,
        secret: &Secret,
    ) -> Result<(Secret, Duration), TokenError> {
        let mut attempt = 0;
        loop {
            let (e, asked) = match self.request_once(id, secret).await {
                Ok(grant) => return Ok(grant),
                Err(failure) => failure,
            };
            if !e.is_transient() || attempt >= self.backoff.retries {
                return Err(e);
            }
            if !self.backoff.accepts(asked) {
                return Err(TokenError::WaitTooLong {
                    url: self.url.clone(),
                    asked_secs: asked.map_or(0, |a| a.as_secs()),
                    max_secs: self.backoff.max.as_secs(),
                });
            }
            let wait = self.backoff.delay(attempt, asked);
            tracing::debug!(url = %self.url, attempt, ?wait, error = %e, "token request retried");
            if retry::pause(wait, &self.stop).await == Paused::Stopped {
                return Err(TokenError::Interrupted {
                    url: self.url.clone(),
                });
            }
            attempt += 1;
        }
    }

    async fn request_once(
        &self,
        id: &str,
        secret: &Secret,
    ) -> Result<(Secret, Duration), (TokenError, Option<Duration>)> {
        let request = self.build(id, secret).map_err(|e| (e, None))?;
        tracing::debug!(url = %self.url, "token requested");
        let mut response = self.http.send(request).await.map_err(|source| {
            let e = TokenError::Http {
                url: self.url.clone(),
                source,
            };
            (e, None)
        })?;
        if response.status != StatusCode::OK {
            let retry_after = retry::retry_after(&response.headers);
            return Err((self.refusal(&response), retry_after));
        }
        let grant = wire::parse_token(&mut response.body).map_err(|m| {
            let e = TokenError::Malformed {
                url: self.url.clone(),
                reason: m.0,
            };
            (e, None)
        })?;
        let lifetime = grant
            .lifetime_secs
            .filter(|s| *s > 0)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs)
            .min(MAX_LIFETIME);
        Ok((grant.access_token, lifetime))
    }

    fn refusal(&self, response: &HttpResponse) -> TokenError {
        let problems = wire::parse_problems(&response.body);
        let status = response.status.as_u16();
        match status {
            400 | 401 | 403 => TokenError::Rejected {
                url: self.url.clone(),
                status,
                problems,
            },
            _ => TokenError::Status {
                url: self.url.clone(),
                status,
                problems,
            },
        }
    }

    fn build(&self, id: &str, secret: &Secret) -> Result<Request<Full<Bytes>>, TokenError> {
        Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::from(wire::token_request(id, secret))))
            .map_err(|e| TokenError::Malformed {
                url: self.url.clone(),
                reason: format!("cannot build the token request: {e}"),
            })
    }
}

/// How long before expiry to renew: 30 s, or half the lifetime of a short-lived token.
fn renew_margin(lifetime: Duration) -> Duration {
    MAX_RENEW_MARGIN.min(lifetime / 2)
}

/// When a token of `lifetime` got at `now` is renewed; an instant past what the clock holds
/// means "renew after the longest believed lifetime" rather than a panic.
fn renewal_instant(now: Instant, lifetime: Duration) -> Instant {
    let lifetime = lifetime.min(MAX_LIFETIME);
    let ahead = lifetime.saturating_sub(renew_margin(lifetime));
    now.checked_add(ahead).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_early_but_never_before_half_the_lifetime() {
        assert_eq!(
            renew_margin(Duration::from_secs(3599)),
            Duration::from_secs(30)
        );
        assert_eq!(
            renew_margin(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn absurd_lifetimes_are_renewed_within_a_day() {
        let now = Instant::now();
        for lifetime in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            MAX_LIFETIME * 2,
        ] {
            let at = renewal_instant(now, lifetime);
            assert!(at > now && at <= now + MAX_LIFETIME, "{lifetime:?}");
        }
        assert_eq!(
            renewal_instant(now, Duration::from_secs(3600)),
            now + Duration::from_secs(3570)
        );
    }

    #[test]
    fn the_bearer_header_is_sensitive() -> Result<(), http::header::InvalidHeaderValue> {
        let bearer = Bearer {
            value: Secret::new("abc"),
            generation: 1,
        };
        let value = bearer.header_value()?;
        assert!(value.is_sensitive());
        assert_eq!(value.as_bytes(), b"Bearer abc");
        Ok(())
    }
}
