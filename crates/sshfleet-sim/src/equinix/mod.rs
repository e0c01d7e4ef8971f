//! The mock Equinix Network Edge API: the OAuth2 token endpoint and the `sshUsers` paths on
//! their own loopback port, answering with the OpenAPI file's shapes and paging semantics.
//! It shares no code with `sshfleet_equinix`: its own serde types, its own request handling.
//!
//! Faults on request: latency per response (concurrent requests are answered concurrently),
//! 429 or 500 every N-th API call, token expiry every N-th call, a `total` that drifts while a
//! listing is paged, a `total` that overstates what exists (empty pages at the end),
//! listings that ignore `offset`, padded (large) pages, and pages held back until several
//! are requested at once (to observe a client's concurrency without timing it), pages that
//! overlap or claim a fixed `total`, users listed or read without `deviceUuids`, reads of a
//! user that answer 404 though it exists, and detaches that are refused, that answer success
//! without sticking, or that are applied but answered 500.

mod routes;
mod store;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use super::server::{accept_plain, answer_requests, DoneToken};
pub use store::MockUser;

/// The client id and secret the mock accepts.
pub const CLIENT_ID: &str = "sim-client";
pub const CLIENT_SECRET: &str = "sim-secret";
/// Consecutive failed token requests after which the mock locks the client, as the real
/// service does.
pub(crate) const LOCKOUT_AFTER: u32 = 5;
/// Entries kept in the request log.
const LOG_LIMIT: usize = 200_000;

/// What the mock serves and which faults it injects.
#[derive(Clone, Debug)]
pub struct EquinixSimConfig {
    pub users: usize,
    pub seed: u64,
    /// Added before every response.
    pub latency: Duration,
    pub faults: EquinixFaults,
}

/// Injected misbehaviour; the default is a well-behaved API.
#[derive(Clone, Debug)]
pub struct EquinixFaults {
    /// Every N-th API call (token requests excluded) is answered 429.
    pub throttle_every: Option<u64>,
    /// The `Retry-After` seconds sent with injected 429s; none when `None`.
    pub retry_after: Option<u64>,
    /// Every N-th API call finds its token expired (401), as if it had timed out early.
    pub expire_every: Option<u64>,
    /// Every N-th API call fails with 500 (after doing nothing).
    pub error_every: Option<u64>,
    /// `token_timeout` of issued tokens; the mock refuses them after this long.
    pub token_lifetime: Duration,
    /// Users added (positive) or removed (negative) at the front of the list after every
    /// listing page beyond the first: the `total` drifts and entries shift between pages.
    pub drift_per_page: i64,
    /// `pagination.total` claims this many more users than exist (trailing empty pages).
    pub total_overstated_by: u64,
    /// Listings ignore `offset`: every page is the first one (and says `offset` 0), as a
    /// broken gateway or API version might serve.
    pub ignore_offset: bool,
    /// Listing pages carry no `pagination.total` (the client cannot bound the listing by it).
    pub omit_total: bool,
    /// Every listing page carries this many bytes of filler (an unknown member, which
    /// clients ignore): large pages without more users.
    pub page_padding: usize,
    /// Listing pages past the first are held until this many listing requests are in
    /// flight at once; from then on (once) every page is answered. The client's concurrency
    /// is then observed, not raced.
    pub hold_pages_until: Option<usize>,
    /// `POST /sshUsers` answers with the new uuid in the `Location` header only.
    pub created_uuid_in_location_only: bool,
    /// Association calls without the `{}` body are refused with 415, as the live API is
    /// reported to do (the OpenAPI file declares no body for them).
    pub association_needs_body: bool,
    /// Issued tokens claim this `token_timeout` text instead of their real lifetime (a
    /// hostile or broken token service: `"18446744073709551615"`, `"1e30"`).
    pub token_timeout_text: Option<String>,
    /// Every token request is answered 429 with this raw `Retry-After` value.
    pub token_throttle: Option<String>,
    /// Every N-th detach (`DELETE …/devices/{uuid}` naming a real association) is refused
    /// 400 `SSH_USER_DEVICE_STATE_NOT_VALID`, and the association stays.
    pub detach_refused_every: Option<u64>,
    /// Every N-th detach answers 200 as if done, but the association stays (a write that
    /// does not stick: only a read-back shows it).
    pub detach_unstuck_every: Option<u64>,
    /// Every N-th detach is applied (the user deleted with its last device, as always) but
    /// answered 500, as a gateway that times out after the backend did the work.
    pub detach_applied_then_500_every: Option<u64>,
    /// The second listing page (offset = limit) starts this many users early (it says the
    /// offset asked for, and `total` stays): it overlaps the first, and the users just
    /// before the third page are never served.
    pub second_page_early_by: usize,
    /// `pagination.total` says this, whatever exists (`0`, or an absurd `10^12`).
    pub total_claimed: Option<u64>,
    /// In verbose listings every N-th user comes without `deviceUuids` (`null`).
    pub listed_without_devices_every: Option<u64>,
    /// `GET /sshUsers/{uuid}` answers without `deviceUuids`.
    pub read_without_devices: bool,
    /// `GET /sshUsers/{uuid}` answers 404 though the user exists.
    pub read_not_found: bool,
}

impl Default for EquinixFaults {
    fn default() -> EquinixFaults {
        EquinixFaults {
            throttle_every: None,
            retry_after: None,
            expire_every: None,
            error_every: None,
            token_lifetime: Duration::from_secs(3599),
            drift_per_page: 0,
            total_overstated_by: 0,
            ignore_offset: false,
            omit_total: false,
            page_padding: 0,
            hold_pages_until: None,
            created_uuid_in_location_only: false,
            association_needs_body: false,
            token_timeout_text: None,
            token_throttle: None,
            detach_refused_every: None,
            detach_unstuck_every: None,
            detach_applied_then_500_every: None,
            second_page_early_by: 0,
            total_claimed: None,
            listed_without_devices_every: None,
            read_without_devices: false,
            read_not_found: false,
        }
    }
}

/// Counters of what the mock saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockStats {
    pub token_requests: u64,
    /// Token requests refused (bad credentials or locked).
    pub token_refusals: u64,
    pub api_requests: u64,
    pub list_requests: u64,
    /// The most listing requests received and not yet answered at one time.
    pub max_lists_in_flight: u64,
    /// The most requests of any kind received and not yet answered at one time.
    pub max_in_flight: u64,
    /// 429s injected.
    pub throttled: u64,
    /// 500s injected.
    pub server_errors: u64,
    /// 401s for missing, unknown or expired tokens.
    pub unauthorized: u64,
    /// Requests answered 400/404/405/415 for breaking the spec or naming nothing.
    pub rejected: u64,
    /// Detach requests that named a real association (faulted or not).
    pub detaches: u64,
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    /// Tokio time (pausable in tests) at arrival.
    pub at: Instant,
    pub method: String,
    pub target: String,
    pub status: u16,
}

/// The running mock. Its tasks stop with the fleet.
#[derive(Clone)]
pub struct EquinixMock {
    url: String,
    state: Arc<Mutex<routes::MockState>>,
}

impl std::fmt::Debug for EquinixMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EquinixMock")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EquinixMock {
    /// Binds a loopback port (0 = any) and serves until `stop` fires.
    pub async fn start(
        cfg: EquinixSimConfig,
        port: u16,
        stop: watch::Receiver<bool>,
        done: DoneToken,
    ) -> io::Result<EquinixMock> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (latency, hold) = (cfg.latency, cfg.faults.hold_pages_until);
        let state = Arc::new(Mutex::new(routes::MockState::new(cfg)));
        tokio::spawn(accept_loop(
            listener,
            state.clone(),
            latency,
            hold,
            stop,
            done,
        ));
        Ok(EquinixMock { url, state })
    }

    /// `http://127.0.0.1:PORT`: the API base (token and `sshUsers` paths under it).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn stats(&self) -> MockStats {
        self.lock().stats.clone()
    }

    /// Every current user, in listing order.
    pub fn users(&self) -> Vec<MockUser> {
        self.lock().store.users().to_vec()
    }

    /// Every request received, oldest first (bounded).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// The uuid of a device that accepts new SSH users, and of one that does not.
    pub fn devices(&self) -> (String, String) {
        self.lock().store.sample_devices()
    }

    /// Every device that accepts new SSH users.
    pub fn active_devices(&self) -> Vec<String> {
        self.lock().store.active_devices()
    }

    fn lock(&self) -> MutexGuard<'_, routes::MockState> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<routes::MockState>) -> MutexGuard<'_, routes::MockState> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Mutex<routes::MockState>>,
    latency: Duration,
    hold: Option<usize>,
    stop: watch::Receiver<bool>,
    done: DoneToken,
) {
    let gate = Arc::new(watch::Sender::new(hold.is_none()));
    accept_plain(listener, stop, done, move |tcp| {
        let (state, gate) = (state.clone(), gate.clone());
        answer_requests(tcp, 4096, move |req| {
            let (state, gate) = (state.clone(), gate.clone());
            async move {
                lock(&state).request_started();
                let listing = req.method == "GET" && req.path() == routes::USERS;
                if listing {
                    let in_flight = lock(&state).list_started();
                    if hold.is_some_and(|n| in_flight >= n as u64) {
                        gate.send_replace(true);
                    }
                    if !is_first_page(&req) {
                        // The gate's sender lives as long as this task: this cannot fail.
                        let _ = gate.subscribe().wait_for(|open| *open).await;
                    }
                }
                // Each request is answered after the configured latency.
                let response = lock(&state).handle(&req, Instant::now());
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                if listing {
                    lock(&state).list_finished();
                }
                lock(&state).request_finished();
                response
            }
        })
    })
    .await;
}

/// A listing request without `offset`, or at offset 0.
fn is_first_page(req: &super::http::Request) -> bool {
    req.query()
        .split('&')
        .find_map(|pair| pair.strip_prefix("offset="))
        .map_or(true, |offset| offset.trim_start_matches('0').is_empty())
}

impl routes::MockState {
    /// A listing request arrived; how many are in flight now.
    fn list_started(&mut self) -> u64 {
        self.lists_in_flight += 1;
        self.stats.max_lists_in_flight = self.stats.max_lists_in_flight.max(self.lists_in_flight);
        self.lists_in_flight
    }

    fn request_started(&mut self) {
        self.in_flight += 1;
        self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
    }

    fn request_finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn list_finished(&mut self) {
        self.lists_in_flight = self.lists_in_flight.saturating_sub(1);
    }

    fn log(&mut self, at: Instant, method: &str, target: &str, status: u16) {
        if self.log.len() < LOG_LIMIT {
            self.log.push(LoggedRequest {
                at,
                method: method.to_owned(),
                target: target.to_owned(),
                status,
            });
        }
    }
}
