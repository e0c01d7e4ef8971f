//! Bulk remediation: read every device, plan `set`/`none`/`skip`, and — only when asked —
//! write the desired SSH state under governor limits, journaled and verified by read-back.

mod apply;
pub mod held;
mod staged;
#[cfg(test)]
mod tests;

use sshfleet_rollout::{journal, plan, window};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Jitter, RateLimiter};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::scan::{self, run_bounded, RunStats, Scanner};
pub use held::{Encoded, Held, Planned, Unread, Writes};
use sshfleet_axis::vapix::SshReading;
use sshfleet_core::rate::Rate;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_inventory::{Device, Row};
use sshfleet_report::{Action, DeviceRecord, Remediation, SshState};
pub use sshfleet_rollout::driver::{ConfirmWave, Staging, WaveQuestion};
pub use sshfleet_rollout::journal::{Journal, JournalError, JournalHeader, Outcome, Recovered};
pub use sshfleet_rollout::waves::Resume;

/// How writes are paced.
#[derive(Clone, Debug)]
pub struct WriteLimits {
    pub rate: Rate,
    pub burst: NonZeroU32,
    /// Optional limit per `site` column value, on top of the global one.
    pub site_rate: Option<Rate>,
    /// Up to this much extra wait before re-checking a limiter, so a site's cameras are not
    /// all written in lock-step. It delays, never compresses: spacing stays >= 1/rate.
    pub jitter: Duration,
}

/// What the apply phase did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Applied {
    pub stats: RunStats,
    /// Failed writes and verifications.
    pub failures: usize,
    /// The last wave that ran (1-based, counting the waves of a continued run).
    pub waves_done: usize,
    /// Set when the failure budget stopped the run.
    pub budget_stop: Option<journal::BudgetStop>,
    /// A wave was not confirmed: the rest was deferred.
    pub declined: bool,
}

/// A write that went out and did not verify, or could not be made (not one held back).
fn is_failed_write(record: &DeviceRecord) -> bool {
    let Some(rem) = &record.remediation else {
        return false;
    };
    let held_back = record
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("not written"));
    rem.action == Action::Set && rem.verified != Some(true) && !held_back
}

/// A device whose state differs from the target, with what the plan read. Held until its
/// wave in [`held`]'s temporary file, in serde's derived form.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PlannedWrite {
    pub device: Device,
    pub reading: SshReading,
    pub record: DeviceRecord,
}

/// Plans and applies one target state over a fleet.
pub struct Remediator {
    scanner: Scanner,
    target: SshState,
    global: DefaultDirectRateLimiter,
    sites: HashMap<String, DefaultDirectRateLimiter>,
    jitter: Duration,
    /// Devices in the apply phase at once: about two seconds of writes, so no device holds
    /// an open, authenticated connection long while it waits for its turn.
    in_flight: usize,
    journal: Option<Arc<Journal>>,
    /// Set when the journal cannot be written: no further device may be touched.
    halted: AtomicBool,
    /// The first failed journal write and what it cost, for the caller to report.
    journal_failure: Mutex<Option<JournalError>>,
    unwritten: AtomicUsize,
    unjournaled: AtomicUsize,
    /// `--plan`: only these devices may be written, and only while they are as planned.
    /// Each entry is taken out when its device is planned, so none is held into the waves.
    plan: Option<Mutex<HashMap<String, plan::PlannedDevice>>>,
    /// What the plan is, in messages: `the saved plan`, `the reverted journal`.
    plan_source: &'static str,
    /// `--window`: writes start only inside it.
    window: Option<window::Window>,
    /// Devices left unwritten because the window was closed.
    outside_window: AtomicUsize,
}

/// The journal could not be written during a run: writes stopped there.
#[derive(Debug)]
pub struct JournalFailure {
    /// The first failed write.
    pub error: JournalError,
    /// Devices left unwritten because their intent could not be journaled.
    pub unwritten: usize,
    /// Devices written (and read back) whose outcome is missing from the journal; a rerun
    /// with the journal reads them again and finds them done.
    pub unjournaled: usize,
}

impl Remediator {
    pub fn new(
        scanner: Scanner,
        target: SshState,
        limits: &WriteLimits,
        sites: impl IntoIterator<Item = String>,
        journal: Option<Journal>,
    ) -> Remediator {
        let quota = limits.rate.quota().allow_burst(limits.burst);
        let sites = limits
            .site_rate
            .map(|rate| {
                sites
                    .into_iter()
                    .map(|s| {
                        (
                            s,
                            RateLimiter::direct(rate.quota().allow_burst(NonZeroU32::MIN)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Remediator {
            scanner,
            target,
            global: RateLimiter::direct(quota),
            sites,
            jitter: limits.jitter,
            in_flight: (limits.rate.per_second_ceil().get())
                .saturating_mul(2)
                .saturating_add(limits.burst.get()) as usize,
            journal: journal.map(Arc::new),
            halted: AtomicBool::new(false),
            journal_failure: Mutex::new(None),
            unwritten: AtomicUsize::new(0),
            unjournaled: AtomicUsize::new(0),
            plan: None,
            plan_source: "the saved plan",
            window: None,
            outside_window: AtomicUsize::new(0),
        }
    }

    /// Starts device writes only inside `window`.
    pub fn with_window(mut self, window: window::Window) -> Remediator {
        self.window = Some(window);
        self
    }

    /// Devices deferred because the change window was closed when their write was due.
    pub fn deferred_by_window(&self) -> usize {
        self.outside_window.load(Ordering::Relaxed)
    }

    /// The accounts the credential breaker stopped using while planning.
    pub fn stopped_accounts(&self) -> Vec<sshfleet_net::breaker::StoppedAccount> {
        self.scanner.stopped_accounts()
    }

    /// `Some(record)` when the window is closed now: the device is deferred, not written.
    fn outside_window(&self, record: &DeviceRecord) -> Option<DeviceRecord> {
        let window = self.window.as_ref()?;
        if window.contains(sshfleet_core::time::now_unix_ms()) {
            return None;
        }
        self.outside_window.fetch_add(1, Ordering::Relaxed);
        let mut record = record.clone();
        record.error = Some(format!(
            "deferred: outside the change window {window}; a rerun with the journal inside the next window continues"
        ));
        if let Some(rem) = record.remediation.as_mut() {
            rem.action = Action::Deferred;
        }
        Some(record)
    }

    /// Applies exactly `plan`: devices not in it are never written, and a planned device no
    /// longer as the plan saw it is `stale` and not written.
    pub fn with_plan(mut self, plan: plan::Plan) -> Remediator {
        let by_key = plan.devices.into_iter().map(|d| (d.key.clone(), d));
        self.plan = Some(Mutex::new(by_key.collect()));
        self
    }

    /// Puts back what `journal` changed: only the devices its run wrote and verified, and
    /// only while they are still in the state that run left them in.
    pub fn with_revert(
        mut self,
        recovered: &journal::Recovered,
        journal_target: SshState,
    ) -> Remediator {
        let after = journal_target.is_enabled();
        let devices = recovered
            .outcomes
            .iter()
            .filter(|(_, o)| o.verified && o.after == Some(after))
            .map(|(key, _)| {
                (
                    key.clone(),
                    plan::PlannedDevice {
                        key: key.clone(),
                        address: String::new(),
                        serial: None,
                        observed_enabled: after,
                        // Any API: the device is put back the way it is read now.
                        method: String::new(),
                        api_version: None,
                        observed_at: "the end of the reverted run".to_owned(),
                    },
                )
            })
            .collect();
        self.plan = Some(Mutex::new(devices));
        self.plan_source = "the reverted journal";
        self
    }

    /// Reads every device not already finished in the journal. Records of devices needing
    /// no write (and of invalid rows) go to `out` at once; the devices to write are held and
    /// returned, or reported as planned, as `planning` says.
    pub async fn plan(
        self: &Arc<Self>,
        rows: impl IntoIterator<Item = Row, IntoIter: ExactSizeIterator + Send + 'static>,
        recovered: Recovered,
        planning: Planning,
        out: mpsc::Sender<DeviceRecord>,
        shutdown: Shutdown,
    ) -> (Planned, RunStats) {
        let held = Arc::new(Mutex::new(Held::new()));
        let job = PlanJob {
            remediator: self.clone(),
            out,
            held: held.clone(),
            recovered: Arc::new(recovered),
            planning,
        };
        let settings = self.scanner.settings();
        let (concurrency, grace) = (settings.concurrency, settings.grace);
        let stats = run_bounded(rows, concurrency, grace, shutdown, move |row| {
            job.clone().row(row)
        })
        .await;
        let planned = std::mem::take(&mut *lock(&held)).into_order();
        (planned, stats)
    }

    /// `announced`: a killed run of this journal may have written the device (its intent is
    /// journaled without an outcome): found in the target state, that is this run's write,
    /// not another client's change.
    async fn plan_one(
        &self,
        device: Device,
        announced: Announced,
    ) -> (DeviceRecord, Option<PlannedWrite>) {
        let (mut record, reading) = self.scanner.read(&device).await;
        record.expect = Some(self.target);
        record.judge();
        self.scanner.apply_waivers(&device, &mut record);
        let action = match &reading {
            None => Action::Skip,
            Some(r) if r.enabled == self.target.is_enabled() => Action::None,
            Some(_) if record.waiver.is_some() => Action::Waived,
            Some(_) => Action::Set,
        };
        record.remediation = Some(Remediation {
            action,
            before: reading.as_ref().map(|r| r.enabled),
            after: None,
            verified: None,
        });
        let planned = (self.plan.as_ref()).map(|plan| lock(plan).remove(&device.target.key()));
        let action = match (planned, &reading) {
            (Some(_), Some(now)) if ours(announced) && now.enabled == self.target.is_enabled() => {
                action
            }
            (Some(None), Some(_)) if action == Action::Set => {
                record.error =
                    Some("not in the saved plan: not written (plan again to include it)".into());
                Action::Skip
            }
            // Another client changed it since the plan was approved: even if it is in the
            // target state now, the reviewer approved something else.
            (Some(Some(planned)), Some(now)) => {
                match stale_reason(&planned, now, record.serial.as_deref()) {
                    Some(why) => {
                        record.error = Some(format!(
                            "stale: {why}; not written (changed since {})",
                            self.plan_source
                        ));
                        Action::Stale
                    }
                    None => action,
                }
            }
            _ => action,
        };
        if let Some(rem) = record.remediation.as_mut() {
            rem.action = action;
        }
        let write = match (action, reading) {
            (Action::Set, Some(reading)) => Some(PlannedWrite {
                device,
                reading,
                record: record.clone(),
            }),
            _ => None,
        };
        (record, write)
    }

    /// Writes every planned device under the limits, at most a few in flight so that no
    /// device waits long on an open connection for its turn.
    pub async fn apply(
        self: &Arc<Self>,
        planned: Writes,
        out: mpsc::Sender<DeviceRecord>,
        shutdown: Shutdown,
    ) -> RunStats {
        let settings = self.scanner.settings();
        let in_flight = self.in_flight.min(settings.concurrency).max(1);
        let this = self.clone();
        let stop = shutdown.clone();
        run_bounded(
            planned,
            in_flight,
            settings.grace,
            shutdown,
            move |planned| {
                let this = this.clone();
                let out = out.clone();
                let stop = stop.clone();
                async move {
                    let record = match planned {
                        Ok(planned) => {
                            let span = scan::device_span(&planned.device);
                            let record =
                                this.apply_one(planned, stop).instrument(span.clone()).await;
                            span.in_scope(|| scan::log_outcome(&record, "remediated"));
                            record
                        }
                        Err(unread) => this.unread(unread),
                    };
                    let _ = out.send(record).await;
                }
            },
        )
        .await
    }

    /// The record of a planned write whose held bytes did not read back: not written.
    fn unread(&self, unread: Unread) -> DeviceRecord {
        tracing::warn!(?unread, "a planned write did not read back: not written");
        unread.record(self.target)
    }

    /// One wave: [`Remediator::apply`], counting failed writes and verifications.
    async fn apply_counting(
        self: &Arc<Self>,
        planned: Writes,
        out: mpsc::Sender<DeviceRecord>,
        shutdown: Shutdown,
        failures: Arc<AtomicUsize>,
    ) -> RunStats {
        let (tx, mut rx) = mpsc::channel::<DeviceRecord>(64);
        let forward = tokio::spawn(async move {
            while let Some(record) = rx.recv().await {
                if is_failed_write(&record) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                if out.send(record).await.is_err() {
                    break;
                }
            }
        });
        let stats = self.apply(planned, tx, shutdown).await;
        let _ = forward.await;
        stats
    }

    /// Waits for the site's limiter, then the global one.
    async fn permit(&self, site: &str) {
        let jitter = Jitter::up_to(self.jitter);
        if let Some(limiter) = self.sites.get(site) {
            limiter.until_ready_with_jitter(jitter).await;
        }
        self.global.until_ready_with_jitter(jitter).await;
    }

    fn journal_intent(&self, key: &str, device: &Device) -> Result<(), JournalError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        journal.intent(key, &device.address, self.target.is_enabled())
    }

    /// Stops every later write and keeps the first error for [`Remediator::journal_failure`].
    fn journal_failed(&self, error: JournalError) {
        self.halted.store(true, Ordering::SeqCst);
        lock(&self.journal_failure).get_or_insert(error);
    }

    /// What a failed journal write stopped, once the run is over; `None` if it never failed.
    /// Journals that this run goes on after a budget stop (`--continue-after-failures`).
    pub fn journal_continued(&self) -> Result<(), JournalError> {
        match &self.journal {
            Some(journal) => journal.continued(),
            None => Ok(()),
        }
    }

    pub fn journal_failure(&self) -> Option<JournalFailure> {
        let error = lock(&self.journal_failure).take()?;
        Some(JournalFailure {
            error,
            unwritten: self.unwritten.load(Ordering::Relaxed),
            unjournaled: self.unjournaled.load(Ordering::Relaxed),
        })
    }

    fn record_outcome(&self, key: &str, address: &str, outcome: Outcome) {
        let Some(journal) = &self.journal else { return };
        if let Err(e) = journal.outcome(key, address, outcome) {
            self.unjournaled.fetch_add(1, Ordering::Relaxed);
            self.journal_failed(e);
        }
    }

    /// A device this run (before it was cut short) already wrote: read again and reported
    /// as it is now, with what the journal says was done; never written twice in one run.
    async fn recheck(&self, device: Device, outcome: &Outcome) -> DeviceRecord {
        let (mut record, reading) = self.scanner.read(&device).await;
        record.expect = Some(self.target);
        record.judge();
        self.scanner.apply_waivers(&device, &mut record);
        let now = reading.as_ref().map(|r| r.enabled);
        let journaled = match (&outcome.error, outcome.verified) {
            (Some(why), false) => Some(format!("written earlier in this run, not verified: {why}")),
            _ => None,
        };
        let changed = (now.is_some() && now != Some(self.target.is_enabled())).then(|| {
            format!(
                "SSH is {} again since this run wrote it; a run writes a device once: the next run writes it",
                SshState::from_enabled(now == Some(true))
            )
        });
        // After the read's own error or note (an SSH evidence note does not hide this one).
        if let Some(note) = changed.or(journaled) {
            crate::outcome::add_note(&mut record.error, note);
        }
        record.remediation = Some(Remediation {
            action: Action::Set,
            before: Some(!self.target.is_enabled()),
            after: outcome.after,
            verified: Some(outcome.verified),
        });
        record
    }

    /// Records in the journal that this run went through every device, so that the next
    /// run is a new one; a failure is the run's journal failure.
    pub fn journal_finished(&self) {
        let Some(journal) = &self.journal else { return };
        if self.halted.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = journal.finished() {
            self.journal_failed(e);
        }
    }
}

/// Whether a killed run of this journal announced a write to a device (its intent is
/// journaled without an outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Announced {
    ByThisRun,
    No,
}

fn ours(announced: Announced) -> bool {
    announced == Announced::ByThisRun
}

/// What planning does with the devices to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planning {
    /// Held for a later phase (applying them, or writing the plan file): the apply phase
    /// reports them.
    HoldWrites,
    /// Reported as planned at once.
    ReportWrites,
}

/// One inventory row planned: what [`Remediator::plan`] does with each.
#[derive(Clone)]
struct PlanJob {
    remediator: Arc<Remediator>,
    out: mpsc::Sender<DeviceRecord>,
    held: Arc<Mutex<Held>>,
    recovered: Arc<Recovered>,
    planning: Planning,
}

impl PlanJob {
    /// An invalid row is reported; a device this run already wrote is read again; any other
    /// is planned, its write held or reported.
    async fn row(self, row: Row) {
        let device = match row {
            Row::Device(device) => device,
            Row::Invalid(row) => {
                let _ = self.out.send(DeviceRecord::from_invalid(&row)).await;
                return;
            }
        };
        let key = device.target.key();
        if let Some(outcome) = self.recovered.outcomes.get(&key) {
            let record = self.remediator.recheck(device, outcome).await;
            let _ = self.out.send(record).await;
            return;
        }
        let announced = if self.recovered.pending.contains(&key) {
            Announced::ByThisRun
        } else {
            Announced::No
        };
        let (record, write) = self.remediator.plan_one(device, announced).await;
        let settled = (record.remediation.as_ref()).is_some_and(|r| r.action == Action::None);
        if settled && ours(announced) {
            // A killed run's write landed: close its journal entry.
            let outcome = Outcome {
                after: record.ssh_enabled,
                verified: true,
                error: None,
            };
            (self.remediator).record_outcome(&key, &record.address, outcome);
        }
        match write {
            Some(planned) if self.planning == Planning::HoldWrites => {
                lock(&self.held).push(Encoded::of(&planned));
            }
            _ => {
                let _ = self.out.send(record).await;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a planned device is not as its plan saw it, if it is not: another serial at its
/// address, another SSH state, another API.
fn stale_reason(
    planned: &plan::PlannedDevice,
    now: &SshReading,
    serial: Option<&str>,
) -> Option<String> {
    if let (Some(then), Some(now)) = (planned.serial.as_deref(), serial) {
        if then != now {
            return Some(format!(
                "another device answers at this address (serial {now}, the plan saw {then})"
            ));
        }
    }
    if now.enabled != planned.observed_enabled {
        return Some(format!(
            "SSH is {} now, the plan saw it {} at {}",
            SshState::from_enabled(now.enabled),
            SshState::from_enabled(planned.observed_enabled),
            planned.observed_at
        ));
    }
    let method = now.method.as_str();
    let version = now.api_version.map(|v| v.to_string());
    if planned.method.is_empty() {
        return None;
    }
    if method != planned.method || version != planned.api_version {
        return Some(format!(
            "read through {method} {} now, the plan read it through {} {}",
            version.as_deref().unwrap_or(""),
            planned.method,
            planned.api_version.as_deref().unwrap_or("")
        ));
    }
    None
}

/// The plan's entry for a device about to be written, from what planning read.
pub fn planned_device(write: &PlannedWrite) -> plan::PlannedDevice {
    plan::PlannedDevice {
        key: write.device.target.key(),
        address: write.device.address.clone(),
        serial: write.record.serial.clone(),
        observed_enabled: write.reading.enabled,
        method: write.reading.method.as_str().to_owned(),
        api_version: write.reading.api_version.map(|v| v.to_string()),
        observed_at: write.record.checked_at.clone(),
    }
}

/// Identifies an inventory by its devices, independent of row order and formatting.
pub fn inventory_fingerprint(devices: impl IntoIterator<Item = Device>) -> String {
    let mut keys: Vec<String> = devices.into_iter().map(|d| d.target.key()).collect();
    keys.sort_unstable();
    let mut hasher = Sha256::new();
    for key in keys {
        hasher.update(key.as_bytes());
        hasher.update(b"\n");
    }
    sshfleet_core::hash::hex(&hasher.finalize())
}
