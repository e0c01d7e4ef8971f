//! The device pipeline: at most `concurrency` devices in flight, each read through its own
//! sequential session, every outcome turned into exactly one [`DeviceRecord`] status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

pub use crate::device::ScanSettings;
use crate::device::{self, DeviceContext};
use crate::outcome::{self, Conclude, Finding};
use crate::waivers::Waivers;
use sshfleet_axis::probe::{self, SshProbe};
use sshfleet_axis::vapix::{Connection, Failure, SshReading};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_inventory::{Device, Row};
use sshfleet_net::breaker::{CredentialBreaker, StoppedAccount};
use sshfleet_net::HttpClient;
use sshfleet_report::{DeviceRecord, Status};

/// How a run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub dispatched: u64,
    /// Devices never started or never finished: not reached, or abandoned after the grace
    /// period, because of a stop request.
    pub not_checked: u64,
    pub interrupted: bool,
}

/// Reads devices with one shared client. Cheap to clone into tasks; clones share one
/// credential breaker.
#[derive(Clone)]
pub struct Scanner {
    http: Arc<HttpClient>,
    settings: Arc<ScanSettings>,
    breaker: Arc<CredentialBreaker>,
}

impl Scanner {
    pub fn new(http: Arc<HttpClient>, settings: ScanSettings) -> Scanner {
        Scanner {
            http,
            breaker: Arc::new(CredentialBreaker::new(settings.auth_breaker)),
            settings: Arc::new(settings),
        }
    }

    /// Limits every HTTP request of the scan to `rate`.
    pub fn with_request_rate(mut self, rate: sshfleet_core::rate::Rate) -> Scanner {
        let limiter = governor::RateLimiter::direct(rate.quota());
        Arc::make_mut(&mut self.settings).policy.limiter = Some(Arc::new(limiter));
        self
    }

    /// Applies `waivers` to every record this scanner judges.
    pub(crate) fn with_waivers(mut self, waivers: Arc<Waivers>) -> Scanner {
        Arc::make_mut(&mut self.settings).waivers = Some(waivers);
        self
    }

    pub fn settings(&self) -> &ScanSettings {
        &self.settings
    }

    /// The accounts the credential breaker stopped using, with the devices not tried.
    pub fn stopped_accounts(&self) -> Vec<StoppedAccount> {
        self.breaker.stopped()
    }

    /// Scans every device, sending one record per row to `out` as it completes (an invalid
    /// row's record as it is reached). Rows are taken from `rows` only as they are dispatched.
    pub async fn run(
        &self,
        rows: impl IntoIterator<Item = Row, IntoIter: ExactSizeIterator + Send + 'static>,
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
                        Row::Invalid(row) => DeviceRecord::from_invalid(&row),
                    };
                    // The writer only goes away when the run is being torn down.
                    let _ = out.send(record).await;
                }
            },
        )
        .await
    }

    /// Reads one device and judges it against the expected state, waivers applied.
    pub async fn check(&self, device: &Device) -> DeviceRecord {
        let mut record = self.read(device).await.0;
        self.apply_waivers(device, &mut record);
        record
    }

    /// Reads one device: its judged record, and the reading itself when there is one. No
    /// waiver is applied: the caller applies them once, to its final judgement (each
    /// application counts in the waivers' summary).
    pub async fn read(&self, device: &Device) -> (DeviceRecord, Option<SshReading>) {
        let span = device_span(device);
        let (record, reading) = self.read_in_span(device).instrument(span.clone()).await;
        span.in_scope(|| log_outcome(&record, "read"));
        (record, reading)
    }

    async fn read_in_span(&self, device: &Device) -> (DeviceRecord, Option<SshReading>) {
        let account = device::account(&self.settings, device);
        if let Err(why) = self.breaker.admit(&account) {
            return (self.not_tried(device, &why), None);
        }
        let mut ctx = self.context(device);
        // The probe shares the device's slot and runs beside its requests, within its own
        // deadline, which is shorter than the device's.
        let device_info = self.settings.device_info;
        let reads = async {
            let after = match device_info {
                true => Connection::KeepAlive,
                false => Connection::Close,
            };
            let outcome = ctx.read(after).await;
            // Facts are worth asking a device that answered, even one without a usable SSH API
            // (old firmware is exactly what a team wants to find).
            let answered = matches!(&outcome, Ok(_) | Err(Failure::Unsupported(_)));
            let facts = match device_info && answered {
                true => Some(ctx.facts().await),
                false => None,
            };
            (outcome, facts)
        };
        let ((outcome, facts), probe) = tokio::join!(reads, self.probe_ssh(device));
        self.breaker.observe(&account, ctx.credential_verdict());
        let mut record = ctx.record();
        let evidence_note = probe.as_ref().and_then(outcome::evidence_note);
        if let Some(probe) = probe {
            record.apply_probe(probe);
        }
        let finding = match &outcome {
            Ok(reading) => Finding::Read(reading),
            Err(failure) => Finding::Failed(failure),
        };
        record.conclude(finding);
        if let Some(facts) = facts {
            record.add_facts(facts);
            if let Some(advisories) = &self.settings.advisories {
                let check = crate::advisories::check(advisories, record.firmware.as_deref());
                record.advisories = Some(check);
            }
        }
        if let Some(note) = evidence_note {
            outcome::add_note(&mut record.error, note);
        }
        (record, outcome.ok())
    }

    /// The record of a device not tried because the breaker stopped its account.
    fn not_tried(&self, device: &Device, why: &str) -> DeviceRecord {
        let mut record = DeviceRecord::for_device(device, Status::AuthFailed);
        record.expect = device.expect.or(self.settings.expect);
        record.conclude(Finding::Unknown {
            status: Status::AuthFailed,
            error: why,
        });
        self.apply_waivers(device, &mut record);
        record
    }

    /// Sets the record's waiver (or clears it) after it was judged.
    pub(crate) fn apply_waivers(&self, device: &Device, record: &mut DeviceRecord) {
        if let Some(waivers) = &self.settings.waivers {
            waivers.apply(device, record);
        }
    }

    /// A context for one device, its clock started now: read, write and read-back under
    /// one deadline.
    pub fn context<'a>(&'a self, device: &'a Device) -> DeviceContext<'a> {
        DeviceContext::new(&self.http, &self.settings, device)
    }

    /// The SSH port probe, when asked for; `None` otherwise (no connection made).
    async fn probe_ssh(&self, device: &Device) -> Option<SshProbe> {
        let mut settings = self.settings.probe.clone()?;
        let whole = device::device_time(self.http.timeout(), &self.settings);
        settings.deadline = settings.deadline.min(whole);
        let port = device.ssh_port.unwrap_or(probe::DEFAULT_SSH_PORT);
        probe::probe_ssh(&device.target.host, port, settings).await
    }
}

/// The span every event about one device is logged in (`-vv` shows its requests).
pub(crate) fn device_span(device: &Device) -> tracing::Span {
    tracing::info_span!("device", address = %device.address, site = %device.site)
}

/// One line per device at `-v`: what was found, how long it took, and why when it failed.
pub(crate) fn log_outcome(record: &DeviceRecord, step: &'static str) {
    let ssh = record
        .ssh_enabled
        .map_or("unknown", |on| if on { "enabled" } else { "disabled" });
    tracing::info!(
        status = %record.status,
        ssh,
        attempts = record.attempts,
        elapsed_ms = record.elapsed_ms,
        error = record.error.as_deref().unwrap_or(""),
        "{step}"
    );
}

/// Runs `work` for every item with at most `limit` in flight. On a stop request it stops
/// taking items, gives in-flight work `grace` to finish, then abandons the rest.
///
/// `limit` long-lived tasks take items one at a time from the shared iterator: no task to
/// spawn, permit to pass or dispatcher to wake per item, and an item is only produced (a
/// device row parsed) when a task is free to work on it.
pub(crate) async fn run_bounded<I, F, Fut>(
    items: I,
    limit: usize,
    grace: Duration,
    mut shutdown: Shutdown,
    work: F,
) -> RunStats
where
    I: IntoIterator<IntoIter: ExactSizeIterator + Send + 'static>,
    I::Item: Send + 'static,
    F: Fn(I::Item) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let items = items.into_iter();
    let total = items.len() as u64;
    let queue = Arc::new(Queue {
        items: Mutex::new(items),
        stopped: AtomicBool::new(false),
        completed: AtomicU64::new(0),
    });
    let work = Arc::new(work);
    let mut workers = JoinSet::new();
    let workers_needed = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .min(limit.max(1));
    for _ in 0..workers_needed {
        let queue = queue.clone();
        let work = work.clone();
        workers.spawn(async move {
            while let Some(item) = queue.take() {
                work(item).await;
                queue.completed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut stats = RunStats::default();
    tokio::select! {
        _ = join_all(&mut workers) => {}
        _ = shutdown.wait() => stats.interrupted = true,
    }
    if stats.interrupted {
        queue.stopped.store(true, Ordering::Relaxed);
        if tokio::time::timeout(grace, join_all(&mut workers))
            .await
            .is_err()
        {
            workers.abort_all();
        }
    }
    // Every worker has ended: these counts are final.
    stats.dispatched = total - queue.remaining();
    stats.not_checked = total - queue.completed.load(Ordering::Relaxed);
    stats
}

/// The items of [`run_bounded`], taken one at a time by its workers.
struct Queue<I> {
    items: Mutex<I>,
    /// Set on a stop request: no item is taken after it.
    stopped: AtomicBool,
    completed: AtomicU64,
}

impl<I: ExactSizeIterator> Queue<I> {
    fn take(&self) -> Option<I::Item> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        items.next()
    }

    fn remaining(&self) -> u64 {
        let items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        items.len() as u64
    }
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Bounds the waits of these tests: a hang here is a failure, never a synchronisation.
    const BOUND: Duration = Duration::from_secs(20);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_item_runs_once_and_never_more_than_the_limit_at_a_time() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        // The first 7 items wait for each other: they can only all pass with 7 in flight,
        // and every item after them is free to overtake or overlap as it will.
        let first_seven = Arc::new(tokio::sync::Barrier::new(7));
        let (r, p, s, b) = (running.clone(), peak.clone(), seen.clone(), first_seven);
        let run = run_bounded(
            0..200u32,
            7,
            Duration::from_secs(1),
            Shutdown::never(),
            move |i| {
                let (running, peak, seen, barrier) = (r.clone(), p.clone(), s.clone(), b.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    if i < 7 {
                        barrier.wait().await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    seen.lock().unwrap().push(i);
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            },
        );
        let stats = tokio::time::timeout(BOUND, run)
            .await
            .unwrap_or_else(|_| panic!("fewer than 7 items in flight: the first seven never met"));
        assert_eq!(
            stats,
            RunStats {
                dispatched: 200,
                not_checked: 0,
                interrupted: false
            }
        );
        assert_eq!(peak.load(Ordering::SeqCst), 7);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_takes_no_new_items_and_counts_what_was_abandoned() {
        let (trigger, shutdown) = sshfleet_core::shutdown::channel();
        let started = Arc::new(AtomicUsize::new(0));
        let all_hung = Arc::new(tokio::sync::Notify::new());
        let (counter, hung) = (started.clone(), all_hung.clone());
        // Items 0-2 finish at once, then items 3-5 hang forever, one per worker: after the
        // sixth start no worker is free, so the stop comes when exactly 6 were taken.
        let stopper = tokio::spawn(async move {
            all_hung.notified().await;
            trigger.trigger();
        });
        let run = run_bounded(
            0..100u32,
            3,
            Duration::from_millis(50),
            shutdown,
            move |i| {
                let (started, hung) = (counter.clone(), hung.clone());
                async move {
                    if started.fetch_add(1, Ordering::SeqCst) + 1 == 6 {
                        hung.notify_one();
                    }
                    if i >= 3 {
                        std::future::pending::<()>().await;
                    }
                }
            },
        );
        let stats = tokio::time::timeout(BOUND, run).await.unwrap();
        stopper.await.unwrap();
        assert!(stats.interrupted);
        assert_eq!(stats.dispatched, 6);
        assert_eq!(started.load(Ordering::SeqCst), 6);
        // Three hung items abandoned after the grace period, 94 never started.
        assert_eq!(stats.not_checked, 3 + 94);
    }
}
