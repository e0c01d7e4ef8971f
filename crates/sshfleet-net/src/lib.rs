//! The shared HTTP layer: one pooled hyper-util client for the whole run, rustls trust modes,
//! a whole-request deadline, a response size cap, and Digest/Basic authentication.

pub mod auth;
pub mod breaker;
pub mod connector;
pub mod retry;
pub mod tls;

use std::error::Error as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use connector::{ConnectError, Connector, PeerCertificate};
use tls::{Fingerprint, TlsConfigs, TlsSetupError, TrustSettings};

/// Default cap on a response body: VAPIX answers are a few hundred bytes.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// The largest response head (status line and headers) read. Real heads are a few hundred
/// bytes, but a long `Content-Security-Policy`, several cookies or challenges, or a long
/// Digest nonce can take a few KiB; anything past this is refused as a protocol error.
pub const MAX_HEAD: usize = 64 * 1024;

/// Header lines read at most in one head. This is hyper's default, which parses headers on
/// the stack; setting `http1_max_headers` moves them to a heap allocation per response.
pub const MAX_HEADER_LINES: usize = 100;

/// Settings for the run's one HTTP client.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Whole-request deadline: connect, TLS, request, response head and body.
    pub timeout: Duration,
    pub body_limit: usize,
    pub trust: TrustSettings,
    /// Idle pooled connections kept per host: 1 for devices (one request at a time each),
    /// more for an API that is asked several things at once.
    pub max_idle_per_host: usize,
}

impl Default for ClientSettings {
    fn default() -> ClientSettings {
        ClientSettings {
            timeout: Duration::from_secs(15),
            body_limit: DEFAULT_BODY_LIMIT,
            trust: TrustSettings::default(),
            max_idle_per_host: 1,
        }
    }
}

/// Why a request produced no usable response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("connection refused")]
    Refused,
    #[error("cannot resolve host {0}")]
    Dns(String),
    #[error("host unreachable: {0}")]
    Unreachable(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("connection closed or reset by the device: {0}")]
    Reset(String),
    #[error("response body larger than {0} bytes")]
    Oversized(usize),
    #[error("malformed HTTP response: {0}")]
    Protocol(String),
}

impl HttpError {
    /// Failures where the same request may succeed a moment later.
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Reset(_))
    }
}

/// A complete, size-capped response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub peer: Option<Fingerprint>,
}

/// The run's pooled client. Cheap to share behind an `Arc`.
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
    body_limit: usize,
}

impl HttpClient {
    pub fn new(settings: &ClientSettings) -> Result<HttpClient, TlsSetupError> {
        let tls = Arc::new(TlsConfigs::new(&settings.trust)?);
        let connector = Connector::new(tls, settings.timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(settings.max_idle_per_host.max(1))
            // hyper's read buffer is also its head limit. An exact 2 KiB buffer refused
            // legitimate heads, so the buffer is adaptive: it starts at 8 KiB, doubles only
            // while reads fill it, shrinks back, and never exceeds `MAX_HEAD` (a head that
            // fills it is refused). Memory per connection stays bounded by that cap, and
            // connections are O(concurrency), not O(fleet).
            .http1_max_buf_size(MAX_HEAD)
            .build(connector);
        Ok(HttpClient {
            client,
            timeout: settings.timeout,
            body_limit: settings.body_limit,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends one request and reads the whole response within the deadline.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let deadline = self.timeout;
        tokio::time::timeout(deadline, self.exchange(request))
            .await
            .map_err(|_| HttpError::Timeout(deadline))?
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let response = self.client.request(request).await.map_err(classify)?;
        let peer = response.extensions().get::<PeerCertificate>().map(|p| p.0);
        let (parts, body) = response.into_parts();
        check_head(&parts)?;
        let body = read_capped(body, &parts.headers, self.body_limit).await?;
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            peer,
        })
    }
}

/// Refuses a head larger than `MAX_HEAD`. hyper stops reading a head once its buffer holds
/// `MAX_HEAD` bytes, but a single read may overshoot into the buffer's spare capacity (at most
/// as much again), so a head slightly larger can still parse: this makes the limit exact.
fn check_head(parts: &http::response::Parts) -> Result<(), HttpError> {
    // "HTTP/1.1 200 " plus the reason phrase and CRLF, then "name: value\r\n" per line.
    let status_line = 13 + parts.status.canonical_reason().map_or(0, str::len) + 2;
    let size = parts
        .headers
        .iter()
        .fold(status_line, |sum, (name, value)| {
            sum.saturating_add(name.as_str().len() + value.len() + 4)
        });
    if size > MAX_HEAD {
        return Err(HttpError::Protocol(format!(
            "response head larger than {MAX_HEAD} bytes"
        )));
    }
    check_encoding(&parts.headers)
}

/// Requests never send `Accept-Encoding`, so a body in any coding but `identity` was not
/// asked for: it is refused by name rather than parsed as garbage (or unpacked, unbounded).
fn check_encoding(headers: &HeaderMap) -> Result<(), HttpError> {
    let Some(coding) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let coding = String::from_utf8_lossy(coding.as_bytes());
    let coding = coding.trim();
    if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        return Ok(());
    }
    let shown: String = coding.chars().take(40).collect();
    Err(HttpError::Protocol(format!(
        "response body is Content-Encoding {shown}, which was not asked for"
    )))
}

/// Reads a body, refusing more than `limit` bytes (checked up front when the length is declared).
async fn read_capped(
    mut body: hyper::body::Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(HttpError::Oversized(limit));
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(512).min(limit as u64) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify_hyper(&e))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(HttpError::Oversized(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Maps the client's error to what happened on the wire, by type, never by message.
fn classify(e: hyper_util::client::legacy::Error) -> HttpError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<ConnectError>() {
            return from_connect(c);
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return classify_hyper(h);
        }
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return from_io(io);
        }
        source = s.source();
    }
    HttpError::Protocol(e.to_string())
}

fn classify_hyper(h: &hyper::Error) -> HttpError {
    if h.is_parse() || h.is_parse_status() {
        return HttpError::Protocol(h.to_string());
    }
    if let Some(io) = h.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        return from_io(io);
    }
    HttpError::Reset(h.to_string())
}

fn from_io(io: &io::Error) -> HttpError {
    match io.kind() {
        io::ErrorKind::ConnectionRefused => HttpError::Refused,
        io::ErrorKind::TimedOut => HttpError::Unreachable(io.to_string()),
        _ => HttpError::Reset(io.to_string()),
    }
}

fn from_connect(c: &ConnectError) -> HttpError {
    match c {
        ConnectError::Refused => HttpError::Refused,
        ConnectError::Dns(host) => HttpError::Dns(host.clone()),
        ConnectError::Unreachable(e) => HttpError::Unreachable(e.to_string()),
        ConnectError::Timeout(d) => HttpError::Timeout(*d),
        ConnectError::Tls(reason) => HttpError::Tls(reason.clone()),
        ConnectError::PinMismatch(_) => HttpError::Tls(c.to_string()),
        ConnectError::BadUri(reason) => HttpError::Protocol(reason.clone()),
    }
}
