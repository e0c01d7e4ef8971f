//! The device pipeline: at most `concurrency` devices in flight, each read through its own
//! sequential session, every outcome turned into exactly one [`DeviceRecord`] status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::inventory::{Device, Row};
use crate::net::auth::Credentials;
use crate::net::{HttpClient, HttpError};
use crate::report::{DeviceRecord, SshState, Status};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::vapix::{self, CallError, DeviceSession, Failure, SessionPolicy, SshReading};

/// Everything a scan needs besides the devices.
#[derive(Clone)]
pub struct ScanSettings {
    pub concurrency: usize,
    pub credentials: Credentials,
    /// Passwords of the inventory's `password_env` columns, resolved once at start.
    pub row_passwords: HashMap<String, Secret>,
    pub policy: SessionPolicy,
    /// The desired state where a row gives none.
    pub expect: Option<SshState>,
    /// How long in-flight devices may take to finish after a stop request.
    pub grace: Duration,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub dispatched: u64,
    /// Devices never started, or abandoned after the grace period, because of a stop request.
    pub not_checked: u64,
    pub interrupted: bool,
}

/// Reads devices with one shared client. Cheap to clone into tasks.
#[derive(Clone)]
pub struct Scanner {
    http: Arc<HttpClient>,
    settings: Arc<ScanSettings>,
}

impl Scanner {
    pub fn new(http: Arc<HttpClient>, settings: ScanSettings) -> Scanner {
        Scanner {
            http,
            settings: Arc::new(settings),
        }
    }

    /// Limits every HTTP request of the scan to `rate` per second.
    pub fn with_request_rate(mut self, rate: std::num::NonZeroU32) -> Scanner {
        let limiter = governor::RateLimiter::direct(governor::Quota::per_second(rate));
        Arc::make_mut(&mut self.settings).policy.limiter = Some(Arc::new(limiter));
        self
    }

    pub fn settings(&self) -> &ScanSettings {
        &self.settings
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Scans every device, sending one record per row to `out` as it completes (an invalid
    /// row's record as it is reached). Rows are taken from `rows` only as they are dispatched.
    pub async fn run(
        &self,
        rows: impl IntoIterator<Item = Row, IntoIter: ExactSizeIterator + Send>,
        out: mpsc::Sender<DeviceRecord>,
        shutdown: Shutdown,
    ) -> RunStats {
        let scanner = self.clone();
        run_bounded(
            rows,
            self.settings.concurrency,
            self.settings.grace,
            shutdown,
            move |row| {
                let scanner = scanner.clone();
                let out = out.clone();
                async move {
                    let record = match row {
                        Row::Device(device) => scanner.check(&device).await,
                        Row::Invalid(record) => record,
                    };
                    // The writer only goes away when the run is being torn down.
                    let _ = out.send(record).await;
                }
            },
        )
        .await
    }

    /// Reads one device and judges it against the expected state.
    pub async fn check(&self, device: &Device) -> DeviceRecord {
        self.read(device).await.0
    }

    /// Reads one device: its judged record, and the reading itself when there is one.
    pub async fn read(&self, device: &Device) -> (DeviceRecord, Option<SshReading>) {
        let started = Instant::now();
        let creds = self.credentials_for(device);
        let mut session = self.session(device, &creds);
        let outcome = self
            .with_deadline(vapix::read_ssh_state(&mut session, true))
            .await;
        let mut record = self.record_for(device, &session, started);
        let reading = outcome.as_ref().ok().cloned();
        apply_reading(&mut record, outcome);
        (record, reading)
    }

    /// The whole-device deadline: enough for every request and retry, then no more.
    pub fn device_deadline(&self) -> Duration {
        let per_request = self.http.timeout();
        let retries = self.settings.policy.retries;
        let backoff = self.settings.policy.throttle_backoff * 6 / 5;
        per_request * (4 + 2 * retries) + backoff * retries
    }

    /// Runs one device step under the device deadline; overrunning it is a `timeout`.
    pub async fn with_deadline<T>(
        &self,
        step: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let deadline = self.device_deadline();
        tokio::time::timeout(deadline, step)
            .await
            .unwrap_or(Err(Failure::Call(CallError::Http(HttpError::Timeout(
                deadline,
            )))))
    }

    pub fn credentials_for(&self, device: &Device) -> Credentials {
        let defaults = &self.settings.credentials;
        Credentials {
            username: device
                .username
                .clone()
                .unwrap_or_else(|| defaults.username.clone()),
            password: device
                .password_env
                .as_ref()
                .and_then(|var| self.settings.row_passwords.get(var))
                .cloned()
                .unwrap_or_else(|| defaults.password.clone()),
        }
    }

    pub fn session<'a>(&'a self, device: &Device, creds: &'a Credentials) -> DeviceSession<'a> {
        DeviceSession::new(
            &self.http,
            &self.settings.policy,
            creds,
            device.target.base_url(),
        )
    }

    /// A record carrying what the session saw (requests, TLS, timing), not yet the result.
    pub fn record_for(
        &self,
        device: &Device,
        session: &DeviceSession<'_>,
        started: Instant,
    ) -> DeviceRecord {
        let mut record = DeviceRecord::new(
            device.address.clone(),
            device.name.clone(),
            device.site.clone(),
            Status::Ok,
        );
        record.expect = device.expect.or(self.settings.expect);
        record.attempts = session.attempts;
        record.http_status = session.last_status;
        record.tls_fingerprint = session.fingerprint.map(|f| f.to_string());
        record.elapsed_ms = started.elapsed().as_millis() as u64;
        record.extra = device.extra.clone();
        record
    }
}

/// Fills in the result of a read and judges compliance.
pub fn apply_reading(record: &mut DeviceRecord, outcome: Result<SshReading, Failure>) {
    match outcome {
        Ok(reading) => {
            record.status = Status::Ok;
            record.ssh_enabled = Some(reading.enabled);
            record.method = Some(reading.method);
            record.api_version = reading.api_version.map(|v| v.to_string());
            record.supported_versions = reading.supported_versions;
        }
        Err(failure) => apply_failure(record, &failure),
    }
    record.judge();
}

/// Maps a failure to its one status; the message goes to `error`.
pub fn apply_failure(record: &mut DeviceRecord, failure: &Failure) {
    record.status = status_of(failure);
    record.ssh_enabled = None;
    record.error = Some(failure.to_string());
    match failure {
        Failure::Device { error, http_status } => {
            record.error_code = error.code;
            record.http_status = Some(*http_status);
        }
        Failure::Malformed { http_status, .. } => record.http_status = Some(*http_status),
        Failure::Call(CallError::Throttled { status }) => record.http_status = Some(*status),
        Failure::Call(CallError::AuthFailed { .. }) => record.http_status = Some(401),
        _ => {}
    }
}

pub fn status_of(failure: &Failure) -> Status {
    match failure {
        Failure::Call(CallError::Http(e)) => match e {
            HttpError::Refused | HttpError::Dns(_) | HttpError::Unreachable(_) => {
                Status::Unreachable
            }
            HttpError::Timeout(_) => Status::Timeout,
            HttpError::Tls(_) => Status::TlsError,
            HttpError::Reset(_) | HttpError::Oversized(_) | HttpError::Protocol(_) => {
                Status::ProtocolError
            }
        },
        Failure::Call(CallError::AuthFailed { privilege: true }) => Status::NotAuthorized,
        Failure::Call(CallError::AuthFailed { privilege: false }) => Status::AuthFailed,
        Failure::Call(CallError::AuthRefused(_)) => Status::AuthFailed,
        Failure::Call(CallError::Throttled { status: 403 | 429 }) => Status::Forbidden,
        Failure::Call(CallError::Throttled { .. }) => Status::ApiError,
        Failure::Device { error, .. } if error.is_not_authorized() => Status::NotAuthorized,
        Failure::Device { .. } => Status::ApiError,
        Failure::Unsupported(_) => Status::Unsupported,
        Failure::Malformed { .. } => Status::ProtocolError,
    }
}

/// Runs `work` for every item with at most `limit` in flight. On a stop request it stops
/// dispatching, gives in-flight work `grace` to finish, then abandons the rest.
pub async fn run_bounded<I, F, Fut>(
    items: I,
    limit: usize,
    grace: Duration,
    mut shutdown: Shutdown,
    work: F,
) -> RunStats
where
    I: IntoIterator<IntoIter: ExactSizeIterator>,
    F: Fn(I::Item) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let items = items.into_iter();
    let total = items.len() as u64;
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let mut tasks = JoinSet::new();
    let mut stats = RunStats::default();
    for item in items {
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => None,
            permit = permits.clone().acquire_owned() => permit.ok(),
        };
        let Some(permit) = permit else {
            stats.interrupted = true;
            break;
        };
        while tasks.try_join_next().is_some() {}
        let fut = work(item);
        tasks.spawn(async move {
            fut.await;
            drop(permit);
        });
        stats.dispatched += 1;
    }
    if !stats.interrupted {
        tokio::select! {
            _ = join_all(&mut tasks) => {}
            _ = shutdown.wait() => stats.interrupted = true,
        }
    }
    if stats.interrupted
        && tokio::time::timeout(grace, join_all(&mut tasks))
            .await
            .is_err()
    {
        stats.not_checked += tasks.len() as u64;
        tasks.abort_all();
    }
    stats.not_checked += total - stats.dispatched;
    stats
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}
