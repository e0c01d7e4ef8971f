//! `--notify URL` for scan and remediate: a report output that gathers what changed, and
//! the one POST after the run. A notification that fails is a warning; the exit code stays.

use std::sync::{Arc, Mutex, PoisonError};

use super::args::{NotifyArgs, NotifyFormatArg};
use super::verbosity::Verbosity;
use sshfleet_core::time::{now_rfc3339, today};
use sshfleet_engine::notify::{
    build, newly_expiring, send, ChangeCollector, Changes, NotifyFormat, NotifyTarget, RunLabel,
};
use sshfleet_engine::waivers::Waivers;
use sshfleet_report::RecordOutput;

impl NotifyFormatArg {
    /// The body format this option names.
    pub(super) fn format(self) -> NotifyFormat {
        match self {
            NotifyFormatArg::Json => NotifyFormat::Json,
            NotifyFormatArg::Slack => NotifyFormat::Slack,
        }
    }
}

/// What sends the run's notification, once the run is over.
pub(super) struct Notifier {
    target: NotifyTarget,
    changes: Arc<Mutex<Changes>>,
    run: RunLabel,
}

impl Notifier {
    /// With `--notify`: the notifier and the report output that gathers the changes. A
    /// notification needs a previous run to compare with.
    pub(super) fn open(
        args: &NotifyArgs,
        command: &str,
        has_previous: bool,
    ) -> anyhow::Result<Option<(Notifier, RecordOutput)>> {
        let Some(url) = &args.notify else {
            return Ok(None);
        };
        if !has_previous {
            anyhow::bail!(
                "--notify tells what changed since the previous run: give --history or --baseline"
            );
        }
        let target =
            NotifyTarget::parse(url, args.notify_format.format()).map_err(anyhow::Error::msg)?;
        let (collector, changes) = ChangeCollector::new();
        let run = RunLabel {
            command: command.to_owned(),
            started_at: now_rfc3339(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let notifier = Notifier {
            target,
            changes,
            run,
        };
        Ok(Some((notifier, Box::new(collector))))
    }

    /// Sends what changed, if anything did; says how it went.
    pub(super) async fn send(self, waivers: Option<&Waivers>, verbosity: Verbosity) {
        let changes = self
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let previous = changes.previous_run_day();
        let expiring = waivers
            .map(|w| newly_expiring(w, today(), previous))
            .unwrap_or_default();
        let shown = self.target.shown().to_owned();
        let Some(note) = build(&changes, &expiring, &self.run, self.target.format) else {
            if !verbosity.is_quiet() {
                diagln!("nothing changed: no notification to {shown}");
            }
            return;
        };
        match send(&self.target, &note).await {
            Ok(_) if verbosity.is_quiet() => {}
            Ok(_) => diagln!("notified {shown}: {}", note.summary),
            Err(e) => diagln!(
                "warning: the notification was not delivered: {}; the run's result stands",
                sshfleet_core::inert::message(&e.to_string())
            ),
        }
    }
}
