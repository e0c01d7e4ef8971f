//! The plan written in waves (see [`super::waves`]): canary first, each wave written and
//! verified before the next, a pause and a question between waves, and a stop before the
//! next wave once the failed writes and verifications exceed the budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::apply::{not_written, STOPPED};
use super::{journal, waves, Applied, PlannedWrite, Remediator, Resume, Staging};
use crate::report::{Action, DeviceRecord};
use crate::shutdown::Shutdown;

impl Remediator {
    /// Writes the plan in waves; the devices left after a budget stop or an unconfirmed wave
    /// are reported `deferred`, and a budget stop is journaled. `staging.first_wave` skips
    /// the waves a stopped run already went through.
    pub async fn apply_waves(
        self: &Arc<Self>,
        planned: Vec<PlannedWrite>,
        staging: &Staging,
        out: mpsc::Sender<DeviceRecord>,
        mut shutdown: Shutdown,
    ) -> Applied {
        let (ordered, total, waves) = waves_of(planned, staging);
        let allowed = staging.max_failures.map(|b| b.allowed(total));
        let failures = Arc::new(AtomicUsize::new(0));
        let mut rest = ordered.into_iter();
        let mut applied = Applied::default();
        for (i, &(index, size)) in waves.iter().enumerate() {
            let wave: Vec<PlannedWrite> = rest.by_ref().take(size).collect();
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
                defer_rest(&mut rest, &why, &out).await;
                break;
            }
            let Some(&(next_index, next)) = waves.get(i + 1) else {
                break;
            };
            if !between_waves(staging, next_index + 1, next, &mut shutdown).await {
                applied.declined = true;
                let why = format!("deferred: wave {} was not confirmed", next_index + 1);
                defer_rest(&mut rest, &why, &out).await;
                break;
            }
        }
        applied.failures = failures.load(Ordering::SeqCst);
        // Devices of waves never started (a stop request): reported, not dropped.
        for left in rest {
            let before = left.reading.enabled;
            let _ = out.send(not_written(left.record, before, STOPPED)).await;
        }
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

/// The planned writes in a stable order spread over sites, the total the waves are cut
/// from, and the waves left: (0-based number, size), none empty.
fn waves_of(
    mut planned: Vec<PlannedWrite>,
    staging: &Staging,
) -> (Vec<PlannedWrite>, usize, Vec<(usize, usize)>) {
    // Planning finishes devices in any order: sort, then spread over sites.
    planned.sort_by_cached_key(|p| p.device.target.key());
    let ordered = waves::spread_over_sites(planned, |p| p.device.site.as_str());
    let (total, left) = waves_left(&staging.waves, staging.resume, ordered.len());
    (ordered, total, left)
}

/// The waves left for `count` writes when `resume` says where an earlier run stopped: the
/// sizes cut from the earlier run's total, the wave under way short of what it wrote, and
/// the last wave taking whatever remains (devices may have needed a write since, or no
/// longer). Without waves left (a stop after the last one), one wave of them all.
pub(super) fn waves_left(
    waves: &waves::Waves,
    resume: Resume,
    count: usize,
) -> (usize, Vec<(usize, usize)>) {
    let total = resume.total.unwrap_or(count).max(count);
    let mut sizes: Vec<(usize, usize)> = waves
        .sizes(total)
        .into_iter()
        .enumerate()
        .skip(resume.first_wave)
        .collect();
    if sizes.is_empty() {
        sizes.push((resume.first_wave, count));
    }
    if let Some(first) = sizes.first_mut() {
        first.1 = first.1.saturating_sub(resume.done_in_first);
    }
    let mut left = count;
    let last = sizes.len() - 1;
    for (i, (_, size)) in sizes.iter_mut().enumerate() {
        *size = if i == last { left } else { (*size).min(left) };
        left -= *size;
    }
    sizes.retain(|&(_, size)| size > 0);
    (total, sizes)
}

/// The pause before wave `wave` (cut short by a stop request), then the question, if asked
/// for; `false` when the wave was not confirmed.
async fn between_waves(
    staging: &Staging,
    wave: usize,
    devices: usize,
    shutdown: &mut Shutdown,
) -> bool {
    if !staging.pause.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(staging.pause) => {}
            () = shutdown.wait() => {}
        }
    }
    let Some(ask) = staging.confirm.clone() else {
        return true;
    };
    tokio::task::spawn_blocking(move || ask(wave, devices))
        .await
        .unwrap_or(false)
}

/// Reports every device left as `deferred`, with why.
async fn defer_rest(
    rest: &mut impl Iterator<Item = PlannedWrite>,
    why: &str,
    out: &mpsc::Sender<DeviceRecord>,
) {
    for left in rest {
        let mut record = left.record;
        record.error = Some(why.to_owned());
        if let Some(rem) = record.remediation.as_mut() {
            rem.action = Action::Deferred;
        }
        let _ = out.send(record).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waves(text: &str) -> waves::Waves {
        text.parse().unwrap_or_default()
    }

    #[test]
    fn a_fresh_run_cuts_every_wave_from_its_own_plan() {
        let (total, left) = waves_left(&waves("1,10%,100%"), Resume::default(), 50);
        assert_eq!((total, left), (50, vec![(0, 1), (1, 5), (2, 44)]));
    }

    #[test]
    fn a_crash_inside_a_wave_resumes_it_with_what_it_had_left() {
        // 50 planned, waves 1, 5, 44; the crash came after 3 writes of wave 2 (index 1).
        let resume = Resume {
            first_wave: 1,
            total: Some(50),
            done_in_first: 3,
        };
        // 1 + 3 written: 46 left.
        let (total, left) = waves_left(&waves("1,10%,100%"), resume, 46);
        assert_eq!((total, left), (50, vec![(1, 2), (2, 44)]));
        // The wave had finished (all 5 written) before the next began: it is skipped.
        let done = Resume {
            done_in_first: 5,
            ..resume
        };
        assert_eq!(waves_left(&waves("1,10%,100%"), done, 44).1, vec![(2, 44)]);
    }

    #[test]
    fn fewer_or_more_writes_than_planned_still_go_out_once_each() {
        let resume = Resume {
            first_wave: 1,
            total: Some(50),
            done_in_first: 0,
        };
        // Devices fixed by hand since: fewer writes than the waves had room for.
        assert_eq!(waves_left(&waves("1,10%,100%"), resume, 3).1, vec![(1, 3)]);
        // A budget stop after the last wave: one wave of what is left.
        let past = Resume {
            first_wave: 3,
            ..resume
        };
        assert_eq!(waves_left(&waves("1,10%,100%"), past, 7).1, vec![(3, 7)]);
        let sum: usize = waves_left(&waves("2,4,25%,100%"), resume, 60)
            .1
            .iter()
            .map(|w| w.1)
            .sum();
        assert_eq!(sum, 60);
    }
}
