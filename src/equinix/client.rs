//! The `sshUsers` operations over the shared HTTP client: Bearer tokens with at most one
//! renewal per call, 429 backoff (`Retry-After` honoured), 5xx and transport retries for
//! idempotent calls only, and the write rate limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Jitter};
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;

use super::errors::{ApiProblem, EquinixError, TokenError};
use super::token::{Bearer, TokenSource};
use super::{redact, wire, Availability, Dissociation, ListFilter, Page, SshUser};
use crate::net::{HttpClient, HttpError, HttpResponse};
use crate::secret::Secret;

pub const USER_AGENT: &str = concat!("sshfleet/", env!("CARGO_PKG_VERSION"));

const USERS: &str = "/ne/v1/sshUsers";

/// Retries and their waits: exponential from `base` with jitter, capped at `max`.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// Extra tries after a 429, a 5xx or a transport failure (the last two: idempotent only).
    pub retries: u32,
    pub base: Duration,
    /// Longest wait; a `Retry-After` beyond it is not waited for (the call fails instead).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            retries: 4,
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt + 1`: what the server asked for (plus up to
    /// 10 % so that clients told the same instant do not return together), else
    /// `base * 2^attempt`, half fixed and half random.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked + jitter(asked / 10);
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        exp / 2 + jitter(exp / 2)
    }

    /// Whether a server's `Retry-After` is short enough to wait for.
    fn accepts(&self, retry_after: Option<Duration>) -> bool {
        retry_after.map_or(true, |asked| asked <= self.max)
    }
}

/// A uniformly random duration in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    let nanos = max.as_nanos().min(u128::from(u64::MAX)) as u64;
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(fastrand::u64(..nanos))
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(text)?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_whitespace().skip(1);
    let day: i64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Howard Hinnant's civil-to-days algorithm (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How calls behave; shared by every call of a run.
#[derive(Clone, Debug, Default)]
pub struct ClientPolicy {
    pub backoff: Backoff,
    /// Every write waits here first (required for writes by the CLI).
    pub write_limiter: Option<Arc<DefaultDirectRateLimiter>>,
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
    pub async fn list_page(
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
        let mut bearer = self.tokens.bearer().await?;
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            let response = match self.send_once(call, &bearer).await {
                Ok(response) => response,
                Err(e) if self.may_retry_transport(call, &e, attempt) => {
                    tokio::time::sleep(self.policy.backoff.delay(attempt, None)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(self.http_error(call, e)),
            };
            let status = response.status;
            if status == StatusCode::UNAUTHORIZED {
                if renewed {
                    return Err(self.unauthorized(call, &response, true));
                }
                renewed = true;
                bearer = self.renew(&bearer, call, &response).await?;
                continue;
            }
            let asked = retry_after(&response.headers);
            if self.may_retry_status(call, status, asked, attempt) {
                tokio::time::sleep(self.policy.backoff.delay(attempt, asked)).await;
                attempt += 1;
                continue;
            }
            return Ok(response);
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
            Err(TokenError::StaticTokenRefused) => Err(self.unauthorized(call, response, false)),
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

    fn unauthorized(&self, call: &Call, response: &HttpResponse, renewed: bool) -> EquinixError {
        EquinixError::Unauthorized {
            method: call.method_name(),
            url: self.url(call),
            problems: self.problems(response),
            renewed,
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

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_the_server() {
        let backoff = Backoff::default();
        for attempt in 0..6 {
            let d = backoff.delay(attempt, None);
            let full = (backoff.base * (1 << attempt)).min(backoff.max);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        let asked = Duration::from_secs(3);
        let d = backoff.delay(0, Some(asked));
        assert!(d >= asked && d <= asked + asked / 10);
        assert!(!backoff.accepts(Some(Duration::from_secs(3600))));
    }
}
