//! Hostile cameras through `sshfleet scan`: each answer ends as a specific status, never
//! `ok` from garbage, within a bound set by `--timeout`, under the memory cap.

use std::time::Duration;

use super::{json, response, scan, within, Conn, Hostile, Request};

const T: u64 = 2;

const VERSIONS: &str = r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSupportedVersions","data":{"apiVersions":["1.0"]}}"#;

fn info(data: &str) -> String {
    format!(r#"{{"apiVersion":"1.0","context":"sshfleet","method":"getSshInfo","data":{data}}}"#)
}

/// A camera that lists 1.0 and answers `getSshInfo` with `answer`, on every connection.
async fn answering_info(answer: Vec<u8>) -> Hostile {
    Hostile::start(move |mut conn: Conn| {
        let answer = answer.clone();
        async move {
            while let Some(request) = conn.request().await {
                let reply = if request.calls("getSupportedVersions") {
                    json(VERSIONS)
                } else {
                    answer.clone()
                };
                if !conn.send(&reply).await {
                    return;
                }
            }
        }
    })
    .await
}

/// A camera whose first answer, to whatever is asked, is `start` and then `more` for as
/// long as the client reads (at most `rounds` times).
async fn streaming(start: &'static [u8], more: Vec<u8>, rounds: usize) -> Hostile {
    Hostile::start(move |mut conn: Conn| {
        let more = more.clone();
        async move {
            if conn.request().await.is_none() || !conn.send(start).await {
                return;
            }
            for _ in 0..rounds {
                if !conn.send(&more).await {
                    return;
                }
            }
            conn.hold().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_silent_after_accept_is_a_timeout() {
    let camera = Hostile::start(|conn: Conn| conn.hold()).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("timeout", "no response within 2s", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_is_a_timeout_at_the_request_deadline() {
    let camera = Hostile::start(|mut conn: Conn| async move {
        if conn.request().await.is_none() {
            return;
        }
        // A byte of head every 100 ms: each read makes progress, none completes the head.
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: "
            .iter()
            .chain([b'a'; 600].iter())
        {
            if !conn.send(&[*byte]).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("timeout", "no response within 2s", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_chunked_body_is_cut_at_the_body_cap() {
    let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000)).into_bytes();
    let start =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    // 100 MB offered, far past the 64 KiB cap.
    let camera = streaming(start, chunk, 1_600).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "larger than 65536 bytes", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_is_refused_before_the_trickle() {
    let camera = Hostile::start(|mut conn: Conn| async move {
        if conn.request().await.is_none() {
            return;
        }
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 107374182400\r\n\r\n";
        if !conn.send(head).await {
            return;
        }
        for _ in 0..600 {
            if !conn.send(b"{").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "larger than 65536 bytes", within(T));
    assert!(
        scan.run.elapsed < Duration::from_secs(T),
        "refused at once, not at the deadline: {:?}",
        scan.run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_header_line_is_a_protocol_error_in_bounded_memory() {
    let start = b"HTTP/1.1 200 OK\r\nX-Endless: ";
    let camera = streaming(start, vec![b'a'; 1 << 16], 1_600).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "malformed HTTP response", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_0_9_and_garbage_status_lines_are_protocol_errors() {
    let answers: [&[u8]; 5] = [
        // HTTP/0.9: a body with no status line at all.
        br#"{"data":{"enabled":false}}"#,
        b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\n{}",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"\x00\x01\x02\x03\xff\xfe\r\n\r\n",
    ];
    for answer in answers {
        let camera = streaming(answer, Vec::new(), 0).await;
        let scan = scan(&camera.url(), T, &[]).await;
        let shown = String::from_utf8_lossy(answer);
        assert_eq!(
            scan.status(),
            "protocol_error",
            "{shown:?}: {}",
            scan.record
        );
        scan.assert_failed("protocol_error", "", within(T));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_1xx_answers_end_at_the_request_deadline() {
    let camera = streaming(b"", b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), 1_000_000).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("timeout", "no response within 2s", within(T));
}

/// Answers every request with a 401 carrying `challenges`; counts nothing else.
async fn challenging(challenges: Vec<String>) -> Hostile {
    Hostile::start(move |mut conn: Conn| {
        let headers: Vec<String> = challenges
            .iter()
            .map(|c| format!("WWW-Authenticate: {c}"))
            .collect();
        async move {
            while conn.request().await.is_some() {
                let list: Vec<&str> = headers.iter().map(String::as_str).collect();
                if !conn.send(&response("401 Unauthorized", &list, b"")).await {
                    return;
                }
            }
        }
    })
    .await
}

fn with_credentials(requests: &[Request]) -> usize {
    requests
        .iter()
        .filter(|r| r.header("authorization").is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_challenges_fail_auth_and_send_no_password() {
    let cases = [
        "Digest realm=",
        r#"Digest realm="AXIS_1", nonce="n", algorithm=SHA-512-77, qop="auth""#,
        r#"Negotiate"#,
    ];
    for challenge in cases {
        let camera = challenging(vec![challenge.to_owned()]).await;
        let scan = scan(&camera.url(), T, &[]).await;
        scan.assert_failed(
            "auth_failed",
            "no usable authentication challenge",
            within(T),
        );
        let requests = camera.requests();
        assert_eq!(with_credentials(&requests), 0, "{challenge}: {requests:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_challenge_is_a_protocol_error() {
    let nonce = "n".repeat(100 * 1024);
    let camera = challenging(vec![format!(r#"Digest realm="AXIS_1", nonce="{nonce}""#)]).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "larger than 65536 bytes", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_challenges_use_one_and_a_401_loop_after_credentials_is_auth_failed() {
    let digest = |nonce: &str| format!(r#"Digest realm="AXIS_1", nonce="{nonce}", qop="auth""#);
    let camera = challenging(vec![digest("one"), digest("two"), digest("one")]).await;
    let scan = scan(&camera.url(), T, &["--retries", "3"]).await;
    scan.assert_failed("auth_failed", "rejected the credentials", within(T));
    let requests = camera.requests();
    // The challenge, then credentials; one more try for a device that challenges twice.
    assert!(requests.len() <= 4, "{requests:#?}");
    assert!(with_credentials(&requests) >= 1, "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_nonce_loop_is_retried_once_then_auth_failed() {
    let camera = Hostile::start(|mut conn: Conn| async move {
        let mut n = 0u32;
        while conn.request().await.is_some() {
            n += 1;
            let header = format!(
                r#"WWW-Authenticate: Digest realm="AXIS_1", nonce="n{n}", qop="auth", stale=true"#
            );
            if !conn
                .send(&response("401 Unauthorized", &[&header], b""))
                .await
            {
                return;
            }
        }
    })
    .await;
    let scan = scan(&camera.url(), T, &["--retries", "3"]).await;
    scan.assert_failed("auth_failed", "rejected the credentials", within(T));
    let requests = camera.requests();
    assert!(requests.len() <= 4, "bounded: {requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_after_credentials_is_not_followed_and_leaks_nothing() {
    let target = Hostile::start(|mut conn: Conn| async move {
        while conn.request().await.is_some() {
            if !conn.send(&json(VERSIONS)).await {
                return;
            }
        }
    })
    .await;
    let location = format!("Location: {}/axis-cgi/ssh.cgi", target.url());
    let camera = Hostile::start(move |mut conn: Conn| {
        let location = location.clone();
        async move {
            while let Some(request) = conn.request().await {
                let answer = if request.header("authorization").is_some() {
                    response("302 Found", &[&location], b"")
                } else {
                    let challenge =
                        r#"WWW-Authenticate: Digest realm="AXIS_1", nonce="abc", qop="auth""#;
                    response("401 Unauthorized", &[challenge], b"")
                };
                if !conn.send(&answer).await {
                    return;
                }
            }
        }
    })
    .await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "unexpected HTTP status 302", within(T));
    assert_eq!(with_credentials(&camera.requests()), 1);
    let followed = target.requests();
    assert!(
        followed.is_empty(),
        "the redirect was followed: {followed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_json_for_enabled_is_never_a_reading() {
    // Just under the 64 KiB body cap, so that the parser, not the cap, meets it.
    let deep = format!("{}{}", "[".repeat(32_000), "]".repeat(32_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("string", info(r#"{"enabled":"false"}"#).into_bytes()),
        ("number", info(r#"{"enabled":0}"#).into_bytes()),
        ("null", info(r#"{"enabled":null}"#).into_bytes()),
        ("missing", info(r#"{}"#).into_bytes()),
        (
            "duplicated",
            info(r#"{"enabled":false,"enabled":true}"#).into_bytes(),
        ),
        (
            "deep nesting",
            info(&format!(r#"{{"enabled":false,"x":{deep}}}"#)).into_bytes(),
        ),
        ("invalid UTF-8", {
            let mut body = info(r#"{"enabled":false,"x":"@"}"#).into_bytes();
            let at = body.iter().position(|b| *b == b'@').expect("marker");
            body[at] = 0xff;
            body
        }),
        (
            "trailing garbage",
            format!("{}<html>", info(r#"{"enabled":false}"#)).into_bytes(),
        ),
        (
            "two documents",
            info(r#"{"enabled":false}"#).repeat(2).into_bytes(),
        ),
    ];
    for (case, body) in cases {
        let camera = answering_info(response("200 OK", &[], &body)).await;
        let scan = scan(&camera.url(), T, &[]).await;
        assert_eq!(scan.status(), "protocol_error", "{case}: {}", scan.record);
        scan.assert_failed("protocol_error", "malformed ssh.cgi response", within(T));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bom_before_the_json_is_read() {
    let body = format!("\u{feff}{}", info(r#"{"enabled":true}"#));
    let camera = answering_info(response("200 OK", &[], body.as_bytes())).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.run.assert_sane(within(T));
    assert_eq!(scan.status(), "ok", "{}", scan.record);
    assert_eq!(scan.record["ssh_enabled"], true, "{}", scan.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_that_was_not_asked_for_is_a_protocol_error_that_says_so() {
    // `{"data":{"enabled":false}}` gzipped: never to be parsed as is, nor unpacked unasked.
    let gzipped: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0x56, 0x4a, 0x49, 0x2c,
        0x49, 0x54, 0xb2, 0xaa, 0x56, 0x4a, 0xcd, 0x4b, 0x4c, 0xca, 0x49, 0x4d, 0x51, 0xb2, 0x4a,
        0x4b, 0xcc, 0x29, 0x4e, 0xad, 0xad, 0x05, 0x00, 0x5b, 0x87, 0x6d, 0x4e, 0x1a, 0x00, 0x00,
        0x00,
    ];
    let answer = response("200 OK", &["Content-Encoding: gzip"], gzipped);
    let camera = answering_info(answer).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "Content-Encoding gzip", within(T));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_body_is_a_protocol_error() {
    let camera = Hostile::start_resetting(|mut conn: Conn| async move {
        while let Some(request) = conn.request().await {
            if request.calls("getSupportedVersions") {
                if !conn.send(&json(VERSIONS)).await {
                    return;
                }
                continue;
            }
            let body = info(r#"{"enabled":false}"#);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = conn.send(head.as_bytes()).await;
            let _ = conn.send(&body.as_bytes()[..10]).await;
            return conn.reset();
        }
    })
    .await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.assert_failed("protocol_error", "closed or reset", within(T));
}

/// A camera that closes its connection after each 401, saying so (`Connection: close`) when
/// `announced`; otherwise the answer to the challenge may go out on the closing connection.
async fn closing_after_its_401(announced: bool) -> Hostile {
    Hostile::start(move |mut conn: Conn| async move {
        while let Some(request) = conn.request().await {
            if request.header("authorization").is_none() {
                let challenge =
                    r#"WWW-Authenticate: Digest realm="AXIS_1", nonce="abc", qop="auth""#;
                let headers: &[&str] = if announced {
                    &[challenge, "Connection: close"]
                } else {
                    &[challenge]
                };
                let _ = conn.send(&response("401 Unauthorized", headers, b"")).await;
                return;
            }
            let answer = if request.calls("getSupportedVersions") {
                json(VERSIONS)
            } else {
                json(&info(r#"{"enabled":false}"#))
            };
            if !conn.send(&answer).await {
                return;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_closing_after_its_401_is_read_on_a_new_connection() {
    let camera = closing_after_its_401(true).await;
    let scan = scan(&camera.url(), T, &[]).await;
    scan.run.assert_sane(within(T));
    assert_eq!(scan.status(), "ok", "{}", scan.record);
    assert_eq!(scan.record["ssh_enabled"], false, "{}", scan.record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_closing_after_its_401_without_saying_so_is_still_read() {
    // The answer to the challenge may go out on the closing connection, and is then sent
    // again at once on a new one. Ten cameras, so that the race is lost at least once in
    // practice.
    for _ in 0..10 {
        let camera = closing_after_its_401(false).await;
        let scan = scan(&camera.url(), T, &[]).await;
        scan.run.assert_sane(within(T));
        assert_eq!(scan.status(), "ok", "{}", scan.record);
        assert_eq!(scan.record["ssh_enabled"], false, "{}", scan.record);
    }
}

/// A camera without ssh.cgi whose param.cgi answers `answer`.
async fn param_cgi(answer: Vec<u8>) -> Hostile {
    Hostile::start(move |mut conn: Conn| {
        let answer = answer.clone();
        async move {
            while let Some(request) = conn.request().await {
                let reply = if request.target().contains("param.cgi") {
                    answer.clone()
                } else {
                    response("404 Not Found", &[], b"")
                };
                if !conn.send(&reply).await {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_param_cgi_answers_are_never_a_reading() {
    let huge = format!(
        "root.Network.SSH.Enabled=no\n{}",
        "root.X=y\n".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "odd value",
            b"root.Network.SSH.Enabled=maybe\n".to_vec(),
            "unrecognised",
        ),
        (
            "empty value",
            b"root.Network.SSH.Enabled=\n".to_vec(),
            "unrecognised",
        ),
        (
            "NUL",
            b"root.Network.SSH.Enabled=no\0yes\n".to_vec(),
            "unrecognised",
        ),
        (
            "NUL key",
            b"root.Network.SSH\0.Enabled=no\n".to_vec(),
            "no Network.SSH.Enabled",
        ),
        (
            "HTML",
            b"<html><body>root.Network.SSH.Enabled=no</body></html>".to_vec(),
            "no Network.SSH.Enabled",
        ),
        ("huge", huge.into_bytes(), "larger than 65536 bytes"),
    ];
    for (case, body, says) in cases {
        let camera = param_cgi(response("200 OK", &["Content-Type: text/plain"], &body)).await;
        let scan = scan(&camera.url(), T, &[]).await;
        assert_eq!(scan.status(), "protocol_error", "{case}: {}", scan.record);
        scan.assert_failed("protocol_error", says, within(T));
    }
}
