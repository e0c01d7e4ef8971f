//! The plan written in waves (see [`super::waves`]): canary first, each wave written and
//! verified before the next, a pause and a question between waves, and a stop before the
//! next wave once the failed writes and verifications exceed the budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::apply::{not_written, STOPPED};
use super::{journal, Applied, Planned, Remediator, Staging, WaveQuestion, Writes};
use crate::report::{Action, DeviceRecord};
use crate::shutdown::Shutdown;

impl Remediator {
    /// Writes the plan in waves; the devices left after a budget stop or an unconfirmed wave
    /// are reported `deferred`, and a budget stop is journaled. `staging.first_wave` skips
    /// the waves a stopped run already went through.
    pub async fn apply_waves(
        self: &Arc<Self>,
        mut planned: Planned,
        staging: &Staging,
        out: mpsc::Sender<DeviceRecord>,
        mut shutdown: Shutdown,
    ) -> Applied {
        let (total, waves) = staging.waves.left(staging.resume, planned.len());
        let allowed = staging.max_failures.map(|b| b.allowed(total));
        let failures = Arc::new(AtomicUsize::new(0));
        let mut applied = Applied::default();
        for (i, &(index, size)) in waves.iter().enumerate() {
            let failed_before = failures.load(Ordering::SeqCst);
            let wave = planned.take(size);
            let number = index + 1;
            tracing::info!(wave = number, devices = wave.len(), "wave starts");
            self.journal_wave(index, wave.len(), total);
            let stats = self
                .apply_counting(wave, out.clone(), shutdown.clone(), failures.clone())
                .await;
            applied.stats.dispatched += stats.dispatched;
            applied.stats.not_checked += stats.not_checked;
            applied.waves_done = number;
            if stats.interrupted || shutdown.is_triggered() {
                applied.stats.interrupted = true;
                break;
            }
            let failed = failures.load(Ordering::SeqCst);
            if let Some(why) = self.over_budget(allowed, failed, number, &mut applied) {
                self.defer_rest(planned.rest(), &why, &out).await;
                break;
            }
            let Some(&(next_index, next)) = waves.get(i + 1) else {
                break;
            };
            let question = WaveQuestion {
                wave: next_index + 1,
                devices: next,
                done: number,
                handled: stats.dispatched,
                failed: failed.saturating_sub(failed_before),
            };
            if !between_waves(staging, question, &mut shutdown).await {
                applied.declined = true;
                let why = format!("deferred: wave {} was not confirmed", next_index + 1);
                self.defer_rest(planned.rest(), &why, &out).await;
                break;
            }
        }
        applied.failures = failures.load(Ordering::SeqCst);
        self.report_stopped(planned.rest(), &out).await;
        applied
    }

    /// After wave `number`: when `failed` exceeds the budget, the stop (journaled) and why
    /// the devices left are deferred.
    fn over_budget(
        &self,
        allowed: Option<usize>,
        failed: usize,
        number: usize,
        applied: &mut Applied,
    ) -> Option<String> {
        let allowed = allowed.filter(|&a| failed > a)?;
        let stop = journal::BudgetStop {
            next_wave: number,
            failures: failed,
            allowed,
        };
        applied.budget_stop = Some(stop);
        if let Some(journal) = &self.journal {
            if let Err(e) = journal.stopped(stop) {
                self.journal_failed(e);
            }
        }
        Some(format!(
            "deferred: {failed} failed write(s) or verification(s) exceeded --max-failures ({allowed}) after wave {number}"
        ))
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

    /// Journals that wave `index` (0-based) starts; a journal that fails stops the writes.
    fn journal_wave(&self, index: usize, devices: usize, total: usize) {
        let Some(journal) = &self.journal else { return };
        let wave = journal::WaveProgress {
            number: index,
            devices,
            total,
            done: 0,
        };
        if let Err(e) = journal.wave(wave) {
            self.journal_failed(e);
        }
    }
}

/// The pause before the next wave (cut short by a stop request), then the question, if
/// asked for; `false` when the wave was not confirmed.
async fn between_waves(staging: &Staging, question: WaveQuestion, shutdown: &mut Shutdown) -> bool {
    if !staging.pause.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(staging.pause) => {}
            () = shutdown.wait() => {}
        }
    }
    let Some(ask) = staging.confirm.clone() else {
        return true;
    };
    tokio::task::spawn_blocking(move || ask(&question))
        .await
        .unwrap_or(false)
}
