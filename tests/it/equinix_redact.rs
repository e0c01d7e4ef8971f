//! An API that echoes what it was sent in its error bodies (the client secret, the token,
//! the new password): the binary's messages show `[redacted]` instead, and never the secret.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{code, run, stderr};

const CLIENT_SECRET: &str = "cs-9Qz7-wX\"y";
const READY_TOKEN: &str = "ready-token-4b1d7e";
const ISSUED_TOKEN: &str = "issued-token-c0ffee";
const PASSWORD: &str = "pw-Kx81!new";

/// Connections and requests per connection served at most.
const MAX_CONNECTIONS: usize = 16;
const MAX_REQUESTS: usize = 16;

/// A loopback API answering every request with 400 and a body that quotes the request's
/// `Authorization` header and body. With `issue`, the token request succeeds instead, with
/// `ISSUED_TOKEN`.
async fn echo_api(issue: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(tcp, issue));
        }
    });
    url
}

async fn serve(mut tcp: TcpStream, issue: bool) {
    let mut buf = Vec::new();
    for _ in 0..MAX_REQUESTS {
        let Some((head, body)) = read_request(&mut tcp, &mut buf).await else {
            return;
        };
        let token_request = head.starts_with("POST /oauth2/v1/token ");
        let (status, answer) = if token_request && issue {
            let grant = serde_json::json!({
                "access_token": ISSUED_TOKEN,
                "token_timeout": "3600",
                "token_type": "Bearer",
            });
            ("200 OK", grant.to_string())
        } else {
            let authorization = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or(l.strip_prefix("Authorization: "))
                })
                .unwrap_or("none");
            let message = format!("bad request (authorization {authorization}) body {body}");
            let problem = if token_request {
                serde_json::json!({ "error_code": "INVALID_CLIENT", "error_message": message })
            } else {
                serde_json::json!([{
                    "errorCode": "INVALID_REQUEST",
                    "errorMessage": message,
                    "property": body,
                    "moreInfo": authorization,
                }])
            };
            ("400 Bad Request", problem.to_string())
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if tcp.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One request's head and body (by Content-Length); `None` when the client is gone.
async fn read_request(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String)> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tcp.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < end + length {
        let n = tcp.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
    buf.drain(..end + length);
    Some((head, body))
}

async fn ssh_users(url: &str, op: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut argv: Vec<String> = ["equinix", "ssh-users"]
        .iter()
        .chain(op)
        .map(|s| s.to_string())
        .collect();
    argv.extend([
        "--endpoint".to_owned(),
        url.to_owned(),
        "--retries".to_owned(),
        "0".to_owned(),
    ]);
    run(&argv, env).await
}

/// Whatever the binary printed, with the secret nowhere (neither as is nor as quoted from a
/// JSON body) and `[redacted]` where it was.
fn assert_redacted(output: &std::process::Output, secret: &str) {
    let err = stderr(output);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(err.contains("[redacted]"), "{err}");
    let quoted = serde_json::to_string(secret).expect("a JSON string");
    for form in [secret, quoted.trim_matches('"')] {
        assert!(!err.contains(form), "the secret is on stderr: {err}");
        assert!(!out.contains(form), "the secret is on stdout: {out}");
    }
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_client_secret_is_redacted() {
    let url = echo_api(false).await;
    let env = [
        ("EQUINIX_API_CLIENTID", "client-1"),
        ("EQUINIX_API_CLIENTSECRET", CLIENT_SECRET),
    ];
    let output = ssh_users(&url, &["list"], &env).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    // The message is still the API's: its code and the client id are kept.
    assert!(
        stderr(&output).contains("INVALID_CLIENT"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("client-1"), "{}", stderr(&output));
    assert_redacted(&output, CLIENT_SECRET);
}

#[tokio::test]
async fn an_api_echoing_a_ready_token_is_redacted() {
    let url = echo_api(false).await;
    let output = ssh_users(&url, &["list"], &[("EQUINIX_API_TOKEN", READY_TOKEN)]).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(
        stderr(&output).contains("HTTP 400: INVALID_REQUEST"),
        "{}",
        stderr(&output)
    );
    assert_redacted(&output, READY_TOKEN);
}

#[tokio::test]
async fn an_api_echoing_an_issued_token_or_the_new_password_is_redacted() {
    let url = echo_api(true).await;
    let env = [
        ("EQUINIX_API_CLIENTID", "client-1"),
        ("EQUINIX_API_CLIENTSECRET", CLIENT_SECRET),
        ("NEW_PW", PASSWORD),
    ];
    let output = ssh_users(&url, &["get", "u-1"], &env).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert_redacted(&output, ISSUED_TOKEN);
    let writes: [(&[&str], &str); 2] = [
        (&["set-password", "u-1"], "PUT "),
        (
            &["create", "--username", "srt1", "--device", "d-1"],
            "POST ",
        ),
    ];
    for (op, method) in writes {
        let mut op = op.to_vec();
        op.extend(["--password-env", "NEW_PW", "--apply"]);
        let output = ssh_users(&url, &op, &env).await;
        assert_eq!(code(&output), 2, "{}", stderr(&output));
        assert!(stderr(&output).contains(method), "{}", stderr(&output));
        assert_redacted(&output, PASSWORD);
        assert_redacted(&output, ISSUED_TOKEN);
    }
}
