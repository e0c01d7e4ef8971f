//! `sshfleet report merge`: shard reports into one fleet view, with proof of coverage.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};

use super::args::{MergeArgs, ReportArgs, ReportCommand};
use super::progress::Progress;
use super::runs::{exit_of, report_failed_in, run_files, say_notes, say_opened};
use super::verbosity::Verbosity;
use super::{resolve, resolve_format, staged_report_output, Exit};
use sshfleet_core::inert;
use sshfleet_engine::advisories::Advisories;
use sshfleet_engine::run::{Completion, Outputs, Run, RunEnd, RunKind, RunSettings, Scope};
use sshfleet_engine::scan::RunStats;
use sshfleet_inventory as inventory;
use sshfleet_inventory::{Inventory, InventoryOptions, Row};
use sshfleet_report as report;
use sshfleet_report::coverage::{Admit, Coverage, CoverageReport};
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::replay::{first_shape, replay_with};
use sshfleet_report::{Schema, Summary};

/// Missing and duplicate rows listed one per line; beyond this they are counted.
const MAX_LISTED: usize = 50;

pub(super) async fn run(args: ReportArgs) -> anyhow::Result<Exit> {
    match args.command {
        ReportCommand::Merge(args) => merge(args).await,
        ReportCommand::Html(args) => super::html::render(args).await,
    }
}

async fn merge(args: MergeArgs) -> anyhow::Result<Exit> {
    let verbosity = args.output.verbosity();
    let mut inputs = open_inputs(&args)?;
    let scope = Scope {
        inventory: &args.inventory,
        devices: &inputs.inventory.rows,
        shard: None,
        limit: None,
    };
    inputs.run.open_history(&scope)?;
    let format = resolve_format(&args.output.output, args.output.format);
    let (report, cut_short) = staged_report_output(format, &inputs.schema, &args.output.output)?;
    let outputs = Outputs {
        reports: vec![report],
        reporter: Arc::new(Progress::new(verbosity)),
        on_failure: OnOutputFailure::Continue,
    };
    let expected = std::mem::take(&mut inputs.expected);
    let pipe = inputs.run.pipeline(outputs, expected.len());
    let read = Reading {
        keys: inputs.schema.extra_keys(),
        advisories: inputs.advisories.clone(),
    };
    let streamed = stream_shards(&inputs.shards, read, expected, pipe, &cut_short).await?;
    let Some((coverage, closed)) = streamed else {
        return Ok(Exit::Usage);
    };
    match closed {
        Ok(summary) => Ok(conclude(&args, &inputs, &summary, &coverage)),
        Err(e) => Ok(report_failed_in(&inputs.run, &e, verbosity)),
    }
}

/// What a merge reads and checks before any output is opened.
struct MergeInputs {
    /// The run: its baseline or history, metrics, page and summary.
    run: Run,
    shards: Vec<PathBuf>,
    /// Shards older than `--max-age`, with their age.
    stale: Vec<(PathBuf, Duration)>,
    inventory: Inventory,
    /// Each inventory row's address and line, for the coverage.
    expected: Vec<(String, u64)>,
    schema: Schema,
    /// The advisories the records are read against (`--advisories`).
    advisories: Advisories,
}

/// What each shard record is read with: the passthrough columns and the advisories.
struct Reading {
    keys: Vec<String>,
    advisories: Advisories,
}

/// Resolves the settings and reads the shard list, the baseline and the inventory (its
/// warnings said unless quiet), refusing what a merge cannot use.
fn open_inputs(args: &MergeArgs) -> anyhow::Result<MergeInputs> {
    let verbosity = args.output.verbosity();
    if args.compliance.waivers.is_some() {
        bail!("--waivers applies where devices are judged (scan, remediate); each shard record keeps the waiver its run gave it");
    }
    // Checked before anything is opened: a file that cannot be used refuses the merge.
    let advisories = super::readback::advisories(args.advisories.as_deref())?;
    let compliance =
        resolve::with_default_spool(resolve::compliance(&args.compliance)?, &args.output.output);
    let mut files = run_files(&args.inventory, None, &compliance, &args.output.output);
    let (kind, shard) = (RunKind::Merge, None);
    let run = Run::open(RunSettings {
        kind,
        compliance: compliance.clone(),
        shard,
    })?;
    let shards = shard_files(&args.shards)?;
    for shard in &shards {
        files.kept("SHARD", Some(shard));
    }
    files.kept("--advisories", args.advisories.as_deref());
    files.check()?;
    let stale = stale_shards(&shards, args.max_age);
    say_opened(&run, verbosity);
    let options = InventoryOptions {
        address_column: args.address_column.clone(),
        ..InventoryOptions::default()
    };
    let inventory = inventory::load(&args.inventory, &options)?;
    if !verbosity.is_quiet() {
        for warning in &inventory.warnings {
            diagln!("warning: {warning}");
        }
    }
    let expected: Vec<(String, u64)> = inventory
        .rows
        .iter()
        .map(|row| expected_row(&row))
        .collect();
    let mut remediation = false;
    for path in &shards {
        remediation |= first_shape(path)?.is_some_and(|s| s.remediation);
    }
    let schema = Schema {
        remediation,
        extra_columns: inventory.extra_columns.clone(),
    };
    Ok(MergeInputs {
        run,
        shards,
        stale,
        inventory,
        expected,
        schema,
        advisories,
    })
}

/// Reads the shards on a blocking thread, each record sent to the writer as it is read,
/// then closes the writer: the coverage and the writer's outcome, or `None` (said) when a
/// shard could not be read.
async fn stream_shards(
    shards: &[PathBuf],
    read: Reading,
    expected: Vec<(String, u64)>,
    pipe: report::RecordPipeline,
    cut_short: &report::CutShort,
) -> anyhow::Result<Option<(CoverageReport, anyhow::Result<Summary>)>> {
    let tx = pipe.sender();
    let files = shards.to_vec();
    let mut coverage = Coverage::new(expected);
    let read = tokio::task::spawn_blocking(move || {
        for (i, path) in files.iter().enumerate() {
            replay_with(path, &read.keys, &read.advisories, |rec, _| {
                if coverage.admit(&rec.address, i) == Admit::Row {
                    // The writer only goes away after a failure it reports itself.
                    let _ = tx.blocking_send(rec);
                }
                Ok(())
            })?;
        }
        Ok::<_, report::read::ReadError>(coverage)
    })
    .await;
    let partial = match &read {
        Ok(Ok(_)) => None,
        _ => cut_short.mark(),
    };
    let closed = report::finish(pipe).await;
    match read {
        Ok(Ok(coverage)) => Ok(Some((coverage.finish(), closed))),
        Ok(Err(e)) => {
            diagln!("error: {}", sshfleet_core::inert::message(&e.to_string()));
            let kept = partial.map_or_else(
                || "the output holds them".to_owned(),
                |p| format!("they are in {}", p.display()),
            );
            diagln!("error: the merge stopped there: nothing was recorded, and of the records read before it {kept}");
            Ok(None)
        }
        Err(e) => bail!("the shard reader failed: {e}"),
    }
}

/// Says the summary, the coverage and the stale shards, records the run (history, metrics,
/// HTML) and gives the exit: a failed output first, then missing coverage, then findings.
fn conclude(
    args: &MergeArgs,
    inputs: &MergeInputs,
    summary: &Summary,
    coverage: &CoverageReport,
) -> Exit {
    let verbosity = args.output.verbosity();
    if !verbosity.is_quiet() {
        diag!("{}", summary.render_text());
    }
    super::readback::say_unknown_advisories(&summary.advisories, args.advisories.as_deref());
    say_coverage(coverage, &inputs.shards, verbosity);
    for (path, age) in &inputs.stale {
        diagln!(
            "stale: {} was last written {} ago, more than --max-age",
            path.display(),
            sshfleet_core::time::human_age(*age)
        );
    }
    let covered = coverage.is_covered() && inputs.stale.is_empty();
    let outcome = inputs.run.finish(RunEnd {
        summary,
        stats: &RunStats::default(),
        completion: if covered {
            Completion::Complete
        } else {
            Completion::Incomplete
        },
        stopped_accounts: &[],
        page_context: format!(
            "merge of {} shard reports of {}",
            inputs.shards.len(),
            args.inventory.display()
        ),
        applied: None,
    });
    say_notes(&outcome.notes, verbosity);
    exit_of(outcome.verdict())
}

/// The shard files: each file given, and the reports in each directory given (sorted, so
/// that which of two duplicates is merged does not depend on the file system).
fn shard_files(given: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in given {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path)
            .with_context(|| format!("cannot list the shard directory {}", path.display()))?;
        let mut found: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let file = entry.path();
            let report = matches!(
                report::Format::from_path(&file),
                Some(report::Format::Jsonl | report::Format::Json | report::Format::Csv)
            );
            if report && file.is_file() {
                found.push(file);
            }
        }
        if found.is_empty() {
            bail!(
                "the shard directory {} holds no report (.jsonl, .json, .csv)",
                path.display()
            );
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Shards whose file is older than `max_age`, with their age.
fn stale_shards(shards: &[PathBuf], max_age: Option<Duration>) -> Vec<(PathBuf, Duration)> {
    let Some(max_age) = max_age else {
        return Vec::new();
    };
    let now = SystemTime::now();
    shards
        .iter()
        .filter_map(|path| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            let age = now.duration_since(modified).unwrap_or_default();
            (age > max_age).then(|| (path.clone(), age))
        })
        .collect()
}

/// The address a row's record carries, and the row's line.
fn expected_row(row: &Row) -> (String, u64) {
    match row {
        Row::Device(device) => (device.address.clone(), device.line),
        Row::Invalid(row) => (row.address.clone(), row.line),
    }
}

/// Coverage is said even with `--quiet` when it fails: it is why the merge exits 1.
fn say_coverage(report: &CoverageReport, shards: &[PathBuf], verbosity: Verbosity) {
    if report.is_covered() {
        if !verbosity.is_quiet() {
            diagln!(
                "coverage: all {} inventory rows, each exactly once, from {} shard report(s)",
                report.expected,
                shards.len()
            );
        }
        return;
    }
    diagln!(
        "coverage: NOT COVERED: {} of {} inventory rows merged; {} missing, {} duplicated, {} not in the inventory",
        report.merged,
        report.expected,
        report.missing.len(),
        report.duplicates.len(),
        report.extra_count
    );
    say_gaps(report, shards);
}

/// The rows missing, merged twice or not in the inventory, at most [`MAX_LISTED`] of each.
fn say_gaps(report: &CoverageReport, shards: &[PathBuf]) {
    let shard = |i: usize| {
        shards
            .get(i)
            .map_or_else(String::new, |p| p.display().to_string())
    };
    for m in report.missing.iter().take(MAX_LISTED) {
        diagln!("missing: line {} {}", m.line, inert::line(&m.address));
    }
    say_more("missing", report.missing.len() as u64);
    for d in report.duplicates.iter().take(MAX_LISTED) {
        let list: Vec<String> = d.shards.iter().map(|&i| shard(i)).collect();
        diagln!(
            "duplicate: line {} {} in {} (the first is merged)",
            d.line,
            inert::line(&d.address),
            list.join(", ")
        );
    }
    say_more("duplicate", report.duplicates.len() as u64);
    for (address, i) in report.extra.iter().take(MAX_LISTED) {
        diagln!(
            "not in the inventory: {} in {} (left out)",
            inert::line(address),
            shard(*i)
        );
    }
    say_more("not in the inventory", report.extra_count);
}

/// `label: … and N more` when more than [`MAX_LISTED`] were found.
fn say_more(label: &str, found: u64) {
    let listed = MAX_LISTED as u64;
    if found > listed {
        diagln!("{label}: … and {} more", found - listed);
    }
}
