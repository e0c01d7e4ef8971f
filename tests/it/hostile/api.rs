//! A hostile Network Edge API through `sshfleet equinix ssh-users list`: odd totals, pages
//! that ignore `limit` or `offset`, bodies of the wrong shape, long waits asked for, odd
//! token lifetimes, refusals and a 50 MB page. Each ends with a complete report or a clear
//! error naming what happened, the right exit code, in bounded time and memory.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::equinix_token::http_date_a_year_ahead;

use super::{json, response, run_measured, Conn, Hostile, Request, Run};

const TOKEN: &str = "hostile-ready-token";

/// `offset` and `limit` of a list request's query.
fn paging(request: &Request) -> (usize, usize) {
    let query = request.target().split_once('?').map_or("", |(_, q)| q);
    let value = |key: &str| {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| v.parse().ok()).flatten()
        })
    };
    (value("offset").unwrap_or(0), value("limit").unwrap_or(20))
}

fn user(i: usize) -> String {
    format!(
        r#"{{"uuid":"u-{i}","username":"user{i}","deviceUuids":["d-1"],"metroStatusMap":{{"da1.pod1":{{"status":"ACTIVE"}}}}}}"#
    )
}

/// `count` users from `offset` of a fleet of `users`, with `total` as given (raw JSON).
fn page(offset: usize, count: usize, users: usize, total: &str) -> String {
    let data: Vec<String> = (offset..users.min(offset + count)).map(user).collect();
    format!(
        r#"{{"pagination":{{"offset":{offset},"limit":{count},"total":{total}}},"data":[{}]}}"#,
        data.join(",")
    )
}

/// An API answering every request with `answer(request)`.
async fn api<F>(answer: F) -> Hostile
where
    F: Fn(&Request) -> Vec<u8> + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    Hostile::start(move |mut conn: Conn| {
        let answer = answer.clone();
        async move {
            while let Some(request) = conn.request().await {
                if !conn.send(&answer(&request)).await {
                    return;
                }
            }
        }
    })
    .await
}

/// A well-behaved listing of `users` whose every page claims `total`.
async fn listing_claiming(users: usize, total: &'static str) -> Hostile {
    api(move |request| {
        let (offset, limit) = paging(request);
        json(&page(offset, limit, users, total))
    })
    .await
}

/// A finished `list` and the uuids of its CSV report.
struct Listed {
    run: Run,
    uuids: Vec<String>,
}

impl Listed {
    /// Sane (no panic, in time, in memory) and exited with `code`; `case` names the row.
    fn assert_ended(&self, code: i32, bound: Duration, case: &str) {
        self.run.assert_sane(bound);
        assert_eq!(self.run.code(), code, "{case}: {}", self.run.stderr());
    }

    fn assert_each_once(&self, users: usize) {
        let unique: HashSet<&String> = self.uuids.iter().collect();
        assert_eq!(unique.len(), self.uuids.len(), "a user twice");
        assert_eq!(self.uuids.len(), users, "{}", self.run.stderr());
    }
}

/// `list --endpoint <api> -o users.csv --retries 0 --timeout 5s` plus `extra`, with a ready
/// token unless `env` gives credentials.
async fn list(api: &Hostile, extra: &[&str], env: &[(&str, &str)]) -> Listed {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("users.csv");
    let mut args: Vec<String> = ["equinix", "ssh-users", "list", "--endpoint", &api.url()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["-o".into(), out.display().to_string()]);
    for (flag, value) in [("--retries", "0"), ("--timeout", "5s")] {
        if !extra.contains(&flag) {
            args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let env: Vec<(&str, &str)> = if env.is_empty() {
        vec![("EQUINIX_API_TOKEN", TOKEN)]
    } else {
        env.to_vec()
    };
    let run = run_measured(&args, &env).await;
    let uuids = match csv::Reader::from_path(&out) {
        Ok(mut reader) => reader
            .records()
            .map(|r| r.expect("a CSV row")[0].to_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    Listed { run, uuids }
}

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_totals_are_unknown_and_the_listing_is_walked_to_its_end() {
    for total in ["-5", "\"lots\"", "2.5", "null"] {
        let api = listing_claiming(250, total).await;
        let listed = list(&api, &[], &[]).await;
        listed.assert_ended(0, BOUND, &format!("total {total}"));
        listed.assert_each_once(250);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_total_with_few_users_is_an_incomplete_listing_not_a_hang() {
    for total in [
        "18446744073709551615",
        "1e30",
        "1000000000000",
        "\"99999999999999\"",
    ] {
        let api = listing_claiming(250, total).await;
        let listed = list(&api, &[], &[]).await;
        listed.assert_ended(1, BOUND, &format!("total {total}"));
        assert!(
            listed.run.stderr().contains("the listing is incomplete"),
            "total {total}: {}",
            listed.run.stderr()
        );
        listed.assert_each_once(250);
        assert!(
            api.requests().len() <= 12,
            "total {total}: bounded requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_ignore_limit_still_list_each_user_once() {
    let api = api(|request| {
        let (offset, _) = paging(request);
        json(&page(offset, 1_000, 2_500, "2500"))
    })
    .await;
    let listed = list(&api, &[], &[]).await;
    listed.assert_ended(0, BOUND, "");
    listed.assert_each_once(2_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_page_forever_ends_as_incomplete_with_a_warning() {
    let api = api(|_| json(&page(0, 100, 100, "1000"))).await;
    let listed = list(&api, &[], &[]).await;
    listed.assert_ended(1, BOUND, "");
    assert!(
        listed.run.stderr().contains("warning: "),
        "{}",
        listed.run.stderr()
    );
    listed.assert_each_once(100);
    assert!(api.requests().len() <= 12, "{}", api.requests().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_that_is_not_an_array_is_an_error_naming_the_page() {
    for data in [r#"{"uuid":"u-1"}"#, r#""users""#, "7", "[1,2]"] {
        let body =
            format!(r#"{{"pagination":{{"offset":0,"limit":100,"total":1}},"data":{data}}}"#);
        let api = api(move |_| json(&body)).await;
        let listed = list(&api, &[], &[]).await;
        listed.assert_ended(1, BOUND, &format!("data {data}"));
        let err = listed.run.stderr();
        assert!(
            err.contains("error: ") && err.contains("offset 0"),
            "data {data}: {err}"
        );
        assert!(listed.uuids.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_asking_for_a_huge_or_dated_wait_fails_at_once() {
    let date = http_date_a_year_ahead();
    for asked in ["999999", "18446744073709551615", date.as_str()] {
        let header = format!("Retry-After: {asked}");
        let api = api(move |_| response("429 Too Many Requests", &[&header], b"")).await;
        let listed = list(&api, &["--retries", "4"], &[]).await;
        // Nowhere near the wait asked for, nor the backoff of four retries.
        listed.assert_ended(1, Duration::from_secs(20), asked);
        assert!(
            listed
                .run
                .stderr()
                .contains("HTTP 429: the API asks to wait"),
            "{asked}: {}",
            listed.run.stderr()
        );
        assert_eq!(api.requests().len(), 1, "{asked}: not retried");
    }
}

/// A token endpoint granting `grant` (raw JSON) and a one-page listing of 30 users behind
/// it; counts the token requests.
async fn api_granting(grant: &'static str, tokens: Arc<AtomicUsize>) -> Hostile {
    api(move |request| {
        if request.target().starts_with("/oauth2/") {
            tokens.fetch_add(1, Ordering::SeqCst);
            return json(grant);
        }
        let (offset, limit) = paging(request);
        json(&page(offset, limit, 30, "30"))
    })
    .await
}

const CREDENTIALS: [(&str, &str); 2] = [
    ("EQUINIX_API_CLIENTID", "hostile-client"),
    ("EQUINIX_API_CLIENTSECRET", "hostile-secret"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_token_lifetimes_neither_crash_nor_renew_on_every_page() {
    let grants = [
        r#"{"access_token":"t-1"}"#,
        r#"{"access_token":"t-1","expires_in":0}"#,
        r#"{"access_token":"t-1","expires_in":1e30}"#,
        r#"{"access_token":"t-1","token_timeout":"18446744073709551615"}"#,
        r#"{"access_token":"t-1","expires_in":-1}"#,
    ];
    for grant in grants {
        let tokens = Arc::new(AtomicUsize::new(0));
        let api = api_granting(grant, tokens.clone()).await;
        let listed = list(&api, &["--page-size", "10"], &CREDENTIALS).await;
        listed.assert_ended(0, BOUND, grant);
        listed.assert_each_once(30);
        assert_eq!(tokens.load(Ordering::SeqCst), 1, "{grant}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_answer_without_a_token_is_a_clear_error() {
    for grant in [r#"{"expires_in":300}"#, r#"{"access_token":""}"#, "<html>"] {
        let tokens = Arc::new(AtomicUsize::new(0));
        let api = api_granting(grant, tokens.clone()).await;
        let listed = list(&api, &[], &CREDENTIALS).await;
        listed.run.assert_sane(BOUND);
        assert_ne!(listed.run.code(), 0, "{grant}: {}", listed.run.stderr());
        assert!(
            listed.run.stderr().contains("token"),
            "{grant}: {}",
            listed.run.stderr()
        );
        assert!(listed.uuids.is_empty());
        assert!(tokens.load(Ordering::SeqCst) <= 1, "{grant}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_every_call_renews_once_then_stops_with_exit_2() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let counted = tokens.clone();
    let api = api(move |request| {
        if request.target().starts_with("/oauth2/") {
            counted.fetch_add(1, Ordering::SeqCst);
            return json(r#"{"access_token":"t-1","expires_in":3600}"#);
        }
        response("401 Unauthorized", &[], br#"{"errorCode":"IC-LOGIN-03"}"#)
    })
    .await;
    let listed = list(&api, &["--retries", "4"], &CREDENTIALS).await;
    listed.assert_ended(2, BOUND, "");
    assert!(
        listed.run.stderr().contains("401"),
        "{}",
        listed.run.stderr()
    );
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "one renewal after the 401"
    );
    assert_eq!(api.requests().len(), 4, "two tokens, two calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_page_is_refused_at_the_body_cap_in_bounded_memory() {
    // Declared: refused before it is read.
    let declared = api(|_| {
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 52428800\r\n\r\n".to_vec();
        answer.extend_from_slice(&[b' '; 1 << 16]);
        answer
    })
    .await;
    // Chunked: read up to the cap, then refused.
    let chunked = Hostile::start(|mut conn: Conn| async move {
        if conn.request().await.is_none() {
            return;
        }
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunk = format!("100000\r\n{}\r\n", " ".repeat(0x100000));
        let _ = conn.send(head).await;
        for _ in 0..50 {
            if !conn.send(chunk.as_bytes()).await {
                return;
            }
        }
        let _ = conn.send(b"0\r\n\r\n").await;
    })
    .await;
    for api in [declared, chunked] {
        let listed = list(&api, &[], &[]).await;
        listed.assert_ended(1, BOUND, "");
        assert!(
            listed.run.stderr().contains("larger than 33554432 bytes"),
            "{}",
            listed.run.stderr()
        );
    }
}
