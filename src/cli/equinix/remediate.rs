//! `sshfleet equinix ssh-users remediate`: check the policy, saved plan and journal before
//! the first request, survey the users (or take the saved plan), then report the plan or
//! apply it in waves, one row per association as it is decided, and choose the exit code.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use serde::Serialize;

use super::super::args::PolicyRemediateArgs;
use super::super::progress::Counter;
use super::super::remediate::ask_yes;
use super::super::{install_signal_handlers, Exit, Stopping};
use super::{connect_until, fail, open_rows, Rows};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::equinix::bulk::Target;
use sshfleet_engine::equinix::policy::Policy;
use sshfleet_engine::equinix::remediate::{
    deleted_users, journal_fingerprint, survey, users_of, Applied, DetachPlan, Detacher, Entry,
    Status, Survey, SurveyError, UserDeletion, JOURNAL_TARGET, NOT_ALLOWED,
};
use sshfleet_engine::remediate::{Journal, JournalHeader, Recovered, Staging};
use sshfleet_engine::settings::{Env as _, ProcessEnv};
use sshfleet_equinix::EquinixClient;
use sshfleet_report::csv_writer::neutralise;
use sshfleet_report::ssh_users::TableRow;
use sshfleet_rollout::opening::{
    check_detach_plan, Asked, Continuing, DetachPlanMade, Opened, Subject,
};
use sshfleet_rollout::plan::{load_approved, write_sealed};

/// The journal when the report goes to stdout and no `--journal` is given.
const STDOUT_JOURNAL: &str = "sshfleet-equinix-remediate.journal.jsonl";
const ORPHAN: &str = "attached to no device: for follow-up (the API cannot delete it)";

pub(super) async fn run(args: PolicyRemediateArgs) -> anyhow::Result<Exit> {
    if args.write.apply && !args.yes && !ProcessEnv.interactive() {
        bail!("--apply needs --yes when not run from a terminal; nothing was changed");
    }
    let journal = args.write.apply.then(|| journal_path(&args));
    sshfleet_core::files::RunFiles::default()
        .kept("--policy", args.policy.as_deref())
        .kept("--plan", args.plan.as_deref())
        .kept("--plan-signers", args.plan_signers.as_deref())
        .written("-o", Some(&args.api.output))
        .written("--plan-out", args.plan_out.as_deref())
        .written("--journal", journal.as_deref())
        .check()?;
    let sources = Sources::open(&args)?;
    let (journal, mut recovered) = open_journal(&args, &sources)?;
    let staging = staging(&args, journal.as_ref(), &mut recovered)?;
    let (_trigger, shutdown) = install_signal_handlers(args.api.verbosity(), Stopping::Detaches);
    let write = args.write.apply.then_some(&args.write);
    let parallel = usize::try_from(args.page_concurrency).unwrap_or(1);
    let client = connect_until(&args.api, parallel, write, shutdown.clone())?;
    let mut tally = Tally::default();
    let planned = match plan(&args, &sources, &client, &shutdown, &mut tally).await? {
        Ok(planned) => planned,
        Err(exit) => return Ok(exit),
    };
    say_plan(&args, &tally, &planned);
    // Opened only now: a run refused before this leaves an earlier report as it was.
    let mut out = open_rows::<EntryRow>(&args.api)?;
    // The survey always finds the orphans; they are reported only when asked (--orphans).
    let orphans = std::mem::take(&mut tally.orphans);
    if args.orphans {
        for orphan in orphans {
            tally.emit(&mut out, orphan_entry(orphan))?;
        }
    }
    if !args.write.apply || !confirmed(&args, &planned) {
        dry_run(&args, &sources, planned, &mut tally, &mut out)?;
        out.finish()?;
        return Ok(tally.conclude(&args, None));
    }
    let run = DetachRun {
        client: &client,
        journal: journal.as_ref(),
        recovered: &recovered,
        staging: &staging,
    };
    let applied = run
        .apply(&args, planned, shutdown, &mut tally, &mut out)
        .await?;
    Ok(tally.conclude(&args, Some(&applied)))
}

/// Records in the journal that this run went through every association, so that the next
/// run is a new one that surveys (or reads) every association again rather than reporting
/// what this run did as if it were still so. A run cut short stays open to be resumed.
/// What a detach run applies with: the client, and the journal and staging it was opened with.
struct DetachRun<'a> {
    client: &'a EquinixClient,
    journal: Option<&'a Journal>,
    recovered: &'a Recovered,
    staging: &'a Staging,
}

impl DetachRun<'_> {
    /// Detaches the planned associations wave by wave, each row reported as it is done, and
    /// marks the journal finished when nothing cut the run short.
    async fn apply(
        &self,
        args: &PolicyRemediateArgs,
        planned: Vec<Target>,
        stop: Shutdown,
        tally: &mut Tally,
        out: &mut Rows<EntryRow>,
    ) -> anyhow::Result<Applied> {
        let progress = Counter::new(args.api.verbosity(), planned.len() as u64, "associations");
        let detacher = Detacher {
            client: self.client,
            journal: self.journal,
            stop,
            in_flight: in_flight(args),
            deletion: if args.allow_user_deletion {
                UserDeletion::Allowed
            } else {
                UserDeletion::HeldBack
            },
        };
        let mut each = |entry: Entry| {
            progress.inc();
            tally.emit(out, entry)
        };
        let applied = detacher
            .apply(planned, self.recovered, self.staging, &mut each)
            .await;
        progress.finish();
        let mut applied = applied?;
        out.finish()?;
        finish_journal(self.journal, &mut applied, tally);
        Ok(applied)
    }
}

fn finish_journal(journal: Option<&Journal>, applied: &mut Applied, tally: &Tally) {
    let Some(journal) = journal else { return };
    let cut_short = applied.interrupted
        || applied.budget_stop.is_some()
        || applied.journal_error.is_some()
        || tally.count(Status::Deferred) > 0;
    if cut_short {
        return;
    }
    if let Err(e) = journal.finished() {
        applied.journal_error = Some(e);
    }
}

/// The detaches to make: the saved plan's, or the survey's (counted in `tally`); the exit
/// code when the survey cannot be used.
async fn plan(
    args: &PolicyRemediateArgs,
    sources: &Sources,
    client: &Arc<EquinixClient>,
    shutdown: &Shutdown,
    tally: &mut Tally,
) -> anyhow::Result<Result<Vec<Target>, Exit>> {
    if let Some(plan) = &sources.saved {
        return Ok(Ok(plan.detaches.clone()));
    }
    let policy = sources.policy_or_refuse()?;
    let parallel = usize::try_from(args.page_concurrency).unwrap_or(1);
    let found = survey(
        client.clone(),
        &policy,
        args.page_size,
        parallel,
        shutdown.clone(),
    );
    Ok(match found.await {
        Ok(found) => Ok(tally.surveyed(found)),
        Err(e) => Err(refused(&e)),
    })
}

/// A survey that cannot be used: said on stderr, with its exit code.
fn refused(error: &SurveyError) -> Exit {
    let exit = match error {
        SurveyError::Listing(e) => fail(e),
        SurveyError::Unjudged(_) => {
            diagln!("error: {error}");
            Exit::Findings
        }
    };
    if exit == Exit::Findings {
        diagln!("error: no detach was planned: a survey of an incomplete listing is not used for policy decisions");
    }
    exit
}

/// `--yes`, or `yes` typed on the terminal (checked to be one before anything ran).
fn confirmed(args: &PolicyRemediateArgs, planned: &[Target]) -> bool {
    if args.yes || planned.is_empty() {
        return true;
    }
    let deleting = deleted_users(planned);
    let deletions = match (deleting, args.allow_user_deletion) {
        (0, _) => String::new(),
        (n, true) => format!(", deleting {n} user(s) for good"),
        (n, false) => format!(" ({n} that would delete a user are held back)"),
    };
    let yes = ask_yes(format_args!(
        "Detach {} association(s) of {} user(s){deletions}? Type 'yes' to apply: ",
        planned.len(),
        users_of(planned)
    ));
    if !yes {
        diagln!("not confirmed: nothing was changed");
    }
    yes
}

/// Detaches in flight at once: about two seconds of writes at the rate, and the burst.
fn in_flight(args: &PolicyRemediateArgs) -> usize {
    let rate = args.write.rate.per_second_ceil().get();
    let wanted = rate
        .saturating_mul(2)
        .saturating_add(args.write.burst.get());
    usize::try_from(wanted).unwrap_or(usize::MAX).clamp(1, 256)
}

/// The policy and saved plan of a run, checked against each other and the endpoint.
struct Sources {
    endpoint: String,
    policy: Option<(PathBuf, Policy)>,
    saved: Option<DetachPlan>,
}

impl Sources {
    /// Reads and checks the policy and the saved plan; any problem refuses the run (exit 2)
    /// before a request is sent.
    fn open(args: &PolicyRemediateArgs) -> anyhow::Result<Sources> {
        let flag = args.api.endpoint.as_deref();
        let endpoint = super::super::resolve::equinix_endpoint(flag, &ProcessEnv)?;
        let policy = match &args.policy {
            Some(path) => Some((path.clone(), Policy::load(path)?)),
            None => None,
        };
        let saved = match &args.plan {
            Some(path) => {
                let signers = args.plan_signers.as_deref();
                let (plan, signer) = load_approved::<DetachPlan>(path, args.plan_max_age, signers)?;
                super::super::remediate::say_approval(
                    path,
                    signer.as_deref(),
                    args.api.verbosity(),
                );
                Some(plan)
            }
            None => None,
        };
        if let (Some(plan), Some(path)) = (&saved, &args.plan) {
            check_plan(plan, path, &endpoint, policy.as_ref())?;
        }
        Ok(Sources {
            endpoint,
            policy,
            saved,
        })
    }

    fn policy_or_refuse(&self) -> anyhow::Result<Policy> {
        match &self.policy {
            Some((_, policy)) => Ok(policy.clone()),
            None => bail!("--policy FILE is needed to plan (or --plan FILE to apply a saved plan)"),
        }
    }

    /// The fingerprint of the policy the detaches come from.
    fn policy_fingerprint(&self) -> &str {
        match (&self.saved, &self.policy) {
            (Some(plan), _) => &plan.policy_fingerprint,
            (None, Some((_, policy))) => &policy.fingerprint,
            (None, None) => "",
        }
    }
}

/// A saved plan applies against the endpoint it was made for, and with the policy it was
/// made from when one is given.
fn check_plan(
    plan: &DetachPlan,
    path: &Path,
    endpoint: &str,
    policy: Option<&(PathBuf, Policy)>,
) -> anyhow::Result<()> {
    let made = DetachPlanMade {
        endpoint: &plan.endpoint,
        policy: &plan.policy,
        policy_fingerprint: &plan.policy_fingerprint,
    };
    let policy = policy.map(|(path, policy)| (path.as_path(), policy.fingerprint.as_str()));
    Ok(check_detach_plan(&made, path, endpoint, policy)?)
}

fn journal_path(args: &PolicyRemediateArgs) -> PathBuf {
    match &args.journal {
        Some(path) => path.clone(),
        None if args.api.output == Path::new("-") => PathBuf::from(STDOUT_JOURNAL),
        None => super::super::resolve::default_journal(&args.api.output),
    }
}

/// With `--apply`: the journal of this endpoint and policy, resumed if it exists.
fn open_journal(
    args: &PolicyRemediateArgs,
    sources: &Sources,
) -> anyhow::Result<(Option<Journal>, Recovered)> {
    if !args.write.apply {
        return Ok((None, Recovered::default()));
    }
    let path = journal_path(args);
    let fingerprint = journal_fingerprint(&sources.endpoint, sources.policy_fingerprint());
    let header = JournalHeader::new(fingerprint, JOURNAL_TARGET, None);
    let opened = Opened::open(&path, &header)?;
    if !args.api.verbosity().is_quiet() {
        diagln!("{}", opened.describe(Subject::Associations));
    }
    Ok((Some(opened.journal), opened.recovered))
}

/// The waves of this run; a journal stopped by its failure budget goes on only when told.
fn staging(
    args: &PolicyRemediateArgs,
    journal: Option<&Journal>,
    recovered: &mut Recovered,
) -> anyhow::Result<Staging> {
    let asked = Asked {
        waves: args.staged.waves.clone().unwrap_or_default(),
        max_failures: args.staged.max_failures,
        pause: args.staged.wave_pause,
        continue_after_failures: args.staged.continue_after_failures,
    };
    let (staging, continuing) = asked.staging(recovered, Subject::Associations)?;
    if let (Continuing::AfterBudgetStop, Some(journal)) = (continuing, journal) {
        journal.continued()?;
    }
    Ok(staging)
}

/// The plan reported (and with `--plan-out` written), nothing changed.
fn dry_run(
    args: &PolicyRemediateArgs,
    sources: &Sources,
    planned: Vec<Target>,
    tally: &mut Tally,
    out: &mut Rows<EntryRow>,
) -> anyhow::Result<()> {
    if let (Some(path), Some((policy_path, policy))) = (&args.plan_out, &sources.policy) {
        let policy_path = policy_path.display().to_string();
        let mut plan = DetachPlan::new(&sources.endpoint, &policy_path, &policy.fingerprint)
            .with_detaches(&planned);
        write_sealed(&mut plan, path)?;
        if !args.api.verbosity().is_quiet() {
            diagln!(
                "plan of {} detach(es) written to {} (apply it with --plan {} --apply)",
                plan.detaches.len(),
                path.display(),
                path.display()
            );
        }
    }
    for association in planned {
        let detail = if association.deletes_user {
            format!("{NOT_ALLOWED}; it is the user's last device: the API deletes the user with it")
        } else {
            NOT_ALLOWED.to_owned()
        };
        let entry = Entry {
            association,
            status: Status::Planned,
            wave: None,
            detail,
        };
        tally.emit(out, entry)?;
    }
    Ok(())
}

fn orphan_entry(association: Target) -> Entry {
    Entry {
        association,
        status: Status::Orphan,
        wave: None,
        detail: ORPHAN.to_owned(),
    }
}

fn say_plan(args: &PolicyRemediateArgs, tally: &Tally, planned: &[Target]) {
    if args.api.verbosity().is_quiet() {
        return;
    }
    if let Some((users, allowed)) = tally.surveyed {
        diagln!("{users} users listed; {allowed} association(s) allowed by the policy");
    }
    let deleting = deleted_users(planned);
    diagln!(
        "{} association(s) of {} user(s) to detach; will delete {deleting} user(s) (their last device){}",
        planned.len(),
        users_of(planned),
        if args.write.apply {
            ""
        } else {
            " (dry run: pass --apply to detach)"
        }
    );
    if deleting > 0 && !args.allow_user_deletion {
        diagln!(
            "the {deleting} detach(es) that would delete a user are held back unless --allow-user-deletion is given: a deleted user and its password cannot be restored"
        );
    }
}

/// What the report said, by status.
#[derive(Default)]
struct Tally {
    /// Users listed and associations allowed, when the run surveyed.
    surveyed: Option<(usize, usize)>,
    /// Orphans found, until reported.
    orphans: Vec<Target>,
    counts: [usize; 8],
    /// Users this run deleted (their last device detached).
    deleted: Vec<String>,
}

const STATUSES: [Status; 8] = [
    Status::Planned,
    Status::Detached,
    Status::Failed,
    Status::Unverified,
    Status::Held,
    Status::Stale,
    Status::Deferred,
    Status::Orphan,
];

impl Tally {
    /// Takes the survey's counts and orphans; the detaches to make.
    fn surveyed(&mut self, found: Survey) -> Vec<Target> {
        self.surveyed = Some((found.users, found.allowed));
        self.orphans = found.orphans;
        found.detaches
    }

    fn emit(&mut self, out: &mut Rows<EntryRow>, entry: Entry) -> anyhow::Result<()> {
        if let Some(i) = STATUSES.iter().position(|s| *s == entry.status) {
            self.counts[i] = self.counts[i].saturating_add(1);
        }
        if entry.status == Status::Detached
            && entry.association.deletes_user
            && entry.wave.is_some()
        {
            self.deleted.push(entry.association.username.clone());
        }
        out.write(&EntryRow::from(entry))?;
        out.flush()
    }

    fn count(&self, status: Status) -> usize {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.counts[i])
    }

    /// The summary on stderr and the exit code: a failed journal, an interruption, a
    /// budget stop (3), then findings (planned, failed or orphan: 1).
    fn conclude(&self, args: &PolicyRemediateArgs, applied: Option<&Applied>) -> Exit {
        if !args.api.verbosity().is_quiet() {
            let parts: Vec<String> = STATUSES
                .iter()
                .map(|s| format!("{} {}", self.count(*s), s.as_str()))
                .collect();
            diagln!("associations: {}", parts.join(", "));
        }
        if !self.deleted.is_empty() {
            // Said even with -q: nothing can bring these accounts back.
            diagln!(
                "{} user(s) deleted with their last device; no revert can restore them or their passwords: {}",
                self.deleted.len(),
                self.deleted.join(", ")
            );
        }
        let journal = journal_path(args);
        if let Some(applied) = applied {
            if let Some(e) = &applied.journal_error {
                diagln!("error: {}", sshfleet_core::inert::message(&e.to_string()));
                diagln!(
                    "error: detaches stopped there; rerun with --journal {} once it can be written",
                    journal.display()
                );
                return Exit::OutputFailed;
            }
            if applied.interrupted {
                return Exit::Interrupted;
            }
            if let Some(stop) = applied.budget_stop {
                diagln!(
                    "stopped: {} failed detaches or verifications exceeded --max-failures ({}) after wave {}; the associations left are deferred. Rerun with --journal {} --continue-after-failures to go on.",
                    stop.failures, stop.allowed, stop.next_wave, journal.display()
                );
                return Exit::Stopped;
            }
        }
        let findings = [
            Status::Planned,
            Status::Failed,
            Status::Unverified,
            Status::Held,
            Status::Orphan,
            Status::Deferred,
        ];
        if findings.iter().any(|s| self.count(*s) > 0) {
            Exit::Findings
        } else {
            Exit::Clean
        }
    }
}

/// One association in the report (or, `orphan`, one user on no device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct EntryRow {
    status: &'static str,
    user_uuid: String,
    username: String,
    /// Empty for an orphan.
    device_uuid: String,
    wave: Option<usize>,
    detail: String,
    /// The detach removes the user's last device: the API deletes the user.
    deletes_user: bool,
}

impl From<Entry> for EntryRow {
    fn from(entry: Entry) -> EntryRow {
        EntryRow {
            status: entry.status.as_str(),
            user_uuid: entry.association.user_uuid,
            username: entry.association.username,
            device_uuid: entry.association.device_uuid,
            wave: entry.wave,
            detail: entry.detail,
            deletes_user: entry.association.deletes_user,
        }
    }
}

impl TableRow for EntryRow {
    const COLUMNS: &'static [&'static str] = &[
        "status",
        "user_uuid",
        "username",
        "device_uuid",
        "wave",
        "detail",
        "deletes_user",
    ];

    fn cells(&self) -> Vec<Cow<'_, str>> {
        let text = |t: &str| neutralise(Cow::Owned(t.to_owned()));
        vec![
            Cow::Borrowed(self.status),
            text(&self.user_uuid),
            text(&self.username),
            text(&self.device_uuid),
            Cow::Owned(self.wave.map(|w| w.to_string()).unwrap_or_default()),
            text(&self.detail),
            Cow::Borrowed(if self.deletes_user { "true" } else { "false" }),
        ]
    }
}
