//! `sshfleet history FILE runs|device|prune`: read and tidy the run history.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use super::args::{HistoryArgs, HistoryCommand};
use super::Exit;
use sshfleet_history::{History, Period, PushedRun, RunRow, Sent};

pub(super) fn run(args: HistoryArgs) -> anyhow::Result<Exit> {
    // A file must be there (a typo makes no new history); a database is opened as given.
    if !sshfleet_history::is_database(&args.file) && !args.file.exists() {
        bail!("no history at {}", args.file.display());
    }
    let history = History::open(&args.file)?;
    let shape = if args.json { Shape::Json } else { Shape::Text };
    let text = match args.command {
        HistoryCommand::Runs { limit } => runs(&history, limit, shape)?,
        HistoryCommand::Device { device } => match timeline(&history, &device, shape)? {
            Some(text) => text,
            None => {
                diagln!(
                    "no device {device:?} in {}",
                    sshfleet_history::display(&args.file)
                );
                return Ok(Exit::Findings);
            }
        },
        HistoryCommand::Prune {
            keep_runs,
            older_than,
        } => prune(&history, keep_runs, older_than)?,
        HistoryCommand::Push { to } => push(&args.file, &to)?,
    };
    to_stdout(&text)
}

/// How `history runs` and `history device` print: `--json`, or text for a terminal.
#[derive(Clone, Copy)]
enum Shape {
    Json,
    Text,
}

/// `history runs`: the latest runs, as JSON or as a table.
fn runs(history: &History, limit: usize, shape: Shape) -> anyhow::Result<String> {
    let runs = history.runs(limit)?;
    if let Shape::Json = shape {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&runs)?));
    }
    Ok(runs_table(&runs))
}

/// The runs as a table for a terminal, a header line and a line a run.
fn runs_table(runs: &[RunRow]) -> String {
    let mut text = format!(
        "{:>5}  {:<24}  {:<18}  {:>7}  {:>8}  {:>11}  {:>9}  {:>6}  scope\n",
        "run", "started", "command", "devices", "findings", "ssh_enabled", "regressed", "waived"
    );
    for r in runs {
        let command = if r.interrupted {
            format!("{} (interrupted)", r.command)
        } else if r.finished_at.is_none() {
            format!("{} (unfinished)", r.command)
        } else {
            r.command.clone()
        };
        text.push_str(&format!(
            "{:>5}  {:<24}  {:<18}  {:>7}  {:>8}  {:>11}  {:>9}  {:>6}  {}\n",
            r.id,
            r.started_at,
            command,
            r.devices,
            r.findings,
            r.ssh_enabled,
            r.regressed,
            r.waived,
            printable(&r.scope)
        ));
    }
    text
}

/// `history device`: one device's state periods as JSON or text; `None` when it has none.
fn timeline(history: &History, device: &str, shape: Shape) -> anyhow::Result<Option<String>> {
    let periods = history.timeline(device)?;
    if periods.is_empty() {
        return Ok(None);
    }
    if let Shape::Json = shape {
        return Ok(Some(format!(
            "{}\n",
            serde_json::to_string_pretty(&periods)?
        )));
    }
    Ok(Some(periods.iter().map(period_line).collect()))
}

/// One state period as a line for a terminal.
fn period_line(p: &Period) -> String {
    let ssh = match p.ssh_enabled {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "unknown",
    };
    format!(
        "{} .. {}  runs {}-{}  {} {}  {}  ssh {ssh}{}{}{}\n",
        p.first_seen,
        p.last_seen,
        p.run_first,
        p.run_last,
        printable(&p.address),
        p.serial.as_deref().map(printable).unwrap_or_default(),
        p.status,
        match p.compliant {
            Some(false) => "  NON-COMPLIANT",
            _ => "",
        },
        p.waiver
            .as_deref()
            .map(|w| format!("  waiver {}", printable(w)))
            .unwrap_or_default(),
        p.ssh_host_key
            .as_deref()
            .map(|k| format!("  host key {}", printable(k)))
            .unwrap_or_default(),
    )
}

/// `history prune`: removes old runs and says how much went.
fn prune(
    history: &History,
    keep_runs: Option<u64>,
    older_than: Option<Duration>,
) -> anyhow::Result<String> {
    if keep_runs.is_none() && older_than.is_none() {
        bail!("prune needs --keep-runs N or --older-than AGE");
    }
    let before = older_than.map(|age| {
        let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let then = sshfleet_core::time::now_unix_ms()
            .saturating_sub(age_ms)
            .max(0);
        sshfleet_core::time::format_rfc3339_millis(then)
    });
    let pruned = history.prune(keep_runs, before.as_deref())?;
    let partitions = match pruned.partitions {
        0 => String::new(),
        n => format!(" ({n} monthly partition(s) dropped whole)"),
    };
    Ok(format!(
        "pruned {} run(s), {} state period(s){partitions}, {} device(s) no longer seen\n",
        pruned.runs, pruned.periods, pruned.devices
    ))
}

/// `history SPOOL push --to URL`: uploads the spooled runs, saying of each as it is done
/// what became of it, then what the push did and what the spool holds afterwards.
fn push(spool: &Path, to: &Path) -> anyhow::Result<String> {
    if !sshfleet_history::is_database(to) {
        bail!(
            "--to {}: push goes to a central history, a postgresql:// URL",
            to.display()
        );
    }
    let central = sshfleet_history::display(to);
    let mut said = |run: &PushedRun| {
        let what = match run.sent {
            Sent::Recorded => format!("pushed as run {}", run.central_run),
            Sent::AlreadyThere => format!(
                "already in the central history as run {}, not recorded again",
                run.central_run
            ),
        };
        let line = format!(
            "spool run {} (started {}, scope {}): {what}; removed from the spool\n",
            run.spool_run,
            run.started_at,
            printable(&run.scope)
        );
        // A reader gone from stdout stops no push.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    };
    let pushed = sshfleet_history::push(spool, to, &mut said).map_err(|failed| match failed.left {
        Some(left) => anyhow::anyhow!(
            "{}; {left} run(s) were not pushed and are left in the spool {}: push again to upload them",
            failed.error,
            spool.display()
        ),
        None => failed.error.into(),
    })?;
    let mut text = format!(
        "pushed {} run(s) of {} to {central}; {} were there already\n",
        pushed.recorded,
        spool.display(),
        pushed.already
    );
    if pushed.unfinished > 0 {
        text.push_str(&format!(
            "{} unfinished run(s) (their process stopped) were left in the spool\n",
            pushed.unfinished
        ));
    }
    if pushed.left == 0 {
        text.push_str(&format!(
            "the spool {} is empty now (the file is kept for the next run that cannot reach the central history)\n",
            spool.display()
        ));
    }
    Ok(text)
}

/// The command line with `history push SPOOL …` (the documented order) read as `history
/// SPOOL push …` (the order of the other history commands, FILE first).
pub fn argv(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let commands = ["runs", "device", "prune", "push"];
    let is = |i: usize, word: &str| args.get(i).is_some_and(|a| a == word);
    let spool_next = args
        .get(3)
        .and_then(|a| a.to_str())
        .is_some_and(|a| !a.starts_with('-') && !commands.contains(&a));
    if is(1, "history") && is(2, "push") && spool_next {
        args.swap(2, 3);
    }
    args
}

/// Writes the text to stdout; a reader that went away (a closed pipe) is no failure.
fn to_stdout(text: &str) -> anyhow::Result<Exit> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Clean),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(Exit::Clean),
    }
}

/// Device text for a terminal: control characters (escape sequences) replaced.
fn printable(s: &str) -> String {
    sshfleet_core::inert::escape(s).into_owned()
}
