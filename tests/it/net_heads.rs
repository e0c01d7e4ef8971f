//! Response heads: long ones that real servers send are read, whether from a camera or the
//! Equinix API (one HTTP layer serves both); heads past the caps are protocol errors, at once.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use sshfleet_net::{ClientSettings, HttpClient, HttpError, HttpResponse, MAX_HEAD};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Serves `response` once to the first connection, after reading its request head, then
/// keeps the connection open so that a client waiting for more would wait for its deadline.
async fn serve_once(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        // The client may hang up mid-write once it has seen enough.
        let _ = tcp.write_all(&response).await;
        let _ = tcp.read(&mut buf).await;
    });
    url
}

async fn get(response: Vec<u8>) -> Result<HttpResponse, HttpError> {
    let url = serve_once(response).await;
    let client = HttpClient::new(&ClientSettings {
        // Far beyond the hang guard below: an answer in time proves nobody waited for it.
        timeout: Duration::from_secs(3600),
        ..ClientSettings::default()
    })
    .expect("client");
    let request = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    tokio::time::timeout(Duration::from_secs(30), client.send(request))
        .await
        .expect("answered without waiting for the request deadline")
}

fn response(status: &str, headers: &[(String, String)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

#[tokio::test]
async fn a_200_with_a_10_kib_header_is_read() {
    let policy = "default-src 'self';".repeat(10 * 1024 / 19 + 1);
    let head = [("Content-Security-Policy".to_owned(), policy.clone())];
    let answer = get(response("200 OK", &head, "{}")).await.expect("read");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-security-policy"], policy.as_str());
    assert_eq!(answer.body, b"{}");
}

#[tokio::test]
async fn a_401_with_a_900_byte_nonce_and_several_challenges_is_read() {
    let nonce = "a1".repeat(450);
    let challenges = [
        format!(r#"Digest realm="AXIS_1", nonce="{nonce}", algorithm=SHA-256, qop="auth""#),
        format!(r#"Digest realm="AXIS_1", nonce="{nonce}", algorithm=MD5, qop="auth""#),
        r#"Basic realm="AXIS_1""#.to_owned(),
    ];
    let head: Vec<_> = challenges
        .iter()
        .map(|c| ("WWW-Authenticate".to_owned(), c.clone()))
        .collect();
    let answer = get(response("401 Unauthorized", &head, ""))
        .await
        .expect("read");
    assert_eq!(answer.status, 401);
    let seen: Vec<_> = answer.headers.get_all("www-authenticate").iter().collect();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].to_str().expect("ascii").contains(&nonce));
}

#[tokio::test]
async fn a_hundred_header_lines_are_read() {
    // Content-Length is one of them.
    let head: Vec<_> = (1..sshfleet_net::MAX_HEADER_LINES)
        .map(|i| (format!("X-Extra-{i}"), "v".to_owned()))
        .collect();
    let answer = get(response("200 OK", &head, "ok")).await.expect("read");
    assert_eq!(answer.headers.len(), sshfleet_net::MAX_HEADER_LINES);
}

#[tokio::test]
async fn a_100_kib_head_is_a_protocol_error() {
    let head = [("Set-Cookie".to_owned(), "c".repeat(MAX_HEAD + 36 * 1024))];
    let result = get(response("200 OK", &head, "{}")).await;
    assert!(matches!(result, Err(HttpError::Protocol(_))), "{result:?}");
}

#[tokio::test]
async fn ten_thousand_headers_are_a_protocol_error() {
    let head: Vec<_> = (0..10_000)
        .map(|i| (format!("X-{i}"), String::new()))
        .collect();
    let result = get(response("200 OK", &head, "{}")).await;
    assert!(matches!(result, Err(HttpError::Protocol(_))), "{result:?}");
}
