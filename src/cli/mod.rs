//! The command line: clap types, per-command wiring, and the only code that prints to the
//! terminal (progress bars, summaries, warnings) or chooses the exit code.

// Diagnostics never stop a run: stderr may be full, closed or a dead pipe, and the report
// matters more than any message about it. These stand in for `eprint!`/`eprintln!`, which
// panic when the write fails (the lint below keeps them out of this module).
#![deny(clippy::print_stderr)]

/// `eprint!` whose write may fail without consequence.
macro_rules! diag {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stderr().lock(), $($arg)*);
    }};
}

/// `eprintln!` whose write may fail without consequence.
macro_rules! diagln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod args;
pub use history::argv;
mod demo;
mod diff;
mod equinix;
mod fleet;
mod history;
mod html;
mod html_source;
mod notify;
mod progress;
mod readback;
mod remediate;
mod reports;
mod resolve;
mod runs;
mod scan;
mod sim;
mod table;
mod tty;
mod verbosity;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
pub use args::Cli;
use args::Command;
use verbosity::Verbosity;

use sshfleet_core::shutdown::{self, Shutdown, ShutdownTrigger};
use sshfleet_report as report;
use sshfleet_report::{Format, ReportError};

/// The exit codes of `docs/design.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; every device ok and compliant.
    Clean = 0,
    /// Done, with findings: non-compliant devices or devices that could not be checked.
    Findings = 1,
    /// Usage or input error; nothing done.
    Usage = 2,
    /// Remediation stopped early on purpose (the failure budget was exceeded): rerun with
    /// the journal to continue.
    Stopped = 3,
    /// Work was done, but an output could not be written in full: the report, or the
    /// remediation journal (writes then stop). Stderr names which and why.
    OutputFailed = 4,
    /// Interrupted; outputs flushed.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Runs a parsed command line to completion.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(verbosity(&cli.command));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            diagln!("error: cannot start the async runtime: {e}");
            return Exit::Usage.into();
        }
    };
    let result = runtime.block_on(dispatch(cli.command));
    // Do not wait for lingering connection tasks (idle pooled sockets, hung devices).
    runtime.shutdown_background();
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            diagln!(
                "error: {}",
                sshfleet_core::inert::message(&format!("{e:#}"))
            );
            Exit::Usage.into()
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Scan(args) => scan::run(args).await,
        Command::Remediate(args) => remediate::run(*args).await,
        Command::Sim(args) => sim::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Equinix(args) => equinix::run(args).await,
        Command::Diff(args) => diff::run(args),
        Command::History(args) => history::run(args),
        Command::Report(args) => reports::run(args).await,
    }
}

fn verbosity(command: &Command) -> u8 {
    match command {
        Command::Scan(a) => a.output.verbose,
        Command::Remediate(a) => a.output.verbose,
        Command::Equinix(a) => equinix::log_level(a),
        Command::Sim(a) => a.verbose,
        Command::Demo(_) => 0,
        Command::Diff(a) => a.output.verbose,
        Command::History(_) => 0,
        Command::Report(a) => match &a.command {
            args::ReportCommand::Merge(m) => m.output.verbose,
            args::ReportCommand::Html(_) => 0,
        },
    }
}

/// Tracing to stderr: warnings by default, more with -v, RUST_LOG when set.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "sshfleet=info,warn",
        _ => "sshfleet=debug,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(inert_fields())
        .with_writer(io::stderr)
        // Its own report of a failed write is an `eprintln!`, which would panic on the very
        // stderr that just failed.
        .log_internal_errors(false)
        .with_target(false)
        // Colour codes only for a person at a terminal, not in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
}

/// Every field of every log line and span (a site, a realm, an error quoting a device) made
/// inert: control characters shown as escapes, never sent to the terminal as they are.
fn inert_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        match field.name() {
            "message" => write!(w, "{}", sshfleet_core::inert::Inert(&text)),
            name => write!(w, "{name}={}", sshfleet_core::inert::Inert(&text)),
        }
    })
    .delimited(" ")
}

/// What the first Ctrl-C stops: told to the user in the `interrupted: …` line.
#[derive(Clone, Copy, Debug)]
enum Stopping {
    /// Scans and remediations: no new device starts, those in flight finish.
    Devices,
    /// An Equinix listing: pages in flight are abandoned; the users written are kept.
    Pages,
    /// The demo: its scan finishes the devices in flight, its listing abandons its pages.
    Demo,
    /// The bulk detach: no new detach starts, those in flight finish.
    Detaches,
    /// Nothing is said (the simulator).
    Quietly,
}

impl Stopping {
    fn message(self) -> Option<&'static str> {
        match self {
            Stopping::Devices => Some("finishing devices in flight"),
            Stopping::Pages => Some(
                "stopping the listing: pages in flight are abandoned; the report keeps the users written so far",
            ),
            Stopping::Demo => Some(
                "finishing cameras in flight, abandoning Equinix pages in flight; the reports keep what was written so far",
            ),
            Stopping::Detaches => Some("finishing the detaches in flight"),
            Stopping::Quietly => None,
        }
    }
}

/// The first SIGINT/SIGTERM asks for a graceful stop; the second aborts at once. The signals
/// are registered before this returns, so that no request can start while a Ctrl-C would
/// still kill the process outright.
fn install_signal_handlers(
    verbosity: Verbosity,
    stopping: Stopping,
) -> (ShutdownTrigger, Shutdown) {
    let (trigger, shutdown) = shutdown::channel();
    let handler = trigger.clone();
    let mut signals = StopSignals::register();
    tokio::spawn(async move {
        signals.next().await;
        if let Some(message) = stopping.message().filter(|_| !verbosity.is_quiet()) {
            diagln!("\ninterrupted: {message} (press Ctrl-C again to abort)");
        }
        handler.trigger();
        signals.next().await;
        std::process::exit(Exit::Interrupted as i32);
    });
    (trigger, shutdown)
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), listened to from the moment of registration.
struct StopSignals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            let interrupt = async {
                match &mut self.interrupt {
                    Some(signal) => drop(signal.recv().await),
                    None => drop(tokio::signal::ctrl_c().await),
                }
            };
            let terminate = async {
                match &mut self.terminate {
                    Some(signal) => drop(signal.recv().await),
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = interrupt => {}
                () = terminate => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The report format: explicit, else from the extension, else JSON Lines.
fn resolve_format(path: &Path, explicit: Option<Format>) -> Format {
    explicit
        .or_else(|| Format::from_path(path))
        .unwrap_or(Format::Jsonl)
}

/// The format of an output that is not a device report (Equinix rows, diff rows): JUnit's
/// one-test-case-per-device has no meaning there.
fn resolve_table_format(path: &Path, explicit: Option<Format>) -> anyhow::Result<Format> {
    let format = resolve_format(path, explicit);
    let name = match format {
        Format::Junit => "JUnit",
        Format::Ocsf => "OCSF",
        _ => return Ok(format),
    };
    anyhow::bail!(
        "{name} output is for device reports (scan, remediate): give --format csv, jsonl or json"
    )
}

/// A device report output of `format` at `path` (`-` is stdout), named by its path in errors.
fn report_output(
    format: Format,
    schema: &report::Schema,
    path: &Path,
) -> anyhow::Result<report::RecordOutput> {
    let writer = report::writer(format, schema, open_output(path)?);
    let named = report::named(output_name(path), writer);
    Ok(report::moved_aside_on_failure(path, named))
}

/// As [`report_output`], written under a temporary name beside `path` and renamed over it
/// when complete ([`report::staged`]); stdout, a device or a symbolic link is written as it
/// is, as before.
fn staged_report_output(
    format: Format,
    schema: &report::Schema,
    path: &Path,
) -> anyhow::Result<(report::RecordOutput, report::CutShort)> {
    let regular = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.is_file(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    if path.as_os_str() == "-" || !regular {
        let output = report_output(format, schema, path)?;
        return Ok((output, report::CutShort::default()));
    }
    let staged = sshfleet_core::files::Staged::beside(path)
        .with_context(|| format!("cannot create a temporary beside {}", path.display()))?;
    let file = staged.handle()?;
    let out = Box::new(BufWriter::with_capacity(64 * 1024, file));
    let named = report::named(output_name(path), report::writer(format, schema, out));
    Ok(report::staged(staged, named))
}

/// What an output is called in messages: its path, or `stdout`.
fn output_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdout".to_owned()
    } else {
        path.display().to_string()
    }
}

/// Opens a report destination; `-` is stdout.
fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())));
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(64 * 1024, file)))
}

/// A report that failed after work was done: said on stderr (even with `--quiet`, it is an
/// error), an exit of its own. A reader gone from stdout (`| head`) ends the run quietly.
fn report_failed(error: &anyhow::Error) -> Exit {
    if is_broken_pipe(error) {
        return Exit::Clean;
    }
    diagln!(
        "error: {}",
        sshfleet_core::inert::message(&format!("{error:#}"))
    );
    Exit::OutputFailed
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<ReportError>()
            .is_some_and(ReportError::is_broken_pipe)
            || cause
                .downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ctrl_c_says_what_it_stops_for_each_kind_of_run() {
        let said = |s: Stopping| s.message().unwrap_or_default();
        assert_eq!(said(Stopping::Devices), "finishing devices in flight");
        // A listing finishes no device and keeps no page in flight: it keeps what it wrote.
        let pages = said(Stopping::Pages);
        assert!(pages.contains("pages in flight are abandoned"), "{pages}");
        assert!(pages.contains("users written so far"), "{pages}");
        assert!(!pages.contains("devices"), "{pages}");
        let demo = said(Stopping::Demo);
        assert!(
            demo.contains("cameras in flight") && demo.contains("Equinix pages"),
            "{demo}"
        );
        assert_eq!(Stopping::Quietly.message(), None);
    }
}
