//! `ssh-users list`: the concurrent listing streamed through a writer thread into the
//! report, the summary and warnings on stderr, exit 1 when users carry audit flags.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::super::args::ListArgs;
use super::super::{
    install_signal_handlers, open_output, output_name, resolve_table_format, Exit, Stopping,
};
use super::{connect_until, exit_for};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_equinix::{EquinixError, ListFilter, ListingStats, PageFetcher};
use sshfleet_report::pipeline::{Named, OnOutputFailure, OutputError, Pipeline};
use sshfleet_report::ssh_users::{TableWriter, UserRow, UserSummary, Users};

/// A finished listing: how paging went and what the report holds.
pub(crate) struct Listing {
    pub stats: ListingStats,
    pub summary: UserSummary,
    pub elapsed: Duration,
    /// An output failed (a closed stdout included).
    pub output_error: Option<OutputError>,
}

pub(in super::super) async fn run(args: ListArgs) -> anyhow::Result<Exit> {
    let concurrency = args.page_concurrency as usize;
    // Listening before anything is sent: a Ctrl-C during the token request or the first
    // page ends the run too. Settings are checked before the output is created.
    let (_trigger, shutdown) = install_signal_handlers(args.api.verbosity(), Stopping::Pages);
    let client = connect_until(&args.api, concurrency, None, shutdown.clone())?;
    let format = resolve_table_format(&args.api.output, args.api.format)?;
    let (report, abandon) = ReportFile::open(&args.api.output)?;
    let output = TableWriter::new(format, report);
    let sinks = vec![Named::new(output_name(&args.api.output), output)];
    let filter = ListFilter {
        username: args.username.clone(),
        device_uuid: args.device.clone(),
        verbose: args.verbose,
        account_ucm_id: args.account.clone(),
    };
    let fetcher = PageFetcher::new(client, filter, args.page_size, concurrency);
    // A listing that failed before its first page writes nothing: an earlier report stays.
    let nothing_listed = |stats: &ListingStats| {
        if stats.pages == 0 && stats.error.is_some() {
            abandon.store(true, Ordering::Relaxed);
        }
    };
    let mut listing = run_listing_then(fetcher, sinks, shutdown, nothing_listed).await?;
    if let Some(e) = listing.output_error.take() {
        if e.is_broken_pipe() {
            return Ok(Exit::Clean);
        }
        return Err(e.into());
    }
    if listing.stats.pages == 0 {
        if let Some(e) = &listing.stats.error {
            diagln!("error: {e}");
            diagln!("nothing was listed; no report was written");
            return Ok(exit_code(&listing));
        }
    }
    if !args.api.verbosity().is_quiet() {
        diag!("{}", listing.summary.render_text());
        diag!("{}", describe(&listing, args.page_size, concurrency));
    }
    if let Some(e) = &listing.stats.error {
        // Printed even with -q: an incomplete report must never pass for a whole one.
        diagln!("{}", incomplete(e, listing.stats.users));
    }
    Ok(exit_code(&listing))
}

/// Runs a listing into `sinks` through the report pipeline. An output that fails closes
/// the channel, which ends the listing: what was already listed is still written elsewhere.
pub(crate) async fn run_listing(
    fetcher: PageFetcher,
    sinks: Vec<Named<TableWriter<UserRow>>>,
    shutdown: Shutdown,
) -> anyhow::Result<Listing> {
    run_listing_then(fetcher, sinks, shutdown, |_| {}).await
}

/// [`run_listing`], with `listed` told how the listing went before the outputs close.
async fn run_listing_then(
    fetcher: PageFetcher,
    sinks: Vec<Named<TableWriter<UserRow>>>,
    shutdown: Shutdown,
    listed: impl FnOnce(&ListingStats),
) -> anyhow::Result<Listing> {
    let started = Instant::now();
    let pipe = Pipeline::start(Users::default(), sinks, OnOutputFailure::CloseChannel);
    let stats = fetcher.run(pipe.sender(), shutdown).await;
    listed(&stats);
    let closed = pipe.close().await?;
    Ok(Listing {
        stats,
        summary: closed.summary,
        elapsed: started.elapsed(),
        output_error: closed.failure,
    })
}

/// The report destination, created at its first byte (stdout as it is): what a listing
/// writes is buffered, and nothing at all once abandoned.
struct ReportFile {
    path: PathBuf,
    file: Option<Box<dyn Write + Send>>,
    abandoned: Arc<AtomicBool>,
}

impl ReportFile {
    /// The destination, and the switch that abandons it before its first byte.
    fn open(path: &Path) -> anyhow::Result<(Box<dyn Write + Send>, Arc<AtomicBool>)> {
        let abandoned = Arc::new(AtomicBool::new(false));
        if path.as_os_str() == "-" {
            return Ok((open_output(path)?, abandoned));
        }
        writable(path).with_context(|| format!("cannot create {}", path.display()))?;
        let file = ReportFile {
            path: path.to_owned(),
            file: None,
            abandoned: abandoned.clone(),
        };
        Ok((Box::new(file), abandoned))
    }

    fn file(&mut self) -> io::Result<&mut Box<dyn Write + Send>> {
        if self.file.is_none() {
            let opened = open_output(&self.path).map_err(io::Error::other)?;
            self.file = Some(opened);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("report not open"))
    }
}

/// Whether `path` can be written, checked without changing it: an existing file opened
/// for appending, else its directory.
fn writable(path: &Path) -> io::Result<()> {
    if path.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if std::fs::metadata(parent)?.is_dir() {
        Ok(())
    } else {
        Err(io::Error::other("its directory is not a directory"))
    }
}

impl Write for ReportFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() || (self.file.is_none() && self.abandoned.load(Ordering::Relaxed)) {
            return Ok(buf.len());
        }
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// The paging lines of the stderr summary, warnings included.
pub(crate) fn describe(listing: &Listing, page_size: u64, concurrency: usize) -> String {
    let stats = &listing.stats;
    let at_once = match stats.narrowed_to {
        // The byte budget of the window, not the page concurrency, set the pace.
        Some(n) => format!(
            "{n} at a time, not {concurrency}: pages of up to {:.1} MiB",
            stats.largest_page_bytes as f64 / (1024.0 * 1024.0)
        ),
        None => format!("{concurrency} at a time"),
    };
    let mut text = format!(
        "listed {} users in {} pages ({} per page, {at_once}) in {:.2}s\n",
        stats.users,
        stats.pages,
        page_size,
        listing.elapsed.as_secs_f64()
    );
    if stats.total_changed {
        text.push_str(&format!(
            "warning: the API's total changed during the listing ({} -> {}); {} repeated users \
             were dropped{}; users added or removed meanwhile may be missing or gone\n",
            count(stats.first_total),
            count(stats.last_total),
            stats.duplicates,
            if stats.rechecked {
                format!(
                    ", and a second pass one page at a time found {} more",
                    stats.recovered
                )
            } else {
                String::new()
            }
        ));
    }
    if stats.interrupted {
        text.push_str(&format!(
            "interrupted: the report holds the {} users listed before the stop; pages in flight were abandoned\n",
            stats.users
        ));
    }
    text
}

/// Why the listing is incomplete: a warning when the API's answers contradict each other
/// (every call succeeded), an error when a call failed.
fn incomplete(error: &EquinixError, listed: u64) -> String {
    let kind = match error {
        EquinixError::NoProgress { .. }
        | EquinixError::EndedEarly { .. }
        | EquinixError::Inexact { .. } => "warning",
        _ => "error",
    };
    format!(
        "{kind}: {error}\nthe listing is incomplete: the report holds the {listed} users listed before it stopped"
    )
}

fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "unknown".to_owned(), |n| n.to_string())
}

fn exit_code(listing: &Listing) -> Exit {
    let stats = &listing.stats;
    if stats.interrupted {
        Exit::Interrupted
    } else if let Some(e) = &stats.error {
        if stats.pages == 0 {
            exit_for(e)
        } else {
            Exit::Findings
        }
    } else if listing.summary.flagged > 0 {
        Exit::Findings
    } else {
        Exit::Clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(stats: ListingStats) -> Listing {
        Listing {
            stats,
            summary: UserSummary::new(),
            elapsed: Duration::ZERO,
            output_error: None,
        }
    }

    #[test]
    fn the_summary_says_when_large_pages_narrowed_the_window() {
        let narrowed = listing(ListingStats {
            pages: 3,
            users: 250,
            narrowed_to: Some(2),
            largest_page_bytes: 30 * 1024 * 1024,
            ..ListingStats::default()
        });
        let text = describe(&narrowed, 100, 8);
        assert!(
            text.starts_with(
                "listed 250 users in 3 pages (100 per page, 2 at a time, not 8: pages of up to 30.0 MiB)"
            ),
            "{text}"
        );
        let text = describe(&listing(ListingStats::default()), 100, 8);
        assert!(text.contains("(100 per page, 8 at a time)"), "{text}");
    }

    #[test]
    fn a_listing_short_of_the_total_is_a_warning_and_exit_1() {
        let short = EquinixError::EndedEarly {
            offset: 100,
            listed: 100,
            total: 1_000,
        };
        let text = incomplete(&short, 100);
        assert!(
            text.starts_with("warning: the page at offset 100"),
            "{text}"
        );
        assert!(
            text.ends_with("holds the 100 users listed before it stopped"),
            "{text}"
        );
        let stats = ListingStats {
            pages: 2,
            users: 100,
            error: Some(short),
            ..ListingStats::default()
        };
        assert_eq!(exit_code(&listing(stats)), Exit::Findings);
        let failed = EquinixError::Page {
            offset: 300,
            source: Box::new(EquinixError::InvalidInput {
                what: "x",
                value: "y".into(),
                reason: "z",
            }),
        };
        assert!(incomplete(&failed, 300).starts_with("error: page at offset 300"));
    }
}
