//! `sshfleet remediate`: plan by default; with `--apply` (and confirmation) write under the
//! limits with a journal, then report every device with what was done and verified.

use std::collections::HashSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use super::args::{ExpectArg, RemediateArgs};
use super::html::HtmlOut;
use super::progress::Progress;
use super::scan::{
    exit_for, forget_gone_if_interrupted, load_baseline, load_waivers, prepare,
    report_interruption, report_waivers, resolve_password, Comparison, MetricsOut, PreparedScan,
};
use super::{
    install_signal_handlers, report_failed, report_output, resolve_format, Exit, Stopping,
};
use crate::remediate::journal::read_journal;
use crate::remediate::plan::Plan;
use crate::remediate::{
    inventory_fingerprint, planned_device, Journal, JournalFailure, JournalHeader, Recovered,
    Remediator, Staging, WriteLimits,
};
use crate::report::pipeline::OnOutputFailure;
use crate::report::{self, RecordSinks, Reporter, Schema, SshState};

pub(super) async fn run(args: RemediateArgs) -> anyhow::Result<Exit> {
    let quiet = args.output.quiet;
    let metrics = MetricsOut::check(&args.compliance, "remediate")?;
    if args.apply && !args.yes && !interactive() {
        bail!("--apply needs --yes when not run from a terminal; nothing was changed");
    }
    if args.confirm_waves && !interactive() {
        bail!("--confirm-waves asks on a terminal, and this is not one; nothing was changed");
    }
    let target = match args.ssh {
        ExpectArg::Disabled => SshState::Disabled,
        ExpectArg::Enabled => SshState::Enabled,
    };
    if args.plan_out.is_some() && args.apply {
        bail!("--plan-out writes the plan of a dry run for review; leave out --apply (then apply it with --plan FILE --apply)");
    }
    let saved = match &args.plan {
        Some(path) => Some(Plan::load(path, args.plan_max_age)?),
        None => None,
    };
    let baseline = load_baseline(&args.compliance, quiet)?;
    let waivers = load_waivers(&args.compliance)?;
    let password = resolve_password(&args.device)?;
    let mut prepared = prepare(&args.device, password, quiet)?;
    if let Some(waivers) = &waivers {
        prepared.scanner = prepared.scanner.with_waivers(waivers.clone());
    }
    if let (Some(plan), Some(path)) = (&saved, &args.plan) {
        check_plan(plan, path, &prepared, target)?;
    }
    let reverted = match &args.revert {
        Some(path) => Some(check_revert(&args, path, &prepared, target)?),
        None => None,
    };
    let (journal, mut recovered) = open_journal(&args, &prepared, target, quiet)?;
    let journal_path = journal
        .as_ref()
        .map(|j| j.path().to_owned())
        .unwrap_or_default();
    let mut staging = Staging {
        waves: args.waves.clone().unwrap_or_default(),
        max_failures: args.max_failures,
        pause: args.wave_pause,
        first_wave: 0,
        confirm: None,
    };
    let continuing = match recovered.stopped.take() {
        Some(stop) if !args.continue_after_failures => bail!(
            "the last run of this journal was stopped by its failure budget before wave {} ({} failed writes or verifications, {} allowed); look at the failed devices, then rerun with --continue-after-failures to go on",
            stop.next_wave + 1,
            stop.failures,
            stop.allowed
        ),
        Some(stop) => {
            staging.first_wave = stop.next_wave;
            true
        }
        None => false,
    };
    let mut comparison = Comparison::open(
        &args.compliance,
        baseline,
        &args.device.inventory,
        &prepared,
        if args.apply {
            "remediate --apply"
        } else {
            "remediate"
        },
        Some(target.as_str().to_owned()),
    )?;
    let limits = WriteLimits {
        rate: args.rate,
        burst: args.burst,
        site_rate: args.site_rate,
        jitter: Duration::from_millis(50),
    };
    let metrics = metrics.map(|m| m.shard(prepared.shard));
    let mut new_plan = args.plan_out.as_ref().map(|_| {
        Plan::new(
            &args.device.inventory,
            inventory_fingerprint(prepared.devices.devices()),
            target.as_str(),
            prepared.shard.map(|s| s.to_string()),
        )
    });
    let PreparedScan {
        scanner,
        devices,
        invalid,
        extra_columns,
        ..
    } = prepared;
    let sites: HashSet<String> = devices.devices().map(|d| d.site).collect();
    let mut remediator = Remediator::new(scanner, target, &limits, sites, journal);
    if let Some(plan) = &saved {
        remediator = remediator.with_plan(plan);
    }
    if let Some((recovered, journal_target)) = &reverted {
        remediator = remediator.with_revert(recovered, *journal_target);
    }
    if let Some(window) = args.window {
        remediator = remediator.with_window(window);
    }
    let remediator = Arc::new(remediator);

    let schema = Schema {
        remediation: true,
        extra_columns,
    };
    let format = resolve_format(&args.output.output, args.output.format);
    let mut sinks = vec![report_output(format, &schema, &args.output.output)?];
    let html = HtmlOut::open(args.compliance.html_out.as_deref()).map(|(html, sink)| {
        sinks.push(sink);
        html
    });
    let (trigger, shutdown) = install_signal_handlers(quiet, Stopping::Devices);
    let progress = Arc::new(Progress::new(quiet));
    let reporter: Arc<dyn Reporter> = progress.clone();
    if args.confirm_waves {
        let asker = progress.clone();
        staging.confirm = Some(Arc::new(move |wave, devices| {
            asker.suspend(|| confirm_wave(wave, devices, target))
        }));
    }
    let (baseline, store) = comparison.parts();
    let sinks = RecordSinks {
        outputs: sinks,
        reporter,
        baseline,
        store,
    };
    let total = devices.len() + invalid.len();
    let pipe = report::record_pipeline(sinks, total, OnOutputFailure::Stop(trigger));
    pipe.send_all(invalid).await;
    let (planned, mut stats) = remediator
        .plan(
            devices,
            recovered,
            args.apply || new_plan.is_some(),
            pipe.sender(),
            shutdown.clone(),
        )
        .await;
    if let (Some(plan), Some(path)) = (new_plan.as_mut(), &args.plan_out) {
        plan.devices = planned.iter().map(planned_device).collect();
        if let Some(waivers) = &waivers {
            plan.waivers = waivers.report().used.iter().map(|u| u.0.clone()).collect();
        }
        if stats.interrupted {
            diagln!("interrupted: no plan written (a plan must cover every device)");
        } else {
            plan.write(path)?;
            if !quiet {
                diagln!(
                    "plan of {} write(s) written to {} (apply it with --plan {} --apply)",
                    plan.devices.len(),
                    path.display(),
                    path.display()
                );
            }
        }
        pipe.send_all(planned.iter().map(|p| p.record.clone()))
            .await;
    }
    let planned = if new_plan.is_some() {
        Vec::new()
    } else {
        planned
    };
    let mut refused = false;
    let mut budget_stop = None;
    let mut declined = false;
    if args.apply && !stats.interrupted && !planned.is_empty() {
        let go = match args.max_changes {
            Some(max) if planned.len() > max => {
                diagln!("refusing: the plan changes {} devices, more than --max-changes {max}; nothing was changed", planned.len());
                refused = true;
                false
            }
            _ => args.yes || progress.suspend(|| confirm(planned.len(), target)),
        };
        if go {
            if continuing {
                if let Err(e) = remediator.journal_continued() {
                    diagln!("error: {e}");
                }
            }
            let applied = remediator
                .apply_waves(planned, &staging, pipe.sender(), shutdown)
                .await;
            stats.interrupted |= applied.stats.interrupted;
            stats.not_checked += applied.stats.not_checked;
            budget_stop = applied.budget_stop;
            declined = applied.declined;
        } else {
            pipe.send_all(planned.into_iter().map(|p| p.record)).await;
        }
    }
    let closed = report::finish(pipe).await;
    // A failed journal stopped the writes: that outranks every other outcome but a lost
    // report, and is said after the summary of what was done.
    let journal_failure = remediator.journal_failure();
    let mut summary = match closed {
        Ok(summary) => summary,
        Err(e) => {
            MetricsOut::after_report_failure(metrics.as_ref(), &e, quiet);
            let exit = report_failed(&e);
            return Ok(match journal_failure {
                Some(failure) => {
                    report_journal_failure(&failure);
                    Exit::OutputFailed
                }
                None => exit,
            });
        }
    };
    forget_gone_if_interrupted(&mut summary, &stats);
    if !quiet {
        diag!("{}", summary.render_text());
        report_waivers(waivers.as_deref());
        if !args.apply {
            diagln!("dry run: nothing was changed (add --apply to write)");
        }
        report_interruption(&stats);
    }
    let history_failed = comparison.finish(&summary, &stats, quiet);
    let succeeded =
        !stats.interrupted && !refused && history_failed.is_none() && journal_failure.is_none();
    let metrics_failed = metrics.and_then(|m| m.write(&summary, succeeded, quiet));
    let html_failed = html.and_then(|html| {
        let context = format!(
            "remediate --ssh {}{} of {}",
            target.as_str(),
            if args.apply { " --apply" } else { " (dry run)" },
            args.device.inventory.display()
        );
        let waivers = waivers.as_deref();
        html.write(
            context,
            &summary,
            comparison.run(),
            waivers,
            Some(args.apply),
        )
    });
    if let Some(failure) = journal_failure {
        report_journal_failure(&failure);
        return Ok(Exit::OutputFailed);
    }
    if let Some(exit) = history_failed.or(metrics_failed).or(html_failed) {
        return Ok(exit);
    }
    if declined {
        diagln!(
            "stopped: a wave was not confirmed; the devices left are deferred. Rerun with --journal {} to go on.",
            journal_path.display()
        );
        return Ok(Exit::Stopped);
    }
    let outside = remediator.deferred_by_window();
    if outside > 0 {
        diagln!(
            "deferred: {outside} device(s) not written: outside the change window {}; rerun with --journal {} inside the next window to continue",
            args.window.map(|w| w.to_string()).unwrap_or_default(),
            journal_path.display()
        );
        if budget_stop.is_none() {
            return Ok(Exit::Stopped);
        }
    }
    if let Some(stop) = budget_stop {
        diagln!(
            "stopped: {} failed writes or verifications exceeded --max-failures ({}) before wave {}; the devices left are deferred. Rerun with --journal {} --continue-after-failures to go on.",
            stop.failures,
            stop.allowed,
            stop.next_wave + 1,
            journal_path.display()
        );
        return Ok(Exit::Stopped);
    }
    Ok(if refused {
        Exit::Usage
    } else {
        exit_for(&summary, &stats, args.compliance.fail_on)
    })
}

/// A journal can be reverted over the inventory and shard it was made for, to the state
/// opposite its target, with a journal of its own.
fn check_revert(
    args: &RemediateArgs,
    path: &Path,
    prepared: &PreparedScan,
    target: SshState,
) -> anyhow::Result<(Recovered, SshState)> {
    let (header, recovered) = read_journal(path)?;
    let journal_target = match header.target.as_str() {
        "enabled" => SshState::Enabled,
        "disabled" => SshState::Disabled,
        other => bail!(
            "the journal {} has an unknown target {other:?}",
            path.display()
        ),
    };
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
    if header.inventory != inventory_fingerprint(prepared.devices.devices()) {
        bail!(
            "the inventory has changed since the journal {} was written; revert with the inventory it was made for",
            path.display()
        );
    }
    let own = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&args.output.output));
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if args.apply && same(&own, path) {
        bail!(
            "the revert needs a journal of its own: give --journal FILE other than {}",
            path.display()
        );
    }
    Ok((recovered, journal_target))
}

/// A saved plan applies to the inventory, shard and target it was made for, or not at all.
fn check_plan(
    plan: &Plan,
    path: &Path,
    prepared: &PreparedScan,
    target: SshState,
) -> anyhow::Result<()> {
    if plan.target != target.as_str() {
        bail!(
            "the plan {} sets SSH {}, not {target}: give --ssh {}",
            path.display(),
            plan.target,
            plan.target
        );
    }
    let shard = prepared.shard.map(|s| s.to_string());
    if plan.shard != shard {
        bail!(
            "the plan {} was made for shard {}, this run is shard {}",
            path.display(),
            plan.shard.as_deref().unwrap_or("(none)"),
            shard.as_deref().unwrap_or("(none)")
        );
    }
    if inventory_fingerprint(prepared.devices.devices()) != plan.inventory_fingerprint {
        bail!(
            "the inventory has changed since the plan {} was made (its devices differ from the plan's {}); plan again",
            path.display(),
            plan.inventory
        );
    }
    Ok(())
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

fn open_journal(
    args: &RemediateArgs,
    prepared: &PreparedScan,
    target: SshState,
    quiet: bool,
) -> anyhow::Result<(Option<Journal>, Recovered)> {
    if !args.apply {
        return Ok((None, Recovered::default()));
    }
    let path = args
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&args.output.output));
    let header = JournalHeader::new(
        inventory_fingerprint(prepared.devices.devices()),
        target.as_str(),
        prepared.shard.map(|s| s.to_string()),
    );
    let (journal, recovered) = Journal::open(&path, &header)?;
    if !quiet {
        let resumed = recovered.outcomes.len() + recovered.pending.len();
        if resumed > 0 {
            diagln!(
                "journal {}: resuming ({} devices done, {} to re-check)",
                path.display(),
                recovered.outcomes.len(),
                recovered.pending.len()
            );
        } else {
            diagln!("journal {}", path.display());
        }
    }
    Ok((Some(journal), recovered))
}

/// Next to the report (`report.csv` → `report.journal.jsonl`), or in the working directory.
fn default_journal(output: &Path) -> PathBuf {
    if output.as_os_str() == "-" {
        return PathBuf::from("sshfleet-remediate.journal.jsonl");
    }
    output.with_extension("journal.jsonl")
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn confirm_wave(wave: usize, count: usize, target: SshState) -> bool {
    diag!("Wave {wave}: set SSH {target} on {count} more device(s)? Type 'yes' to go on: ");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim().eq_ignore_ascii_case("yes")
}

fn confirm(count: usize, target: SshState) -> bool {
    diag!("Set SSH {target} on {count} device(s)? Type 'yes' to apply: ");
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    answer.trim().eq_ignore_ascii_case("yes")
}
