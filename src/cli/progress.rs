//! The indicatif progress bar: on stderr, only when stderr is a terminal and not `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use sshfleet_report::{DeviceRecord, Reporter, Status};

use super::verbosity::Verbosity;

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    findings: AtomicU64,
}

impl Progress {
    pub(super) fn new(verbosity: Verbosity) -> Progress {
        let bar = (!verbosity.is_quiet() && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {pos}/{len} devices [{elapsed_precise}] {per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            findings: AtomicU64::new(0),
        }
    }
}

impl Progress {
    /// Runs `f` (a prompt) with the bar hidden.
    pub(super) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}

impl Reporter for Progress {
    fn started(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    fn record(&self, rec: &DeviceRecord) {
        let Some(bar) = &self.bar else { return };
        bar.inc(1);
        if rec.status != Status::Ok || rec.compliant == Some(false) {
            let n = self.findings.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} findings"));
        }
    }

    fn finished(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress counted in items of one kind (the detaches of a policy run): a bar with rate
/// and ETA when stderr is a terminal, else a line every [`Counter::LINE_EVERY`] and one at
/// the end; nothing with `--quiet`.
pub(super) struct Counter {
    bar: Option<ProgressBar>,
    lines: Option<std::sync::Mutex<Lines>>,
}

struct Lines {
    noun: &'static str,
    total: u64,
    done: u64,
    started: std::time::Instant,
    last: std::time::Instant,
}

impl Counter {
    pub(super) const LINE_EVERY: Duration = Duration::from_secs(5);

    pub(super) fn new(verbosity: Verbosity, total: u64, noun: &'static str) -> Counter {
        if verbosity.is_quiet() {
            return Counter {
                bar: None,
                lines: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template =
                format!("{{bar:30}} {{pos}}/{{len}} {noun} [{{elapsed_precise}}] {{per_sec}}, ETA {{eta}} {{msg}}");
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            return Counter {
                bar: Some(bar),
                lines: None,
            };
        }
        let now = std::time::Instant::now();
        let lines = Lines {
            noun,
            total,
            done: 0,
            started: now,
            last: now,
        };
        Counter {
            bar: None,
            lines: Some(std::sync::Mutex::new(lines)),
        }
    }

    /// One more item done.
    pub(super) fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if let Some(lines) = &self.lines {
            let mut lines = lines.lock().unwrap_or_else(|p| p.into_inner());
            lines.done = lines.done.saturating_add(1);
            if lines.last.elapsed() >= Self::LINE_EVERY {
                lines.last = std::time::Instant::now();
                diagln!("{}", lines.render());
            }
        }
    }

    /// Clears the bar, or says the last line.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(lines) = &self.lines {
            let lines = lines.lock().unwrap_or_else(|p| p.into_inner());
            diagln!("{}", lines.render());
        }
    }
}

impl Lines {
    /// `progress: 500/2460 associations, 98.4/s, about 20s left`.
    fn render(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        };
        let left = self.total.saturating_sub(self.done);
        let eta = if left == 0 {
            "done".to_owned()
        } else if rate > 0.0 {
            format!("about {:.0}s left", left as f64 / rate)
        } else {
            "time left unknown".to_owned()
        };
        format!(
            "progress: {}/{} {}, {rate:.1}/s, {eta}",
            self.done, self.total, self.noun
        )
    }
}
