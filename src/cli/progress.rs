//! The indicatif progress bar: on stderr, only when stderr is a terminal and not `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{DeviceRecord, Reporter, Status};

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    findings: AtomicU64,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
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
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
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
