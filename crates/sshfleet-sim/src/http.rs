//! The simulator's hand-rolled HTTP/1.1 server side: request heads through httparse,
//! Content-Length bodies (capped), keep-alive, and responses as plain byte buffers so that
//! faults can cut them anywhere.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest request body kept; longer bodies are discarded and reported as too large.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Longer bodies than this are not even read: the connection closes after the answer.
const MAX_DISCARD: usize = 8 * 1024 * 1024;
const MAX_HEADERS: usize = 64;

/// A parsed request. Header names are lowercase.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// The request-target exactly as sent (path and query).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    pub keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Full(Bytes),
    /// Content-Length was above [`MAX_BODY`]; the bytes were discarded.
    TooLarge,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub(crate) fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The peer went away or the socket failed.
    Disconnected,
    /// Answer with this status and close.
    Reject(u16),
}

impl From<io::Error> for HttpError {
    fn from(_: io::Error) -> HttpError {
        HttpError::Disconnected
    }
}

/// A request head copied out of the read buffer.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    minor_version: u8,
    headers: Vec<(String, String)>,
}

/// Reads the next request, `Ok(None)` on a clean end of stream between requests.
/// Bytes after the request stay in `buf` for the next call (pipelining).
pub(crate) async fn read_request<S>(
    io: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<Request>, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = loop {
        if let Some((head, len)) = parse_head(buf)? {
            buf.advance(len);
            break head;
        }
        if io.read_buf(buf).await? == 0 {
            return match buf.is_empty() {
                true => Ok(None),
                false => Err(HttpError::Disconnected),
            };
        }
    };
    let length = content_length(&head)?;
    if head
        .headers
        .iter()
        .any(|(n, v)| n == "expect" && v.eq_ignore_ascii_case("100-continue"))
        && length <= MAX_BODY
        && buf.len() < length
    {
        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
    }
    let mut keep_alive = wants_keep_alive(&head);
    let body = if length <= MAX_BODY {
        Body::Full(read_body(io, buf, length).await?)
    } else {
        keep_alive = keep_alive && discard_body(io, buf, length).await?;
        Body::TooLarge
    };
    Ok(Some(Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        body,
        keep_alive,
    }))
}

/// The head at the start of `buf` and its length, `None` while incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HttpError::Reject(431))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::Reject(431)),
        Err(_) => return Err(HttpError::Reject(400)),
    };
    if len > MAX_HEAD {
        return Err(HttpError::Reject(431));
    }
    let headers = req
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let head = Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        minor_version: req.version.unwrap_or(1),
        headers,
    };
    Ok(Some((head, len)))
}

/// The declared body length; chunked bodies are refused (411), conflicting lengths are a 400.
fn content_length(head: &Head) -> Result<usize, HttpError> {
    if head.headers.iter().any(|(n, _)| n == "transfer-encoding") {
        return Err(HttpError::Reject(411));
    }
    let mut lengths = head.headers.iter().filter(|(n, _)| n == "content-length");
    let length = match lengths.next() {
        None => return Ok(0),
        Some((_, v)) => v.parse::<usize>().map_err(|_| HttpError::Reject(400))?,
    };
    if lengths.any(|(_, v)| v.parse::<usize>().ok() != Some(length)) {
        return Err(HttpError::Reject(400));
    }
    Ok(length)
}

/// Whether the connection stays open after a response (`Connection:` in its head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persist {
    KeepAlive,
    Close,
}

impl Request {
    /// What the request asked of its connection.
    pub(crate) fn persist(&self) -> Persist {
        if self.keep_alive {
            Persist::KeepAlive
        } else {
            Persist::Close
        }
    }
}

fn wants_keep_alive(head: &Head) -> bool {
    let connection = head
        .headers
        .iter()
        .filter(|(n, _)| n == "connection")
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    match head.minor_version {
        0 => connection.iter().any(|t| t == "keep-alive"),
        _ => !connection.iter().any(|t| t == "close"),
    }
}

async fn read_body<S>(io: &mut S, buf: &mut BytesMut, length: usize) -> io::Result<Bytes>
where
    S: AsyncRead + Unpin,
{
    while buf.len() < length {
        if io.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.split_to(length).freeze())
}

/// Drops `length` body bytes; `false` when the body is too long to bother (close instead).
async fn discard_body<S>(io: &mut S, buf: &mut BytesMut, length: usize) -> io::Result<bool>
where
    S: AsyncRead + Unpin,
{
    if length > MAX_DISCARD {
        buf.clear();
        return Ok(false);
    }
    let mut left = length;
    loop {
        let take = left.min(buf.len());
        buf.advance(take);
        left -= take;
        if left == 0 {
            return Ok(true);
        }
        if io.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A whole response, rendered on demand.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// Send the head and half the body, then reset the connection (a fault).
    pub reset_midway: bool,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
            reset_midway: false,
        }
    }

    pub(crate) fn json(status: u16, body: impl Into<Bytes>) -> Response {
        Response::new(status, "application/json", body)
    }

    /// A short plain-text answer for HTTP-level errors (404, 405, 400, ...).
    pub(crate) fn plain_status(status: u16) -> Response {
        let body = format!("{status} {}\n", reason(status));
        Response::new(status, "text/plain", body)
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Status line and headers, including Content-Length and Connection.
    pub(crate) fn head_bytes(&self, persist: Persist) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        self.write_head(&mut out, persist);
        out
    }

    fn write_head(&self, out: &mut Vec<u8>, persist: Persist) {
        use std::io::Write as _;
        // Writing into a Vec cannot fail.
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        // 204 and 304 carry no body and, by RFC 9110, no Content-Length either.
        if !matches!(self.status, 204 | 304) {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        let connection = match persist {
            Persist::KeepAlive => "keep-alive",
            Persist::Close => "close",
        };
        let _ = write!(out, "Connection: {connection}\r\n\r\n");
    }

    /// Head and body in one write, so that a response is one segment as from a camera's
    /// web server (two writes cost a second packet and wake-up per response).
    pub(crate) async fn write_to<S>(&self, io: &mut S, persist: Persist) -> io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        let mut out = self.head_bytes(persist);
        out.extend_from_slice(&self.body);
        io.write_all(&out).await?;
        io.flush().await
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(raw: &str) -> Head {
        match parse_head(raw.as_bytes()) {
            Ok(Some((head, len))) => {
                assert_eq!(len, raw.find("\r\n\r\n").map_or(0, |i| i + 4));
                head
            }
            other => panic!("no head: {other:?}"),
        }
    }

    #[test]
    fn parses_a_request_head() {
        let head = head_of(
            "POST /axis-cgi/ssh.cgi?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/axis-cgi/ssh.cgi?x=1");
        assert_eq!(
            head.headers[1],
            ("content-length".to_owned(), "2".to_owned())
        );
        assert_eq!(content_length(&head).ok(), Some(2));
        assert!(wants_keep_alive(&head));
    }

    #[test]
    fn partial_heads_wait_and_garbage_is_rejected() {
        assert!(matches!(parse_head(b"GET / HTTP/1.1\r\nHo"), Ok(None)));
        assert!(matches!(
            parse_head(b"\x01\x02 nonsense\r\n\r\n"),
            Err(HttpError::Reject(400))
        ));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse_head(huge.as_bytes()),
            Err(HttpError::Reject(431))
        ));
    }

    #[test]
    fn keep_alive_follows_version_and_connection_header() {
        assert!(!wants_keep_alive(&head_of(
            "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"
        )));
        assert!(!wants_keep_alive(&head_of("GET / HTTP/1.0\r\n\r\n")));
        assert!(wants_keep_alive(&head_of(
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )));
    }

    #[test]
    fn chunked_and_conflicting_lengths_are_refused() {
        let chunked = head_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(
            content_length(&chunked),
            Err(HttpError::Reject(411))
        ));
        let twice = head_of("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert!(matches!(
            content_length(&twice),
            Err(HttpError::Reject(400))
        ));
    }

    #[tokio::test]
    async fn reads_pipelined_requests_and_oversized_bodies(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let big = "x".repeat(MAX_BODY + 1);
        let raw = format!(
            "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}\
             POST /b HTTP/1.1\r\nContent-Length: {}\r\n\r\n{big}\
             GET /c HTTP/1.1\r\nConnection: close\r\n\r\n",
            big.len()
        );
        client.write_all(raw.as_bytes()).await?;
        drop(client);
        let mut buf = BytesMut::new();
        let a = read_request(&mut server, &mut buf)
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("a")?;
        assert_eq!(
            (a.path(), &a.body),
            ("/a", &Body::Full(Bytes::from_static(b"{}")))
        );
        let b = read_request(&mut server, &mut buf)
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("b")?;
        assert_eq!(
            (b.path(), &b.body, b.keep_alive),
            ("/b", &Body::TooLarge, true)
        );
        let c = read_request(&mut server, &mut buf)
            .await
            .map_err(|e| format!("{e:?}"))?
            .ok_or("c")?;
        assert_eq!((c.target.as_str(), c.keep_alive), ("/c", false));
        assert!(matches!(
            read_request(&mut server, &mut buf).await,
            Ok(None)
        ));
        Ok(())
    }

    #[test]
    fn renders_a_response_head() {
        let r = Response::json(200, "{}").with_header("X-A", "b");
        let head = String::from_utf8_lossy(&r.head_bytes(Persist::Close)).into_owned();
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-A: b\r\n\
             Content-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }
}
