//! The one wave driver, for cameras and Equinix alike: the waves cut from the plan (canary
//! first, a resumed run taking up where its journal left them), each wave journaled and
//! applied whole before the next, the failure budget checked after each, a pause and the
//! question between waves, and the waves never begun handed back with why.
//!
//! What one wave does to its items is the caller's: a [`Rollout`] applies a wave and says
//! what it came to, and is told to leave the waves the driver will not start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::journal::{BudgetStop, Journal, JournalError, WaveProgress};
use crate::waves::{Budget, Resume, Waves};
use sshfleet_core::shutdown::Shutdown;

/// Asked before each wave after the first (`--confirm-waves`), with what the wave before
/// it did; `false` defers the rest.
pub type ConfirmWave = Arc<dyn Fn(&WaveQuestion) -> bool + Send + Sync>;

/// The question before a wave: the wave (1-based) and its size, and the result of the wave
/// just done, so that it is seen before the next is confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaveQuestion {
    pub wave: usize,
    pub devices: usize,
    /// The wave just done (1-based).
    pub done: usize,
    /// Its devices handled (written and verified, failed, or not written).
    pub handled: u64,
    /// Its failed writes and verifications.
    pub failed: usize,
}

/// How the writes are staged (`--waves`, `--max-failures`, `--wave-pause`,
/// `--confirm-waves`).
#[derive(Clone, Default)]
pub struct Staging {
    pub waves: Waves,
    pub max_failures: Option<Budget>,
    pub pause: Duration,
    /// Where the run this one continues left its waves (from the journal).
    pub resume: Resume,
    pub confirm: Option<ConfirmWave>,
}

/// One wave of a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wave {
    /// 0-based, counting the waves of the run this one continues.
    pub index: usize,
    /// The items it takes.
    pub size: usize,
}

impl Wave {
    /// 1-based, as it is shown.
    pub fn number(self) -> usize {
        self.index.saturating_add(1)
    }
}

/// What one wave came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaveDone {
    /// Its items handled (done, failed, or left undone).
    pub handled: u64,
    /// Its failed writes and verifications, counted against the budget.
    pub failed: usize,
    /// It was cut short by a stop request.
    pub interrupted: bool,
}

/// Why the waves left were not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    /// A stop was asked for.
    Stopped,
    /// The failures exceeded the budget (journaled).
    Budget(BudgetStop),
    /// Wave `wave` (1-based) was not confirmed.
    Declined { wave: usize },
}

/// What a rollout does with its waves; the driver decides which wave goes, and when.
pub trait Rollout {
    /// Ends the run at once (the driver passes it on).
    type Error;

    /// Applies the next `wave.size` items.
    fn apply(&mut self, wave: Wave) -> impl Future<Output = Result<WaveDone, Self::Error>>;

    /// Reports the next `wave.size` items as not applied, with why.
    fn leave(&mut self, wave: Wave, why: Left) -> impl Future<Output = Result<(), Self::Error>>;

    /// The journal could not be written (a wave's start or a budget stop).
    fn journal_failed(&mut self, error: JournalError);
}

/// What the driver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Driven {
    /// Failed writes and verifications of this run.
    pub failures: usize,
    /// The last wave that ran (1-based, counting the waves of a continued run); 0: none.
    pub waves_done: usize,
    /// Why the run stopped before its last wave was done, if it did.
    pub left: Option<Left>,
}

impl Driven {
    /// The failure budget stopped the run.
    pub fn budget_stop(&self) -> Option<BudgetStop> {
        match self.left {
            Some(Left::Budget(stop)) => Some(stop),
            _ => None,
        }
    }

    /// A wave was not confirmed: the rest was left.
    pub fn declined(&self) -> bool {
        matches!(self.left, Some(Left::Declined { .. }))
    }

    /// A stop request cut the run short.
    pub fn interrupted(&self) -> bool {
        self.left == Some(Left::Stopped)
    }
}

/// Drives `count` items through the waves of `staging`, journaled in `journal`.
pub struct Driver<'a> {
    pub staging: &'a Staging,
    pub journal: Option<&'a Journal>,
    pub stop: Shutdown,
}

/// The run through the waves, as it goes.
struct Course {
    /// The failures the budget allows, if there is one.
    allowed: Option<usize>,
    stop: Shutdown,
    driven: Driven,
}

impl Driver<'_> {
    /// Applies `count` items in their waves; after a stop, a spent budget or a wave not
    /// confirmed, every wave left is handed to [`Rollout::leave`].
    pub async fn run<R: Rollout>(&self, count: usize, rollout: &mut R) -> Result<Driven, R::Error> {
        let (total, waves) = self.staging.waves.left(self.staging.resume, count);
        let mut course = Course {
            allowed: self.staging.max_failures.map(|b| b.allowed(total)),
            stop: self.stop.clone(),
            driven: Driven::default(),
        };
        let mut waves = waves.into_iter().map(|(index, size)| Wave { index, size });
        while let Some(wave) = waves.next() {
            tracing::info!(wave = wave.number(), devices = wave.size, "wave starts");
            self.journal_wave(wave, total, rollout);
            let done = rollout.apply(wave).await?;
            let driven = &mut course.driven;
            driven.failures = driven.failures.saturating_add(done.failed);
            driven.waves_done = wave.number();
            let next = waves.clone().next();
            let left = self.after(wave, done, next, &mut course, rollout).await;
            course.driven.left = left;
            if let Some(why) = left {
                for rest in waves.by_ref() {
                    rollout.leave(rest, why).await?;
                }
            }
        }
        Ok(course.driven)
    }

    /// After `wave`: whether the run stops (a stop request, the budget spent), then the
    /// pause and the question before `next`.
    async fn after<R: Rollout>(
        &self,
        wave: Wave,
        done: WaveDone,
        next: Option<Wave>,
        course: &mut Course,
        rollout: &mut R,
    ) -> Option<Left> {
        if done.interrupted || course.stop.is_triggered() {
            return Some(Left::Stopped);
        }
        let failed = course.driven.failures;
        if let Some(over) = self.over_budget(course.allowed, failed, wave, rollout) {
            return Some(over);
        }
        let next = next?;
        self.pause(&mut course.stop).await;
        if course.stop.is_triggered() {
            return Some(Left::Stopped);
        }
        let question = WaveQuestion {
            wave: next.number(),
            devices: next.size,
            done: wave.number(),
            handled: done.handled,
            failed: done.failed,
        };
        let declined = Left::Declined {
            wave: next.number(),
        };
        (!self.confirmed(question).await).then_some(declined)
    }

    /// When `failed` exceeds the budget after `wave`: the stop, journaled.
    fn over_budget<R: Rollout>(
        &self,
        allowed: Option<usize>,
        failed: usize,
        wave: Wave,
        rollout: &mut R,
    ) -> Option<Left> {
        let allowed = allowed.filter(|&a| failed > a)?;
        let stop = BudgetStop {
            next_wave: wave.number(),
            failures: failed,
            allowed,
        };
        if let Some(Err(e)) = self.journal.map(|j| j.stopped(stop)) {
            rollout.journal_failed(e);
        }
        Some(Left::Budget(stop))
    }

    /// Journals that `wave` starts; a journal that fails is the rollout's to act on.
    fn journal_wave<R: Rollout>(&self, wave: Wave, total: usize, rollout: &mut R) {
        let Some(journal) = self.journal else { return };
        let progress = WaveProgress {
            number: wave.index,
            devices: wave.size,
            total,
            done: 0,
        };
        if let Err(e) = journal.wave(progress) {
            rollout.journal_failed(e);
        }
    }

    /// The pause before the next wave, cut short by a stop request.
    async fn pause(&self, stop: &mut Shutdown) {
        let pause = self.staging.pause;
        if pause.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop.wait() => {}
        }
    }

    /// The question before the next wave, if asked for; `false` when it was not confirmed.
    async fn confirmed(&self, question: WaveQuestion) -> bool {
        let Some(ask) = self.staging.confirm.clone() else {
            return true;
        };
        tokio::task::spawn_blocking(move || ask(&question))
            .await
            .unwrap_or(false)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::path::Path;

    use tokio::time::Instant;

    use super::*;
    use crate::journal::{read_journal, JournalHeader};

    /// A rollout of numbered items whose listed items fail; it records what it was told.
    #[derive(Default)]
    struct Fake {
        next: usize,
        failing: Vec<usize>,
        /// Each wave applied: (index, its items, when).
        applied: Vec<(usize, Vec<usize>, Instant)>,
        left: Vec<(Wave, Left, Vec<usize>)>,
        journal_errors: usize,
    }

    impl Fake {
        fn take(&mut self, n: usize) -> Vec<usize> {
            let items: Vec<usize> = (self.next..self.next + n).collect();
            self.next += n;
            items
        }
    }

    impl Rollout for Fake {
        type Error = std::convert::Infallible;

        async fn apply(&mut self, wave: Wave) -> Result<WaveDone, Self::Error> {
            let items = self.take(wave.size);
            let failed = items.iter().filter(|i| self.failing.contains(i)).count();
            let handled = items.len() as u64;
            self.applied.push((wave.index, items, Instant::now()));
            Ok(WaveDone {
                handled,
                failed,
                interrupted: false,
            })
        }

        async fn leave(&mut self, wave: Wave, why: Left) -> Result<(), Self::Error> {
            let items = self.take(wave.size);
            self.left.push((wave, why, items));
            Ok(())
        }

        fn journal_failed(&mut self, _: JournalError) {
            self.journal_errors += 1;
        }
    }

    fn staging(waves: &str) -> Staging {
        Staging {
            waves: waves.parse().unwrap(),
            ..Staging::default()
        }
    }

    fn journal(dir: &Path) -> Journal {
        let header = JournalHeader::new("inv".into(), "disabled", None);
        Journal::open(&dir.join("j.jsonl"), &header).unwrap().0
    }

    async fn drive(
        staging: &Staging,
        journal: Option<&Journal>,
        fake: &mut Fake,
        count: usize,
    ) -> Driven {
        let driver = Driver {
            staging,
            journal,
            stop: Shutdown::never(),
        };
        driver.run(count, fake).await.unwrap()
    }

    fn items(fake: &Fake) -> Vec<Vec<usize>> {
        fake.applied.iter().map(|a| a.1.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_canary_goes_first_then_each_wave_whole_and_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(dir.path());
        let mut fake = Fake::default();
        let driven = drive(&staging("1,2,100%"), Some(&journal), &mut fake, 6).await;
        assert_eq!(items(&fake), vec![vec![0], vec![1, 2], vec![3, 4, 5]]);
        assert_eq!((driven.waves_done, driven.left), (3, None));
        assert!(fake.left.is_empty());
        // The journal saw the last wave start, cut from the 6 planned.
        let (_, recovered) = read_journal(journal.path()).unwrap();
        let wave = recovered.wave.unwrap();
        assert_eq!((wave.number, wave.devices, wave.total), (2, 3, 6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_stops_before_the_next_wave_and_is_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(dir.path());
        let mut fake = Fake {
            failing: vec![1, 2],
            ..Fake::default()
        };
        let mut staged = staging("1,2,2,100%");
        staged.max_failures = Some(Budget::Count(1));
        let driven = drive(&staged, Some(&journal), &mut fake, 8).await;
        // Wave 2 failed twice, one more than allowed: waves 3 and 4 never start.
        assert_eq!(items(&fake), vec![vec![0], vec![1, 2]]);
        let stop = BudgetStop {
            next_wave: 2,
            failures: 2,
            allowed: 1,
        };
        assert_eq!(driven.budget_stop(), Some(stop));
        let left: Vec<(usize, Vec<usize>)> = fake
            .left
            .iter()
            .map(|(w, why, items)| {
                assert_eq!(*why, Left::Budget(stop));
                (w.index, items.clone())
            })
            .collect();
        assert_eq!(left, vec![(2, vec![3, 4]), (3, vec![5, 6, 7])]);
        let (_, recovered) = read_journal(journal.path()).unwrap();
        assert_eq!(recovered.stopped, Some(stop));
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_run_skips_the_waves_and_writes_already_done() {
        let mut staged = staging("1,2,100%");
        // 6 planned, the crash came after 1 of wave 2's 2 writes: 4 left.
        staged.resume = Resume {
            first_wave: 1,
            total: Some(6),
            done_in_first: 1,
        };
        let mut fake = Fake::default();
        let driven = drive(&staged, None, &mut fake, 4).await;
        let waves: Vec<(usize, usize)> = fake.applied.iter().map(|a| (a.0, a.1.len())).collect();
        assert_eq!(waves, vec![(1, 1), (2, 3)]);
        assert_eq!(driven.waves_done, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pause_between_waves_is_kept_and_a_stop_cuts_it_short() {
        let mut staged = staging("1,1,100%");
        staged.pause = Duration::from_secs(600);
        let mut fake = Fake::default();
        let started = Instant::now();
        drive(&staged, None, &mut fake, 3).await;
        let at: Vec<Duration> = fake.applied.iter().map(|a| a.2 - started).collect();
        assert_eq!(at, [0, 600, 1200].map(Duration::from_secs));

        // A stop during the first pause: no further wave starts, the rest is left.
        let (trigger, stop) = sshfleet_core::shutdown::channel();
        let mut fake = Fake::default();
        let driver = Driver {
            staging: &staged,
            journal: None,
            stop,
        };
        let stopping = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            trigger.trigger();
        };
        let (driven, ()) = tokio::join!(driver.run(3, &mut fake), stopping);
        let driven = driven.unwrap();
        assert!(driven.interrupted());
        assert_eq!(items(&fake), vec![vec![0]]);
        assert_eq!(fake.left.len(), 2);
        assert_eq!(Instant::now() - started, Duration::from_secs(1260));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wave_not_confirmed_leaves_the_rest_with_what_was_asked() {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        let mut staged = staging("2,100%");
        staged.confirm = Some(Arc::new(move |q: &WaveQuestion| {
            seen.lock().unwrap().push(*q);
            false
        }));
        let mut fake = Fake {
            failing: vec![1],
            ..Fake::default()
        };
        let driven = drive(&staged, None, &mut fake, 5).await;
        assert_eq!(driven.left, Some(Left::Declined { wave: 2 }));
        assert!(driven.declined());
        let question = WaveQuestion {
            wave: 2,
            devices: 3,
            done: 1,
            handled: 2,
            failed: 1,
        };
        assert_eq!(*asked.lock().unwrap(), vec![question]);
        assert_eq!(fake.left[0].2, vec![2, 3, 4]);
    }
}
