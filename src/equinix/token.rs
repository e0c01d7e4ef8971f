//! The OAuth2 token source: a ready token, or client credentials exchanged at
//! `POST /oauth2/v1/token`. One token for every concurrent request, renewed shortly before it
//! expires, one renewal at a time; a token request refused for its credentials is never sent
//! again (the account locks after five failures in a row).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::client::Backoff;
use super::errors::TokenError;
use super::{redact, wire};
use crate::net::{HttpClient, HttpResponse};
use crate::secret::Secret;

/// The token endpoint, relative to the API base.
pub const TOKEN_PATH: &str = "/oauth2/v1/token";

/// Assumed lifetime when the token response does not say.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

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
    pub fn header_value(&self) -> Result<http::HeaderValue, http::header::InvalidHeaderValue> {
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
    state: Mutex<State>,
    requests: AtomicU64,
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
            state: Mutex::new(State::default()),
            requests: AtomicU64::new(0),
            issued: std::sync::Mutex::new(Vec::new()),
        }
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

    /// Token requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
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
    pub async fn renew(&self, stale: &Bearer) -> Result<Bearer, TokenError> {
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
                (
                    value,
                    Some(Instant::now() + lifetime - renew_margin(lifetime)),
                )
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

    /// Retries only what may pass a moment later (5xx, 429, resets, timeouts); a refusal of
    /// the credentials returns at once.
    async fn request_with_retries(
        &self,
        id: &str,
        secret: &Secret,
    ) -> Result<(Secret, Duration), TokenError> {
        let mut attempt = 0;
        loop {
            match self.request_once(id, secret).await {
                Ok(grant) => return Ok(grant),
                Err((e, retry_after)) if e.is_transient() && attempt < self.backoff.retries => {
                    tokio::time::sleep(self.backoff.delay(attempt, retry_after)).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    async fn request_once(
        &self,
        id: &str,
        secret: &Secret,
    ) -> Result<(Secret, Duration), (TokenError, Option<Duration>)> {
        let request = self.build(id, secret).map_err(|e| (e, None))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = self.http.send(request).await.map_err(|source| {
            let e = TokenError::Http {
                url: self.url.clone(),
                source,
            };
            (e, None)
        })?;
        if response.status != StatusCode::OK {
            let retry_after = super::client::retry_after(&response.headers);
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
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
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
            .header(header::USER_AGENT, super::client::USER_AGENT)
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
