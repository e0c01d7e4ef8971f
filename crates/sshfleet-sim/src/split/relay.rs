//! The supervisor's control API, answered from the workers' own: `/devices` joins their
//! arrays in fleet order, `/devices/{index}` asks the worker serving that camera.

use std::io;
use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::super::control::DeviceSource;
use super::super::http::Response;
use super::wire::Announcement;

/// Bound on one exchange with a worker (a 15,000-camera array is about 1.5 MB on loopback).
const FETCH_LIMIT: Duration = Duration::from_secs(30);

/// Which worker's control API serves which cameras.
pub(super) struct Relay {
    routes: Vec<Route>,
}

struct Route {
    devices: Range<usize>,
    /// `127.0.0.1:PORT` of the worker's control API.
    authority: String,
}

impl Relay {
    pub(super) fn new(parts: &[Range<usize>], announced: &[Announcement]) -> io::Result<Relay> {
        let routes = parts
            .iter()
            .zip(announced)
            .map(|(devices, a)| {
                let url = a.control.as_deref().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "a worker serves no control API")
                })?;
                Ok(Route {
                    devices: devices.clone(),
                    authority: url.trim_start_matches("http://").to_owned(),
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(Relay { routes })
    }
}

impl DeviceSource for Relay {
    async fn all(&self) -> Response {
        // Ask every worker at once; join in fleet order.
        let asks: Vec<_> = self
            .routes
            .iter()
            .map(|r| tokio::spawn(fetch(r.authority.clone(), "/devices".to_owned())))
            .collect();
        let mut arrays = Vec::with_capacity(asks.len());
        for ask in asks {
            match ask.await {
                Ok(Ok((200, body))) => arrays.push(body),
                _ => return Response::plain_status(502),
            }
        }
        match join_arrays(&arrays) {
            Some(joined) => Response::json(200, joined),
            None => Response::plain_status(502),
        }
    }

    async fn one(&self, index: usize) -> Response {
        let Some(route) = self.routes.iter().find(|r| r.devices.contains(&index)) else {
            return Response::plain_status(404);
        };
        let path = format!("/devices/{}", index - route.devices.start);
        match fetch(route.authority.clone(), path).await {
            Ok((200, body)) => Response::json(200, body),
            Ok((404, _)) => Response::plain_status(404),
            _ => Response::plain_status(502),
        }
    }
}

/// One GET over a fresh connection, bounded in time: the status and the whole body.
async fn fetch(authority: String, path: String) -> io::Result<(u16, Bytes)> {
    let exchange = async {
        let mut tcp = TcpStream::connect(&authority).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        Ok::<_, io::Error>(raw)
    };
    let raw = tokio::time::timeout(FETCH_LIMIT, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "a worker's control API is slow"))??;
    parse_response(&raw)
}

/// The status and body of a `Connection: close` response, checked against Content-Length so
/// that a worker dying mid-answer is not taken for a short answer.
fn parse_response(raw: &[u8]) -> io::Result<(u16, Bytes)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed worker response");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| bad())?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body = &raw[head_end + 4..];
    match (status, length) {
        (Some(status), Some(length)) if length == body.len() => {
            Ok((status, Bytes::copy_from_slice(body)))
        }
        _ => Err(bad()),
    }
}

/// JSON arrays joined into one without parsing their elements; `None` if one is not an array.
fn join_arrays(arrays: &[Bytes]) -> Option<Vec<u8>> {
    let mut joined = Vec::with_capacity(arrays.iter().map(Bytes::len).sum::<usize>() + 2);
    joined.push(b'[');
    for array in arrays {
        let inner = array
            .trim_ascii()
            .strip_prefix(b"[")?
            .strip_suffix(b"]")?
            .trim_ascii();
        if inner.is_empty() {
            continue;
        }
        if joined.len() > 1 {
            joined.push(b',');
        }
        joined.extend_from_slice(inner);
    }
    joined.push(b']');
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_join_in_order_and_skip_empty_ones() {
        let arrays = [
            Bytes::from_static(b"[{\"a\":1},{\"a\":2}]"),
            Bytes::from_static(b" [] "),
            Bytes::from_static(b"[{\"a\":3}]\n"),
        ];
        let joined = join_arrays(&arrays).unwrap_or_default();
        assert_eq!(joined, b"[{\"a\":1},{\"a\":2},{\"a\":3}]");
        assert_eq!(join_arrays(&[Bytes::from_static(b"{}")]), None);
        assert_eq!(join_arrays(&[]).unwrap_or_default(), b"[]");
    }

    #[test]
    fn a_cut_response_is_not_taken_for_a_short_one() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]";
        let parsed = parse_response(whole).ok();
        assert_eq!(parsed, Some((200, Bytes::from_static(b"[]"))));
        let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[{\"a\"";
        assert!(parse_response(cut).is_err());
    }
}
