//! `sshfleet remediate`: plan by default; with `--apply` (and confirmation) write under the
//! limits with a journal, then report every device with what was done and verified.
//!
//! A run goes in three steps: [`Setup::open`] reads and checks everything before the first
//! request (a refusal is exit 2 with nothing sent); [`stream`] plans, then writes the plan
//! file or applies the plan in waves, every record through the report pipeline; [`conclude`]
//! says what happened and picks the exit code.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::bail;

use super::args::RemediateArgs;
use super::notify::Notifier;
use super::progress::Progress;
use super::runs::{
    exit_of, report_failed_in, report_interruption, report_stopped_accounts, report_waivers,
    run_files, say_notes, say_opened, say_warnings,
};
use super::verbosity::Verbosity;
use super::{install_signal_handlers, report_output, resolve, Exit, Stopping};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::remediate::{
    planned_device, Journal, JournalFailure, JournalHeader, Planned, Recovered, Remediator,
    Staging, WaveQuestion,
};
use sshfleet_engine::run::{
    Completion, Outputs, Run, RunEnd, RunKind, RunOutcome, RunSettings, Scope,
};
use sshfleet_engine::scan::RunStats;
use sshfleet_engine::settings::{PreparedScan, ProcessEnv, RemediateSettings};
use sshfleet_engine::waivers::Waivers;
use sshfleet_inventory::Rows;
use sshfleet_net::breaker::StoppedAccount;
use sshfleet_report as report;
use sshfleet_report::pipeline::OnOutputFailure;
use sshfleet_report::{
    DeviceRecord, RecordPipeline, RecordSinks, Reporter, Schema, SshState, Stop, Summary,
};
use sshfleet_rollout::journal::{read_journal, BudgetStop};
use sshfleet_rollout::opening::{
    check_plan, ssh_target, Asked, Continuing, Opened, PlanRun, Source, Subject,
};
use sshfleet_rollout::plan::{load_approved, Plan};
use sshfleet_rollout::signature::signature_of;

pub(super) async fn run(args: RemediateArgs) -> anyhow::Result<Exit> {
    let recorded = recorded(&args)?;
    let settings = resolve::remediate(&args, recorded.as_ref(), &ProcessEnv)?;
    check_files(&args, &settings)?;
    let verbosity = args.output.verbosity();
    let has_previous =
        settings.compliance.baseline.is_some() || settings.compliance.history.is_some();
    let (notifier, collector) = Notifier::open(&args.notify, "remediate", has_previous)?.unzip();
    let (mut setup, work) = Setup::open(&settings, verbosity)?;
    let report = super::runs::report_output(&args.output, &setup.schema)?;
    let (trigger, shutdown) = install_signal_handlers(verbosity, Stopping::Devices);
    let progress = Arc::new(Progress::new(verbosity));
    if settings.confirm_waves {
        let (asker, target) = (progress.clone(), settings.target);
        setup.staging.confirm = Some(Arc::new(move |question| {
            asker.suspend(|| confirm_wave(question, target))
        }));
    }
    let outputs = Outputs {
        reports: std::iter::once(report).chain(collector).collect(),
        reporter: progress.clone(),
        on_failure: OnOutputFailure::Stop(trigger),
    };
    let pipe = setup
        .run
        .pipeline(outputs, work.devices.len() + work.invalid.len());
    let confirm = |count| progress.suspend(|| confirm(count, settings.target));
    let streamed = stream(
        &settings, &mut setup, work, &pipe, &confirm, shutdown, verbosity,
    )
    .await?;
    let closed = report::finish(pipe).await;
    let concluded = Concluded {
        settings: &settings,
        setup: &setup,
        streamed: &streamed,
        verbosity,
    };
    let exit = concluded.exit(closed);
    if let Some(notifier) = notifier {
        notifier.send(setup.run.waivers(), verbosity).await;
    }
    Ok(exit)
}

/// A run of `settings` into one report with nobody to ask (the demo's plan, and its apply
/// with `assume_yes`): the same setup, plan, waves and journal as `remediate`.
pub(super) async fn unattended(
    settings: &RemediateSettings,
    output: &Path,
    format: report::Format,
    reporter: Arc<dyn Reporter>,
) -> anyhow::Result<Summary> {
    if settings.apply && !settings.assume_yes {
        bail!("an unattended run writes only when told --yes");
    }
    let (mut setup, work) = Setup::open(settings, Verbosity::Quiet)?;
    let outputs = vec![report_output(format, &setup.schema, output)?];
    let total = work.devices.len() + work.invalid.len();
    let sinks = RecordSinks::new(outputs, reporter);
    let pipe = report::record_pipeline(sinks, total, OnOutputFailure::Continue);
    let never = |_| false;
    stream(
        settings,
        &mut setup,
        work,
        &pipe,
        &never,
        Shutdown::never(),
        Verbosity::Quiet,
    )
    .await?;
    report::finish(pipe).await
}

/// What `--plan` or `--revert` records of the run that applies it (read again, and checked
/// whole, by [`Setup::open`]).
fn recorded(args: &RemediateArgs) -> anyhow::Result<Option<resolve::Recorded>> {
    if let Some(path) = &args.plan {
        let plan = Plan::load(path, args.plan_max_age)?;
        let target = ssh_target(&plan.target, Source::Plan, path)?;
        return Ok(Some(resolve::Recorded {
            source: format!("the plan {}", path.display()),
            inventory: Some(plan.inventory.into()),
            target,
            shard: plan.shard,
            limit: plan.limit,
        }));
    }
    let Some(path) = &args.revert else {
        return Ok(None);
    };
    let (header, _) = read_journal(path)?;
    let reverted = ssh_target(&header.target, Source::Journal, path)?;
    // The revert puts back the state before the reverted run.
    let target = SshState::from_enabled(!reverted.is_enabled());
    Ok(Some(resolve::Recorded {
        source: format!("reverting the journal {}", path.display()),
        inventory: header.inventory_path.map(Into::into),
        target,
        shard: header.shard,
        limit: header.limit,
    }))
}

/// No output may be the inventory, the plan applied, the journal reverted or kept, or
/// another output: each is refused (exit 2) before anything is read.
fn check_files(args: &RemediateArgs, settings: &RemediateSettings) -> anyhow::Result<()> {
    let mut files = run_files(
        &settings.device.inventory,
        args.device.password_file.as_deref(),
        &settings.compliance,
        &args.output.output,
    );
    // A revert's own journal over the reverted one is refused by `check_revert`, which
    // says what to give instead.
    let reverted = |journal: &Path| {
        settings
            .revert
            .as_deref()
            .is_some_and(|r| sshfleet_core::files::same_file(r, journal))
    };
    let journal = Some(settings.journal.as_path()).filter(|j| settings.apply && !reverted(j));
    files
        .kept("--plan", settings.plan.as_deref())
        .kept("--plan-signers", settings.plan_signers.as_deref())
        .kept("--revert", settings.revert.as_deref())
        .written("--plan-out", settings.plan_out.as_deref())
        .written("--journal", journal);
    Ok(files.check()?)
}

/// The saved plan: sealed, not too old, and signed by an approver when `--plan-signers`
/// names them (who signed is said).
fn load_plan(
    path: &Path,
    settings: &RemediateSettings,
    verbosity: Verbosity,
) -> anyhow::Result<Plan> {
    let signers = settings.plan_signers.as_deref();
    let (plan, signer) = load_approved(path, settings.plan_max_age, signers)?;
    say_approval(path, signer.as_deref(), verbosity);
    Ok(plan)
}

/// Who signed the plan, or that a signature beside it was not checked.
pub(super) fn say_approval(path: &Path, signer: Option<&str>, verbosity: Verbosity) {
    if verbosity.is_quiet() {
        return;
    }
    if let Some(signer) = signer {
        diagln!("plan {}: signed by {signer}", path.display());
    } else if signature_of(path).is_file() {
        diagln!(
            "warning: the signature {} was not checked: give --plan-signers FILE",
            signature_of(path).display()
        );
    }
}

/// Everything read and checked before the first request.
struct Setup {
    /// The run: its baseline or history, waivers, metrics, page and summary.
    run: Run,
    remediator: Arc<Remediator>,
    schema: Schema,
    staging: Staging,
    /// A run stopped by its failure budget goes on (`--continue-after-failures`).
    continuing: bool,
    /// The plan this dry run writes (`--plan-out`).
    new_plan: Option<Plan>,
}

/// What the run goes through: the rows judged already, the devices, what the journal knew.
struct Work {
    invalid: Vec<DeviceRecord>,
    devices: Rows,
    recovered: Recovered,
}

impl Setup {
    /// Opens the run (metrics, baseline, waivers), the saved plan, the inventory, the
    /// journal and the history, in that order; the first that cannot be used refuses the run.
    fn open(settings: &RemediateSettings, verbosity: Verbosity) -> anyhow::Result<(Setup, Work)> {
        let target = settings.target;
        let mut run = open_run(settings, verbosity)?;
        let saved = match &settings.plan {
            Some(path) => Some(load_plan(path, settings, verbosity)?),
            None => None,
        };
        let mut prepared = settings.device.build(&ProcessEnv)?;
        say_warnings(&prepared, verbosity);
        prepared.scanner = run.waive(prepared.scanner);
        let reverted = check_sources(settings, saved.as_ref(), &prepared)?;
        let applies = match (&saved, &reverted) {
            (Some(plan), _) => Some(format!("sha256:{}", plan.checksum)),
            (None, Some(reverted)) => Some(format!("revert:{}", reverted.run)),
            (None, None) => None,
        };
        let (journal, mut recovered) = open_journal(settings, &prepared, applies, verbosity)?;
        let (staging, continuing) = staging(settings, &mut recovered)?;
        run.open_history(&Scope::of(&settings.device.inventory, &prepared))?;
        let new_plan = settings.plan_out.as_ref().map(|_| {
            let shard = prepared.shard.map(|s| s.to_string());
            let inventory = Path::new(&absolute(&settings.device.inventory)).to_owned();
            let mut plan = Plan::new(&inventory, prepared.fingerprint(), target.as_str(), shard);
            plan.limit = settings.device.limit.as_ref().map(|l| l.to_string());
            plan
        });
        let schema = Schema {
            remediation: true,
            extra_columns: prepared.extra_columns.clone(),
        };
        let PreparedScan {
            scanner,
            devices,
            invalid,
            ..
        } = prepared;
        let sites: HashSet<String> = devices.devices().map(|d| d.site).collect();
        let remediator = Remediator::new(scanner, target, &settings.limits, sites, journal);
        let remediator = with_options(remediator, settings, saved, reverted.as_ref());
        let setup = Setup {
            run,
            remediator: Arc::new(remediator),
            schema,
            staging,
            continuing,
            new_plan,
        };
        let work = Work {
            invalid,
            devices,
            recovered,
        };
        Ok((setup, work))
    }
}

/// The run of `remediate` or `remediate --apply` to its target: metrics, baseline and
/// waivers checked and read (an empty baseline said unless quiet).
fn open_run(settings: &RemediateSettings, verbosity: Verbosity) -> anyhow::Result<Run> {
    let kind = RunKind::Remediate {
        target: settings.target,
        apply: settings.apply,
    };
    let compliance = settings.compliance.clone();
    let run = Run::open(RunSettings {
        kind,
        compliance,
        shard: settings.device.shard,
    })?;
    say_opened(&run, verbosity);
    Ok(run)
}

/// A saved plan and a reverted journal must be of this inventory, shard and target; the
/// journal's devices to put back.
fn check_sources(
    settings: &RemediateSettings,
    saved: Option<&Plan>,
    prepared: &PreparedScan,
) -> anyhow::Result<Option<Reverted>> {
    if let (Some(plan), Some(path)) = (saved, &settings.plan) {
        let run = PlanRun {
            target: settings.target,
            shard: prepared.shard.map(|s| s.to_string()),
            fingerprint: &prepared.fingerprint(),
        };
        check_plan(plan, path, &run)?;
    }
    match &settings.revert {
        Some(path) => Ok(Some(check_revert(settings, path, prepared)?)),
        None => Ok(None),
    }
}

/// The remediator held to the saved plan, reverting a journal, or inside the window.
fn with_options(
    mut remediator: Remediator,
    settings: &RemediateSettings,
    saved: Option<Plan>,
    reverted: Option<&Reverted>,
) -> Remediator {
    if let Some(plan) = saved {
        remediator = remediator.with_plan(plan);
    }
    if let Some(reverted) = reverted {
        remediator = remediator.with_revert(&reverted.recovered, reverted.target);
    }
    if let Some(window) = settings.window.clone() {
        remediator = remediator.with_window(window);
    }
    remediator
}

/// The waves of this run, and whether it continues one its failure budget stopped (which
/// only `--continue-after-failures` allows).
fn staging(
    settings: &RemediateSettings,
    recovered: &mut Recovered,
) -> anyhow::Result<(Staging, bool)> {
    let asked = Asked {
        waves: settings.waves.clone(),
        max_failures: settings.max_failures,
        pause: settings.wave_pause,
        continue_after_failures: settings.continue_after_failures,
    };
    let (staging, continuing) = asked.staging(recovered, Subject::Devices)?;
    Ok((staging, continuing == Continuing::AfterBudgetStop))
}

/// What the plan and apply phases did.
#[derive(Default)]
struct Streamed {
    stats: RunStats,
    /// `--max-changes` refused the plan.
    refused: bool,
    budget_stop: Option<BudgetStop>,
    /// A wave was not confirmed.
    declined: bool,
}

/// Plans every device, then writes the plan file (`--plan-out`) or applies the plan; every
/// record goes through `pipe`.
async fn stream(
    settings: &RemediateSettings,
    setup: &mut Setup,
    work: Work,
    pipe: &RecordPipeline,
    confirm: &dyn Fn(usize) -> bool,
    shutdown: Shutdown,
    verbosity: Verbosity,
) -> anyhow::Result<Streamed> {
    pipe.send_all(work.invalid).await;
    let (mut planned, stats) = setup
        .remediator
        .plan(
            work.devices,
            work.recovered,
            settings.planning(),
            pipe.sender(),
            shutdown.clone(),
        )
        .await;
    let mut streamed = Streamed {
        stats,
        ..Streamed::default()
    };
    if let Some(warning) = planned.warning() {
        diagln!("warning: {warning}");
    }
    save_plan(settings, setup, &mut planned, pipe, &stats, verbosity).await?;
    if settings.apply && !stats.interrupted && !planned.is_empty() {
        apply(
            settings,
            setup,
            planned,
            pipe,
            confirm,
            shutdown,
            &mut streamed,
        )
        .await;
    } else {
        // Stopped while planning: what was planned is reported, not written.
        let out = pipe.sender();
        setup.remediator.report_stopped(planned.rest(), &out).await;
    }
    if settings.apply && !streamed.cut_short(setup) {
        setup.remediator.journal_finished();
    }
    Ok(streamed)
}

/// With `--plan-out`, every planned write goes into the saved plan (and its record to the
/// reports) instead of being applied.
async fn save_plan(
    settings: &RemediateSettings,
    setup: &mut Setup,
    planned: &mut Planned,
    pipe: &RecordPipeline,
    stats: &RunStats,
    verbosity: Verbosity,
) -> anyhow::Result<()> {
    let (Some(plan), Some(path)) = (setup.new_plan.as_mut(), &settings.plan_out) else {
        return Ok(());
    };
    let target = settings.target;
    let records = planned.rest().map(|write| match write {
        Ok(write) => {
            plan.devices.push(planned_device(&write));
            write.record
        }
        // Not in the plan, so never written by it; its record says why.
        Err(unread) => unread.record(target),
    });
    pipe.send_all(records).await;
    write_plan(plan, path, setup.run.waivers(), stats, verbosity)
}

impl Streamed {
    /// The run stopped before it went through every device: its journal's run is resumed.
    fn cut_short(&self, setup: &Setup) -> bool {
        self.stats.interrupted
            || self.budget_stop.is_some()
            || self.declined
            || setup.remediator.deferred_by_window() > 0
    }
}

/// `--plan-out`: the plan of this dry run, for review; none when the run was interrupted.
fn write_plan(
    plan: &mut Plan,
    path: &Path,
    waivers: Option<&Waivers>,
    stats: &RunStats,
    verbosity: Verbosity,
) -> anyhow::Result<()> {
    if let Some(waivers) = waivers {
        plan.waivers = waivers.report().used.iter().map(|u| u.0.clone()).collect();
    }
    if stats.interrupted {
        diagln!("interrupted: no plan written (a plan must cover every device)");
        return Ok(());
    }
    plan.write(path)?;
    if !verbosity.is_quiet() {
        diagln!(
            "plan of {} write(s) written to {}; apply it with: sshfleet remediate --plan {} --apply",
            plan.devices.len(),
            path.display(),
            shell_word(&path.display().to_string())
        );
    }
    Ok(())
}

/// The command this run was started with, as shell words, with its journal named: run
/// again, it resumes the journal's unfinished run.
fn resume_command(journal: &Path) -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if let Some(program) = words.first_mut() {
        *program = "sshfleet".to_owned();
    }
    let named = words
        .iter()
        .any(|w| w == "--journal" || w.starts_with("--journal="));
    if !named {
        words.push("--journal".to_owned());
        words.push(journal.display().to_string());
    }
    let words: Vec<String> = words.iter().map(|w| shell_word(w)).collect();
    sshfleet_core::inert::message(&words.join(" "))
}

/// `word` as one POSIX shell word: as is when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-/+:,=@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// `--apply`: within `--max-changes` and once confirmed, writes the plan in its waves; a
/// plan not written is reported as planned.
async fn apply(
    settings: &RemediateSettings,
    setup: &Setup,
    mut planned: Planned,
    pipe: &RecordPipeline,
    confirm: &dyn Fn(usize) -> bool,
    shutdown: Shutdown,
    streamed: &mut Streamed,
) {
    let go = match settings.max_changes {
        Some(max) if planned.len() > max => {
            diagln!("refusing: the plan changes {} devices, more than --max-changes {max}; nothing was changed", planned.len());
            streamed.refused = true;
            false
        }
        _ => settings.assume_yes || confirm(planned.len()),
    };
    if !go {
        let target = settings.target;
        let records = planned.rest().map(|w| match w {
            Ok(write) => write.record,
            Err(unread) => unread.record(target),
        });
        pipe.send_all(records).await;
        return;
    }
    if setup.continuing {
        if let Err(e) = setup.remediator.journal_continued() {
            diagln!("error: {}", sshfleet_core::inert::message(&e.to_string()));
        }
    }
    let applied = setup
        .remediator
        .apply_waves(planned, &setup.staging, pipe.sender(), shutdown)
        .await;
    streamed.stats.interrupted |= applied.stats.interrupted;
    streamed.stats.not_checked += applied.stats.not_checked;
    streamed.budget_stop = applied.budget_stop;
    streamed.declined = applied.declined;
}

/// The end of a run: what is said, what is recorded, and the exit code.
struct Concluded<'a> {
    settings: &'a RemediateSettings,
    setup: &'a Setup,
    streamed: &'a Streamed,
    verbosity: Verbosity,
}

impl Concluded<'_> {
    /// A failed journal stopped the writes: that outranks every other outcome but a lost
    /// report, and is said after the summary of what was done.
    fn exit(&self, closed: anyhow::Result<Summary>) -> Exit {
        let journal_failure = self.setup.remediator.journal_failure();
        let mut summary = match closed {
            Ok(summary) => summary,
            Err(e) => {
                let exit = report_failed_in(&self.setup.run, &e, self.verbosity);
                return match journal_failure {
                    Some(failure) => {
                        report_journal_failure(&failure);
                        Exit::OutputFailed
                    }
                    None => exit,
                };
            }
        };
        let stats = &self.streamed.stats;
        summary.stopped = self.stop();
        self.setup.run.settle(&mut summary, stats);
        self.say_summary(&summary);
        let stopped = self.setup.remediator.stopped_accounts();
        report_stopped_accounts(&stopped);
        let outcome = self.record(&summary, &stopped, journal_failure.as_ref());
        if let Some(failure) = journal_failure {
            report_journal_failure(&failure);
            return Exit::OutputFailed;
        }
        if stats.interrupted && self.settings.apply {
            // The last line: what resumes the run (its journal's unfinished run).
            diagln!(
                "interrupted before every device was written; resume with: {}",
                resume_command(&self.settings.journal)
            );
        }
        if outcome.output_failed() {
            return Exit::OutputFailed;
        }
        self.stopped()
            .unwrap_or_else(|| match self.streamed.refused {
                true => Exit::Usage,
                false => exit_of(outcome.verdict()),
            })
    }

    fn say_summary(&self, summary: &Summary) {
        if self.verbosity.is_quiet() {
            return;
        }
        diag!("{}", summary.render_text());
        report_waivers(self.setup.run.waivers());
        if !self.settings.apply {
            diagln!("dry run: nothing was changed (add --apply to write)");
        }
        report_interruption(&self.streamed.stats);
    }

    /// Records the run in the history, the metrics, the HTML page and the summary, and
    /// says what was written; a refused or interrupted run, or one whose journal failed,
    /// did not succeed.
    fn record(
        &self,
        summary: &Summary,
        stopped: &[StoppedAccount],
        journal_failure: Option<&JournalFailure>,
    ) -> RunOutcome {
        let (settings, stats) = (self.settings, &self.streamed.stats);
        let whole = !stats.interrupted && !self.streamed.refused && journal_failure.is_none();
        let page_context = format!(
            "remediate --ssh {}{} of {}",
            settings.target.as_str(),
            if settings.apply {
                " --apply"
            } else {
                " (dry run)"
            },
            settings.device.inventory.display()
        );
        let outcome = self.setup.run.finish(RunEnd {
            summary,
            stats,
            completion: if whole {
                Completion::Complete
            } else {
                Completion::Incomplete
            },
            stopped_accounts: stopped,
            page_context,
            applied: Some(settings.apply),
        });
        say_notes(&outcome.notes, self.verbosity);
        outcome
    }

    /// What stopped the run before its plan was done, for the summary and every output made
    /// from it (an interruption is marked after, and outranks these).
    fn stop(&self) -> Option<Stop> {
        if self.streamed.declined {
            Some(Stop::WaveDeclined)
        } else if self.streamed.budget_stop.is_some() {
            Some(Stop::FailureBudget)
        } else if self.setup.remediator.deferred_by_window() > 0 {
            Some(Stop::ChangeWindow)
        } else {
            None
        }
    }

    /// A run that stopped before its plan was done: a wave not confirmed, the change window
    /// closed, or the failure budget spent (exit 3, with how to go on).
    fn stopped(&self) -> Option<Exit> {
        let journal = self.settings.journal.display();
        if self.streamed.declined {
            diagln!(
                "stopped: a wave was not confirmed; the devices left are deferred. Rerun with --journal {journal} to go on."
            );
            return Some(Exit::Stopped);
        }
        let outside = self.setup.remediator.deferred_by_window();
        if outside > 0 {
            diagln!(
                "deferred: {outside} device(s) not written: outside the change window {}; rerun with --journal {journal} inside the next window to continue",
                self.settings.window.as_ref().map(|w| w.to_string()).unwrap_or_default(),
            );
        }
        match &self.streamed.budget_stop {
            Some(stop) => {
                diagln!(
                    "stopped: {} failed writes or verifications exceeded --max-failures ({}) before wave {}; the devices left are deferred. Rerun with --journal {journal} --continue-after-failures to go on.",
                    stop.failures,
                    stop.allowed,
                    stop.next_wave + 1,
                );
                Some(Exit::Stopped)
            }
            None => (outside > 0).then_some(Exit::Stopped),
        }
    }
}

/// The last run of a reverted journal: what it recorded, the state it set and its id.
struct Reverted {
    recovered: Recovered,
    target: SshState,
    run: String,
}

/// A journal can be reverted over the inventory and shard it was made for, to the state
/// opposite its target, with a journal of its own.
fn check_revert(
    settings: &RemediateSettings,
    path: &Path,
    prepared: &PreparedScan,
) -> anyhow::Result<Reverted> {
    let target = settings.target;
    let (header, recovered) = read_journal(path)?;
    let journal_target = ssh_target(&header.target, Source::Journal, path)?;
    if journal_target == target {
        bail!(
            "the journal {} set SSH {journal_target}; its revert puts back the other state: give --ssh {}",
            path.display(),
            if journal_target.is_enabled() { "disabled" } else { "enabled" }
        );
    }
    if header.shard != prepared.shard.map(|s| s.to_string()) {
        bail!("the journal {} was made for another shard", path.display());
    }
    if header.inventory != prepared.fingerprint() {
        bail!(
            "the inventory has changed since the journal {} was written; revert with the inventory it was made for",
            path.display()
        );
    }
    let own = &settings.journal;
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if settings.apply && same(own, path) {
        bail!(
            "the revert needs a journal of its own: give --journal FILE other than {}",
            path.display()
        );
    }
    Ok(Reverted {
        recovered,
        target: journal_target,
        run: header.run,
    })
}

/// Said even with `--quiet`: the run did not do what was asked, and the journal is short.
fn report_journal_failure(failure: &JournalFailure) {
    diagln!("error: {}", failure.error);
    diagln!(
        "error: device writes stopped there: {} device(s) not written, {} written without \
         their outcome in the journal; the report holds what was done. Rerun with --journal {} \
         once it can be written: devices without an outcome are read again and written only \
         if still wrong.",
        failure.unwritten,
        failure.unjournaled,
        failure.error.path().display()
    );
}

/// With `--apply`: the journal, bound to this run (its saved plan or reverted run, the
/// inventory, target, shard and limit); an unfinished run of it resumes, else a new one starts.
fn open_journal(
    settings: &RemediateSettings,
    prepared: &PreparedScan,
    applies: Option<String>,
    verbosity: Verbosity,
) -> anyhow::Result<(Option<Journal>, Recovered)> {
    if !settings.apply {
        return Ok((None, Recovered::default()));
    }
    let path = &settings.journal;
    let mut header = JournalHeader::new(
        prepared.fingerprint(),
        settings.target.as_str(),
        prepared.shard.map(|s| s.to_string()),
    );
    header.plan = applies;
    header.inventory_path = Some(absolute(&settings.device.inventory));
    header.limit = settings.device.limit.as_ref().map(|l| l.to_string());
    let opened = Opened::open(path, &header)?;
    if !verbosity.is_quiet() {
        diagln!("{}", opened.describe(Subject::Devices));
    }
    Ok((Some(opened.journal), opened.recovered))
}

/// `path` made absolute (against the working directory), for a file that records it.
fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}

/// The result of the wave just done, then the question for the next, on the terminal.
fn confirm_wave(q: &WaveQuestion, target: SshState) -> bool {
    super::tty::ask(&format!(
        "Wave {} done: {} device(s), {} failed write(s) or verification(s).\n\
         Wave {}: set SSH {target} on {} more device(s)? Type 'yes' to go on: ",
        q.done, q.handled, q.failed, q.wave, q.devices
    ))
}

fn confirm(count: usize, target: SshState) -> bool {
    super::tty::ask(&format!(
        "Set SSH {target} on {count} device(s)? Type 'yes' to apply: "
    ))
}

/// Asks `question` on the terminal (`/dev/tty`, type-ahead discarded); only `yes` (any
/// case) is a yes.
pub(super) fn ask_yes(question: std::fmt::Arguments<'_>) -> bool {
    super::tty::ask(&question.to_string())
}
