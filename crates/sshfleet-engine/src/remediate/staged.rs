//! The plan written in waves (see [`sshfleet_rollout::waves`]): canary first, each wave written and
//! verified before the next, a pause and a question between waves, and a stop before the
//! next wave once the failed writes and verifications exceed the budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::remediate::apply::{not_written, STOPPED};
use crate::remediate::{Applied, JournalError, Planned, Remediator, Staging, Writes};
use crate::scan::RunStats;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_report::{Action, DeviceRecord};
use sshfleet_rollout::driver::{Driver, Left, Rollout, Wave, WaveDone};

impl Remediator {
    /// Writes the plan in waves (see [`Driver`]); the devices left after a budget stop or an
    /// unconfirmed wave are reported `deferred`, after a stop request not written.
    pub async fn apply_waves(
        self: &Arc<Self>,
        planned: Planned,
        staging: &Staging,
        out: mpsc::Sender<DeviceRecord>,
        shutdown: Shutdown,
    ) -> Applied {
        let driver = Driver {
            staging,
            journal: self.journal.as_deref(),
            stop: shutdown.clone(),
        };
        let count = planned.len();
        let mut waves = CameraWaves {
            remediator: self,
            planned,
            out,
            shutdown,
            failures: Arc::new(AtomicUsize::new(0)),
            stats: RunStats::default(),
        };
        let driven = match driver.run(count, &mut waves).await {
            Ok(driven) => driven,
            Err(never) => match never {},
        };
        let rest = waves.planned.rest();
        self.report_stopped(rest, &waves.out).await;
        let mut stats = waves.stats;
        stats.interrupted |= driven.interrupted();
        Applied {
            stats,
            failures: driven.failures,
            waves_done: driven.waves_done,
            budget_stop: driven.budget_stop(),
            declined: driven.declined(),
        }
    }

    /// Planned writes that never started because a stop was asked for (in a wave never
    /// begun, or while planning): reported not written, never dropped from the report.
    pub async fn report_stopped(&self, rest: Writes, out: &mpsc::Sender<DeviceRecord>) {
        for left in rest {
            let record = match left {
                Ok(left) => not_written(left.record, left.reading.enabled, STOPPED),
                Err(unread) => self.unread(unread),
            };
            let _ = out.send(record).await;
        }
    }

    /// Reports every device left as `deferred`, with why.
    async fn defer_rest(&self, rest: Writes, why: &str, out: &mpsc::Sender<DeviceRecord>) {
        for left in rest {
            let record = match left {
                Ok(left) => {
                    let mut record = left.record;
                    record.error = Some(why.to_owned());
                    if let Some(rem) = record.remediation.as_mut() {
                        rem.action = Action::Deferred;
                    }
                    record
                }
                Err(unread) => self.unread(unread),
            };
            let _ = out.send(record).await;
        }
    }
}

/// The planned writes of one run, taken wave by wave.
struct CameraWaves<'a> {
    remediator: &'a Arc<Remediator>,
    planned: Planned,
    out: mpsc::Sender<DeviceRecord>,
    shutdown: Shutdown,
    /// Failed writes and verifications so far.
    failures: Arc<AtomicUsize>,
    stats: RunStats,
}

impl Rollout for CameraWaves<'_> {
    type Error = std::convert::Infallible;

    async fn apply(&mut self, wave: Wave) -> Result<WaveDone, Self::Error> {
        let before = self.failures.load(Ordering::SeqCst);
        let writes = self.planned.take(wave.size);
        let (out, stop) = (self.out.clone(), self.shutdown.clone());
        let stats = (self.remediator)
            .apply_counting(writes, out, stop, self.failures.clone())
            .await;
        self.stats.dispatched += stats.dispatched;
        self.stats.not_checked += stats.not_checked;
        let failed = self.failures.load(Ordering::SeqCst).saturating_sub(before);
        Ok(WaveDone {
            handled: stats.dispatched,
            failed,
            interrupted: stats.interrupted,
        })
    }

    async fn leave(&mut self, wave: Wave, why: Left) -> Result<(), Self::Error> {
        let rest = self.planned.take(wave.size);
        let why = match why {
            Left::Stopped => {
                self.remediator.report_stopped(rest, &self.out).await;
                return Ok(());
            }
            Left::Budget(stop) => format!(
                "deferred: {} failed write(s) or verification(s) exceeded --max-failures ({}) after wave {}",
                stop.failures, stop.allowed, stop.next_wave
            ),
            Left::Declined { wave } => format!("deferred: wave {wave} was not confirmed"),
        };
        self.remediator.defer_rest(rest, &why, &self.out).await;
        Ok(())
    }

    fn journal_failed(&mut self, error: JournalError) {
        self.remediator.journal_failed(error);
    }
}
