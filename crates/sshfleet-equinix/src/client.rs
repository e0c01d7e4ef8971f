//! The `sshUsers` operations over the shared HTTP client: Bearer tokens with at most one
//! renewal per call, 429 backoff (`Retry-After` honoured), 5xx and transport retries for
//! idempotent calls only, and the write rate limit.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Jitter};
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;

use super::errors::{ApiProblem, EquinixError, RefusedToken, TokenError};
use super::token::{Bearer, TokenSource};
use super::{redact, wire, Availability, Dissociation, ListFilter, Page, SshUser};
use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
pub use sshfleet_net::retry::Backoff;
use sshfleet_net::retry::{pause, retry_after, Paused, USER_AGENT};
use sshfleet_net::{HttpClient, HttpError, HttpResponse};
use tracing::Instrument as _;

const USERS: &str = "/ne/v1/sshUsers";

/// How calls behave; shared by every call of a run.
#[derive(Clone, Debug, Default)]
pub struct ClientPolicy {
    pub backoff: Backoff,
    /// Every write waits here first (required for writes by the CLI).
    pub write_limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Ends every wait between retries (Ctrl-C, SIGTERM).
    pub stop: Shutdown,
}

/// What `create` needs.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password: Secret,
    pub device_uuid: String,
}

/// One request to make, with what is safe to repeat.
struct Call {
    method: Method,
    /// Path and query, starting with `/`.
    target: String,
    body: Option<Vec<u8>>,
    /// Safe to send twice: transport failures and 5xx are retried.
    idempotent: bool,
    write: bool,
}

impl Call {
    fn get(target: String) -> Call {
        Call {
            method: Method::GET,
            target,
            body: None,
            idempotent: true,
            write: false,
        }
    }

    fn write(method: Method, target: String, body: Vec<u8>) -> Call {
        // PUT and DELETE are idempotent by definition (RFC 9110); creating is not.
        let idempotent = method != Method::POST;
        Call {
            method,
            target,
            body: Some(body),
            idempotent,
            write: true,
        }
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            _ => "request",
        }
    }
}

/// The Network Edge SSH-user API. Cheap to share behind an `Arc`.
pub struct EquinixClient {
    http: Arc<HttpClient>,
    base: String,
    tokens: Arc<TokenSource>,
    policy: ClientPolicy,
}

impl EquinixClient {
    /// `base` is `scheme://host[:port]` without a trailing slash.
    pub fn new(
        http: Arc<HttpClient>,
        base: String,
        tokens: Arc<TokenSource>,
        policy: ClientPolicy,
    ) -> EquinixClient {
        EquinixClient {
            http,
            base,
            tokens,
            policy,
        }
    }

    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// `GET /ne/v1/sshUsers` at `offset`, `limit` users.
    pub(crate) async fn list_page(
        &self,
        filter: &ListFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Page, EquinixError> {
        let call = Call::get(format!("{USERS}?{}", list_query(filter, offset, limit)));
        let mut response = self.expect_success(&call).await?;
        wire::parse_page(&mut response.body, offset).map_err(|m| self.malformed(&call, 200, m))
    }

    /// `GET /ne/v1/sshUsers/{uuid}`.
    pub async fn get_user(&self, uuid: &str) -> Result<SshUser, EquinixError> {
        let call = Call::get(format!("{USERS}/{}", segment("user uuid", uuid)?));
        let mut response = self.expect_success(&call).await?;
        let status = response.status.as_u16();
        wire::parse_user(&mut response.body).map_err(|m| self.malformed(&call, status, m))
    }

    /// `GET /ne/v1/sshUsers/availability`: 204 available, 400 taken or restricted.
    pub async fn availability(&self, username: &str) -> Result<Availability, EquinixError> {
        let call = Call::get(format!(
            "{USERS}/availability?username={}",
            encode_query(username)
        ));
        let response = self.execute(&call).await?;
        match response.status {
            s if s.is_success() => Ok(Availability::Available),
            StatusCode::BAD_REQUEST => Ok(Availability::Unavailable(self.problems(&response))),
            _ => Err(self.api_error(&call, &response)),
        }
    }

    /// `POST /ne/v1/sshUsers`: the new user's uuid, from the body or the `Location` header.
    pub async fn create(&self, user: &NewUser) -> Result<String, EquinixError> {
        segment("device uuid", &user.device_uuid)?;
        let body = wire::create_request(&user.username, &user.password, &user.device_uuid);
        let call = Call::write(Method::POST, USERS.to_owned(), body);
        let mut response = self
            .expect_success(&call)
            .await
            .map_err(|e| redact::error(e, std::slice::from_ref(&user.password)))?;
        let status = response.status.as_u16();
        let from_body =
            wire::parse_created(&mut response.body).map_err(|m| self.malformed(&call, status, m));
        match from_body {
            Ok(Some(uuid)) => Ok(uuid),
            Ok(None) | Err(_) => location_uuid(&response.headers).ok_or_else(|| {
                self.malformed(
                    &call,
                    status,
                    wire::Malformed("no uuid in the body or the Location header".into()),
                )
            }),
        }
    }

    /// `PUT /ne/v1/sshUsers/{uuid}` with the new password.
    pub async fn set_password(&self, uuid: &str, password: &Secret) -> Result<(), EquinixError> {
        let target = format!("{USERS}/{}", segment("user uuid", uuid)?);
        let call = Call::write(Method::PUT, target, wire::update_request(password));
        self.expect_success(&call)
            .await
            .map(drop)
            .map_err(|e| redact::error(e, std::slice::from_ref(password)))
    }

    /// `POST /ne/v1/sshUsers/{user}/devices/{device}`.
    pub async fn attach(&self, user_uuid: &str, device_uuid: &str) -> Result<(), EquinixError> {
        let target = association(user_uuid, device_uuid)?;
        self.association(Method::POST, target).await.map(drop)
    }

    /// `DELETE /ne/v1/sshUsers/{user}/devices/{device}`; the user goes with its last device.
    pub async fn detach(
        &self,
        user_uuid: &str,
        device_uuid: &str,
    ) -> Result<Dissociation, EquinixError> {
        let target = association(user_uuid, device_uuid)?;
        let (call, mut response) = self.association(Method::DELETE, target).await?;
        if response.body.iter().all(u8::is_ascii_whitespace) {
            // A success without the two booleans: the association is gone, the user unknown.
            return Ok(Dissociation {
                user_deleted: false,
                association_deleted: true,
            });
        }
        let status = response.status.as_u16();
        wire::parse_dissociation(&mut response.body).map_err(|m| self.malformed(&call, status, m))
    }

    /// The association calls declare no body (a schema-strict server refuses one), yet the
    /// live API is known to want `{}` with its JSON content type. Both are honoured: the call
    /// goes out without a body, and once more with `{}` if the refusal is about the body.
    async fn association(
        &self,
        method: Method,
        target: String,
    ) -> Result<(Call, HttpResponse), EquinixError> {
        let bare = Call::write(method.clone(), target.clone(), Vec::new());
        let response = self.execute(&bare).await?;
        if response.status.is_success() {
            return Ok((bare, response));
        }
        if !refuses_the_body(&response) {
            return Err(self.api_error(&bare, &response));
        }
        let with_body = Call::write(method, target, b"{}".to_vec());
        let response = self.expect_success(&with_body).await?;
        Ok((with_body, response))
    }

    async fn expect_success(&self, call: &Call) -> Result<HttpResponse, EquinixError> {
        let response = self.execute(call).await?;
        if response.status.is_success() {
            Ok(response)
        } else {
            Err(self.api_error(call, &response))
        }
    }

    /// Sends `call` until it has an answer worth returning: renews the token once on 401,
    /// waits out 429s, retries 5xx and transport failures when the call is idempotent.
    async fn execute(&self, call: &Call) -> Result<HttpResponse, EquinixError> {
        let span =
            tracing::debug_span!("equinix", method = call.method_name(), target = %call.target);
        self.execute_traced(call).instrument(span).await
    }

    async fn execute_traced(&self, call: &Call) -> Result<HttpResponse, EquinixError> {
        let mut bearer = self.tokens.bearer().await?;
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            let response = match self.send_once(call, &bearer).await {
                Ok(response) => response,
                Err(e) if self.may_retry_transport(call, &e, attempt) => {
                    self.wait_to_retry(call, attempt, None, &e).await?;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(self.http_error(call, e)),
            };
            let status = response.status;
            tracing::debug!(status = status.as_u16(), "answered");
            if status == StatusCode::UNAUTHORIZED {
                if renewed {
                    return Err(self.unauthorized(call, &response, RefusedToken::Renewed));
                }
                renewed = true;
                bearer = self.renew(&bearer, call, &response).await?;
                continue;
            }
            let asked = retry_after(&response.headers);
            if let Some(e) = self.wait_too_long(call, status, asked) {
                return Err(e);
            }
            if self.may_retry_status(call, status, asked, attempt) {
                self.wait_to_retry(call, attempt, asked, &status).await?;
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    /// A throttled or failed call whose `Retry-After` asks for more than the longest wait
    /// fails at once, saying so, instead of as a bare status.
    fn wait_too_long(
        &self,
        call: &Call,
        status: StatusCode,
        asked: Option<Duration>,
    ) -> Option<EquinixError> {
        let asked = asked.filter(|a| !self.policy.backoff.accepts(Some(*a)))?;
        let throttled = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        throttled.then(|| EquinixError::WaitTooLong {
            method: call.method_name(),
            url: self.url(call),
            status: status.as_u16(),
            asked_secs: asked.as_secs(),
            max_secs: self.policy.backoff.max.as_secs(),
        })
    }

    /// The backoff before retry `attempt + 1`, cut short by a stop request.
    async fn wait_to_retry(
        &self,
        call: &Call,
        attempt: u32,
        asked: Option<Duration>,
        cause: &(dyn std::fmt::Display + Sync),
    ) -> Result<(), EquinixError> {
        let wait = self.policy.backoff.delay(attempt, asked);
        tracing::debug!(attempt, ?wait, %cause, "retrying");
        match pause(wait, &self.policy.stop).await {
            Paused::Elapsed => Ok(()),
            Paused::Stopped => Err(EquinixError::Interrupted {
                method: call.method_name(),
                url: self.url(call),
            }),
        }
    }

    async fn renew(
        &self,
        stale: &Bearer,
        call: &Call,
        response: &HttpResponse,
    ) -> Result<Bearer, EquinixError> {
        match self.tokens.renew(stale).await {
            Ok(bearer) => Ok(bearer),
            Err(TokenError::StaticTokenRefused) => {
                Err(self.unauthorized(call, response, RefusedToken::Ready))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn may_retry_transport(&self, call: &Call, e: &HttpError, attempt: u32) -> bool {
        let transient = e.is_transient() || matches!(e, HttpError::Timeout(_));
        call.idempotent && transient && attempt < self.policy.backoff.retries
    }

    fn may_retry_status(
        &self,
        call: &Call,
        status: StatusCode,
        asked: Option<Duration>,
        attempt: u32,
    ) -> bool {
        let retryable = status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && call.idempotent);
        retryable && attempt < self.policy.backoff.retries && self.policy.backoff.accepts(asked)
    }

    async fn send_once(&self, call: &Call, bearer: &Bearer) -> Result<HttpResponse, HttpError> {
        if call.write {
            if let Some(limiter) = &self.policy.write_limiter {
                limiter
                    .until_ready_with_jitter(Jitter::up_to(Duration::from_millis(50)))
                    .await;
            }
        }
        let request = self.build(call, bearer)?;
        self.http.send(request).await
    }

    fn build(&self, call: &Call, bearer: &Bearer) -> Result<Request<Full<Bytes>>, HttpError> {
        let authorization = bearer
            .header_value()
            .map_err(|_| HttpError::Protocol("the token is not a valid header value".into()))?;
        let body = call.body.clone().map(Bytes::from).unwrap_or_default();
        Request::builder()
            .method(call.method.clone())
            .uri(self.url(call))
            .header(header::AUTHORIZATION, authorization)
            // The API wants a JSON content type on every call, GETs included.
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(body))
            .map_err(|e| HttpError::Protocol(format!("cannot build request: {e}")))
    }

    fn url(&self, call: &Call) -> String {
        format!("{}{}", self.base, call.target)
    }

    fn http_error(&self, call: &Call, source: HttpError) -> EquinixError {
        EquinixError::Http {
            method: call.method_name(),
            url: self.url(call),
            source,
        }
    }

    fn api_error(&self, call: &Call, response: &HttpResponse) -> EquinixError {
        EquinixError::Api {
            method: call.method_name(),
            url: self.url(call),
            status: response.status.as_u16(),
            problems: self.problems(response),
        }
    }

    /// The API's problems in `response`, without the secrets it may echo.
    fn problems(&self, response: &HttpResponse) -> Vec<ApiProblem> {
        redact::problems(wire::parse_problems(&response.body), &self.tokens.secrets())
    }

    fn unauthorized(
        &self,
        call: &Call,
        response: &HttpResponse,
        token: RefusedToken,
    ) -> EquinixError {
        EquinixError::Unauthorized {
            method: call.method_name(),
            url: self.url(call),
            problems: self.problems(response),
            token,
        }
    }

    fn malformed(&self, call: &Call, status: u16, m: wire::Malformed) -> EquinixError {
        EquinixError::Malformed {
            method: call.method_name(),
            url: self.url(call),
            status,
            reason: redact::text(&m.0, &self.tokens.secrets()),
        }
    }
}

/// A 415, or a 400 that names none of the API's resource codes: the body, not the request,
/// may be what was refused.
fn refuses_the_body(response: &HttpResponse) -> bool {
    let about_resources = |code: &str| {
        code.starts_with("SSH_")
            || code.ends_with("_NOT_FOUND")
            || code.starts_with("VIRTUAL_DEVICE")
    };
    match response.status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => true,
        StatusCode::BAD_REQUEST => !wire::parse_problems(&response.body)
            .iter()
            .filter_map(|p| p.code.as_deref())
            .any(about_resources),
        _ => false,
    }
}

/// The query of a listing: only the parameters the spec names, only those that are set.
fn list_query(filter: &ListFilter, offset: u64, limit: u64) -> String {
    let mut query = format!("offset={offset}&limit={limit}");
    if let Some(username) = &filter.username {
        query.push_str(&format!("&username={}", encode_query(username)));
    }
    if let Some(device) = &filter.device_uuid {
        query.push_str(&format!("&virtualDeviceUuid={}", encode_query(device)));
    }
    query.push_str(&format!("&verbose={}", filter.verbose));
    if let Some(account) = &filter.account_ucm_id {
        query.push_str(&format!("&accountUcmId={}", encode_query(account)));
    }
    query
}

fn association(user_uuid: &str, device_uuid: &str) -> Result<String, EquinixError> {
    Ok(format!(
        "{USERS}/{}/devices/{}",
        segment("user uuid", user_uuid)?,
        segment("device uuid", device_uuid)?
    ))
}

/// An id that goes into a path as is: unreserved characters only, so that nothing the user
/// typed can change which resource is addressed.
fn segment<'a>(what: &'static str, value: &'a str) -> Result<&'a str, EquinixError> {
    let invalid = |reason| EquinixError::InvalidInput {
        what,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || value.len() > 128 {
        return Err(invalid("must be 1 to 128 characters"));
    }
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
    if !value.bytes().all(unreserved) || value == "." || value == ".." {
        return Err(invalid(
            "only letters, digits, '-', '.', '_' and '~' are allowed",
        ));
    }
    Ok(value)
}

/// Percent-encodes everything but unreserved characters.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The last path segment of a `Location` header (absolute or relative URL).
fn location_uuid(headers: &HeaderMap) -> Option<String> {
    let location = headers.get(header::LOCATION)?.to_str().ok()?;
    let path = location.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    segment("uuid", last).ok().map(str::to_owned)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn list_queries_use_the_spec_names() {
        let filter = ListFilter {
            username: Some("a b&c".into()),
            device_uuid: Some("d-1".into()),
            verbose: true,
            account_ucm_id: Some("133598".into()),
        };
        assert_eq!(
            list_query(&filter, 200, 100),
            "offset=200&limit=100&username=a%20b%26c&virtualDeviceUuid=d-1&verbose=true&accountUcmId=133598"
        );
        assert_eq!(
            list_query(&ListFilter::default(), 0, 20),
            "offset=0&limit=20&verbose=false"
        );
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert!(segment("user uuid", "d8fe1db2-75a1-436e").is_ok());
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e"] {
            assert!(segment("user uuid", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uuid_from_a_location_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LOCATION,
            "https://api.equinix.com/ne/v1/sshUsers/12828472-e6e9/"
                .parse()
                .unwrap(),
        );
        assert_eq!(location_uuid(&headers).as_deref(), Some("12828472-e6e9"));
        headers.insert(header::LOCATION, "/ne/v1/sshUsers/abc?x=1".parse().unwrap());
        assert_eq!(location_uuid(&headers).as_deref(), Some("abc"));
    }
}
