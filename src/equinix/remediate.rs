//! Policy remediation of SSH users (`equinix ssh-users remediate`): survey every user
//! against the policy, plan the detaches of the associations it does not allow, save that
//! plan sealed, and apply it in waves under a failure budget, journaled (intent before each
//! detach, outcome after) and verified by reading the user back. Never prints.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::bulk::Target;
use super::policy::{Policy, Verdict};
use super::{EquinixClient, EquinixError, ListFilter, PageFetcher, SshUser};
use crate::remediate::journal::BudgetStop;
use crate::remediate::journal::WaveProgress;
use crate::remediate::{waves, Journal, JournalError, Outcome, Recovered, Staging};
use crate::shutdown::Shutdown;

/// Users in flight between the page fetcher and the survey.
const CHANNEL_CAPACITY: usize = 1024;
const FORMAT: &str = "sshfleet-equinix-plan";
const VERSION: u32 = 1;
/// The journal header's `target`: what every journaled write does.
pub const JOURNAL_TARGET: &str = "detached";

/// What became of one association (or, for `Orphan`, one user on no device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A dry run: it would be detached.
    Planned,
    /// Detached and read back without the device.
    Detached,
    /// The detach failed, or its read-back still shows the device.
    Failed,
    /// Already gone when its turn came: nothing sent.
    Stale,
    /// Left by the failure budget, a stop request or a failed journal.
    Deferred,
    /// A user on no device: for follow-up only (the API cannot delete it).
    Orphan,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Detached => "detached",
            Status::Failed => "failed",
            Status::Stale => "stale",
            Status::Deferred => "deferred",
            Status::Orphan => "orphan",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub association: Target,
    pub status: Status,
    /// The wave it was (or would have been) detached in, 1-based.
    pub wave: Option<usize>,
    /// Why: the policy's verdict, the API's error, what the read-back showed.
    pub detail: String,
}

/// Why an association is planned at all.
pub const NOT_ALLOWED: &str = "no allow rule of the policy covers this user on this device";

/// What the survey found: the detaches to make, and the rest counted.
#[derive(Debug, Default)]
pub struct Survey {
    pub users: usize,
    /// Associations some rule allows.
    pub allowed: usize,
    /// In listing order.
    pub detaches: Vec<Target>,
    /// Users attached to no device (`device_uuid` empty).
    pub orphans: Vec<Target>,
}

impl Survey {
    /// Judges one listed user: its associations by the policy, and whether it is an orphan.
    pub fn add(&mut self, policy: &Policy, user: &SshUser) {
        self.users = self.users.saturating_add(1);
        let Some(devices) = &user.device_uuids else {
            return;
        };
        if devices.is_empty() {
            self.orphans.push(target(user, ""));
        }
        // An API that listed a device twice still has one association to judge.
        let mut seen = HashSet::new();
        for device in devices.iter().filter(|d| seen.insert(d.as_str())) {
            match policy.verdict(user, device) {
                Verdict::Allowed { .. } => self.allowed = self.allowed.saturating_add(1),
                Verdict::NotAllowed => self.detaches.push(target(user, device)),
            }
        }
    }
}

fn target(user: &SshUser, device: &str) -> Target {
    Target {
        user_uuid: user.uuid.clone(),
        username: user.username.clone(),
        device_uuid: device.to_owned(),
    }
}

/// Lists every user (verbose) and judges it. A listing that fails part way is an error: a
/// partial survey must not pass for the whole account.
pub async fn survey(
    client: Arc<EquinixClient>,
    policy: &Policy,
    page_size: u64,
    page_concurrency: usize,
    stop: Shutdown,
) -> Result<Survey, EquinixError> {
    let filter = ListFilter {
        verbose: true,
        ..ListFilter::default()
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let fetch = PageFetcher::new(client, filter, page_size, page_concurrency).run(tx, stop);
    let gather = async {
        let mut survey = Survey::default();
        while let Some(user) = rx.recv().await {
            survey.add(policy, &user);
        }
        survey
    };
    let (stats, survey) = tokio::join!(fetch, gather);
    match stats.error {
        Some(e) => Err(e),
        None => Ok(survey),
    }
}

/// The journal key of an association.
pub fn key(association: &Target) -> String {
    format!("{}/{}", association.user_uuid, association.device_uuid)
}

/// What a journal of this endpoint and policy is for: runs of other policies or accounts
/// never share one.
pub fn journal_fingerprint(endpoint: &str, policy_fingerprint: &str) -> String {
    let text = format!("equinix\n{endpoint}\n{policy_fingerprint}");
    crate::hash::sha256_hex(text.as_bytes())
}

/// A saved plan of detaches (`--plan-out`), applied exactly with `--plan … --apply`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachPlan {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    pub created_unix_ms: i64,
    /// The API base the plan was made against; it applies there only.
    pub endpoint: String,
    /// The policy as given, and the SHA-256 of its bytes.
    pub policy: String,
    pub policy_fingerprint: String,
    pub detaches: Vec<Target>,
    /// SHA-256 (hex) of the plan with this field empty.
    #[serde(default)]
    pub checksum: String,
}

impl DetachPlan {
    pub fn new(endpoint: &str, policy: &str, policy_fingerprint: &str) -> DetachPlan {
        let now_ms = crate::time::now_unix_ms();
        DetachPlan {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: crate::time::format_rfc3339_millis(now_ms),
            created_unix_ms: now_ms,
            endpoint: endpoint.to_owned(),
            policy: policy.to_owned(),
            policy_fingerprint: policy_fingerprint.to_owned(),
            detaches: Vec::new(),
            checksum: String::new(),
        }
    }

    /// The plan of `detaches`, in a stable order (by user, then device).
    pub fn with_detaches(mut self, detaches: &[Target]) -> DetachPlan {
        self.detaches = detaches.to_vec();
        self.detaches
            .sort_by(|a, b| (&a.user_uuid, &a.device_uuid).cmp(&(&b.user_uuid, &b.device_uuid)));
        self
    }
}

crate::sealed_plan!(DetachPlan, FORMAT, VERSION);

/// What the apply phase did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Failed detaches and verifications of this run.
    pub failures: usize,
    pub budget_stop: Option<BudgetStop>,
    pub interrupted: bool,
    /// The journal could not be written: no detach was sent after it.
    pub journal_error: Option<JournalError>,
}

/// Applies detaches: one at a time, each paced by the client's write limiter.
pub struct Detacher<'a> {
    pub client: &'a EquinixClient,
    pub journal: Option<&'a Journal>,
    pub stop: Shutdown,
}

/// Whether the read of a user shows the device.
enum Presence {
    Attached,
    Gone,
}

impl Detacher<'_> {
    /// Goes through `planned` in waves: associations the journal finished are reported as
    /// it says and never sent again; the rest in a stable order spread over devices, each
    /// wave done before the next, and none once the failures exceed the budget. `each` gets
    /// every entry as it is decided; its error ends the run at once.
    pub async fn apply<E>(
        &self,
        planned: Vec<Target>,
        recovered: &Recovered,
        staging: &Staging,
        each: &mut impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<Applied, E> {
        let mut left = Vec::with_capacity(planned.len());
        for association in planned {
            match recovered.outcomes.get(&key(&association)) {
                Some(done) => each(from_journal(association, done))?,
                None => left.push(association),
            }
        }
        left.sort_by_cached_key(key);
        let ordered = waves::spread_over_sites(left, |t| t.device_uuid.clone());
        let (total, waves) = staging.waves.left(staging.resume, ordered.len());
        let allowed = staging.max_failures.map(|b| b.allowed(total));
        let mut rest = ordered.into_iter();
        let mut applied = Applied::default();
        let mut stop = self.stop.clone();
        for (i, &(index, size)) in waves.iter().enumerate() {
            let number = index.saturating_add(1);
            let wave: Vec<Target> = rest.by_ref().take(size).collect();
            self.journal_wave(index, wave.len(), total, &mut applied);
            self.wave(wave, number, recovered, &mut applied, each)
                .await?;
            applied.interrupted |= stop.is_triggered();
            if let Some(why) = self.over_budget(allowed, number, &mut applied) {
                for association in rest.by_ref() {
                    each(deferred(association, number.saturating_add(1), why.clone()))?;
                }
                break;
            }
            if waves.get(i + 1).is_some() && !staging.pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(staging.pause) => {}
                    () = stop.wait() => {}
                }
            }
        }
        Ok(applied)
    }

    /// Journals that wave `index` (0-based) starts; a journal that fails stops the detaches.
    fn journal_wave(&self, index: usize, devices: usize, total: usize, applied: &mut Applied) {
        let Some(journal) = self.journal else { return };
        let wave = WaveProgress {
            number: index,
            devices,
            total,
            done: 0,
        };
        if let Err(e) = journal.wave(wave) {
            applied.journal_error.get_or_insert(e);
        }
    }

    /// Detaches one wave's associations in order; once a stop is asked for or the journal
    /// failed, the rest of the wave is deferred unsent.
    async fn wave<E>(
        &self,
        wave: Vec<Target>,
        number: usize,
        recovered: &Recovered,
        applied: &mut Applied,
        each: &mut impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        for association in wave {
            if let Some(why) = halted(applied, &self.stop) {
                each(deferred(association, number, why))?;
                continue;
            }
            let resumed = recovered.pending.contains(&key(&association));
            let (entry, journal_error) = match self.detach_one(association, number, resumed).await {
                Ok(entry) => (entry, None),
                Err((entry, e)) => (entry, Some(e)),
            };
            if entry.status == Status::Failed {
                applied.failures = applied.failures.saturating_add(1);
            }
            if journal_error.is_some() {
                applied.journal_error = journal_error;
            }
            each(entry)?;
        }
        Ok(())
    }

    /// After wave `number`: when the failures exceed the budget, the stop (journaled) and
    /// why the associations left are deferred.
    fn over_budget(
        &self,
        allowed: Option<usize>,
        number: usize,
        applied: &mut Applied,
    ) -> Option<String> {
        let failures = applied.failures;
        let allowed = allowed.filter(|&a| failures > a)?;
        let stop = BudgetStop {
            next_wave: number,
            failures,
            allowed,
        };
        applied.budget_stop = Some(stop);
        if let Some(Err(e)) = self.journal.map(|j| j.stopped(stop)) {
            applied.journal_error.get_or_insert(e);
        }
        Some(format!(
            "not detached: {failures} failed detach(es) or verification(s) exceeded --max-failures ({allowed}) after wave {number}"
        ))
    }

    /// Reads the user, detaches when still attached (journaled), and reads it back. When
    /// the journal cannot be written the entry comes with the error: `deferred` when the
    /// intent failed (nothing sent), what happened when only the outcome failed.
    async fn detach_one(
        &self,
        association: Target,
        wave: usize,
        resumed: bool,
    ) -> Result<Entry, (Entry, JournalError)> {
        let entry = |association, status, detail: String| Entry {
            association,
            status,
            wave: Some(wave),
            detail,
        };
        match self.presence(&association).await {
            Err(e) => {
                let why = format!("not detached: the user could not be read first: {e}");
                return Ok(entry(association, Status::Failed, why));
            }
            Ok(Presence::Gone) if resumed => {
                // Announced by a run that stopped before its outcome: that detach went out.
                let recorded = self.record(&association, verified());
                let why = "detached by an earlier, interrupted run (read back)".to_owned();
                let done = entry(association, Status::Detached, why);
                return match recorded {
                    Ok(()) => Ok(done),
                    Err(e) => Err((done, e)),
                };
            }
            Ok(Presence::Gone) => {
                let why = "already gone: the user is no longer on this device".to_owned();
                return Ok(entry(association, Status::Stale, why));
            }
            Ok(Presence::Attached) => {}
        }
        if let Some(journal) = self.journal {
            let at = key(&association);
            if let Err(e) = journal.intent(&at, &association.username, false) {
                return Err((deferred(association, wave, JOURNAL_FAILED), e));
            }
        }
        let (status, outcome) = self.detach_and_verify(&association).await;
        let detail = outcome.error.clone().unwrap_or_default();
        let recorded = self.record(&association, outcome);
        let done = entry(association, status, detail);
        // Sent, but not journaled: reported as what happened; later detaches stop.
        match recorded {
            Ok(()) => Ok(done),
            Err(e) => Err((done, e)),
        }
    }

    async fn detach_and_verify(&self, association: &Target) -> (Status, Outcome) {
        let failed = |after, error: String| Outcome {
            after,
            verified: false,
            error: Some(error),
        };
        let sent = self
            .client
            .detach(&association.user_uuid, &association.device_uuid)
            .await;
        if let Err(e) = sent {
            return (Status::Failed, failed(Some(true), e.to_string()));
        }
        match self.presence(association).await {
            Ok(Presence::Gone) => (Status::Detached, verified()),
            Ok(Presence::Attached) => (
                Status::Failed,
                failed(
                    Some(true),
                    "the detach was accepted but the read-back still shows the device".into(),
                ),
            ),
            Err(e) => (
                Status::Failed,
                failed(None, format!("detached, but the read-back failed: {e}")),
            ),
        }
    }

    fn record(&self, association: &Target, outcome: Outcome) -> Result<(), JournalError> {
        match self.journal {
            Some(journal) => journal.outcome(&key(association), &association.username, outcome),
            None => Ok(()),
        }
    }

    /// `GET` the user: is the device still among its devices? A user that is gone (404:
    /// it went with its last device) is on none.
    async fn presence(&self, association: &Target) -> Result<Presence, EquinixError> {
        match self.client.get_user(&association.user_uuid).await {
            Ok(user) => {
                let devices = user.device_uuids.unwrap_or_default();
                let on = devices
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(&association.device_uuid));
                Ok(if on {
                    Presence::Attached
                } else {
                    Presence::Gone
                })
            }
            Err(EquinixError::Api { status: 404, .. }) => Ok(Presence::Gone),
            Err(e) => Err(e),
        }
    }
}

const JOURNAL_FAILED: &str = "not detached: the journal could not be written";

fn verified() -> Outcome {
    Outcome {
        after: Some(false),
        verified: true,
        error: None,
    }
}

/// Why no further detach may start, if one may not.
fn halted(applied: &Applied, stop: &Shutdown) -> Option<String> {
    if applied.journal_error.is_some() {
        return Some(JOURNAL_FAILED.to_owned());
    }
    stop.is_triggered()
        .then(|| "not detached: the run was interrupted".to_owned())
}

fn deferred(association: Target, wave: usize, why: impl Into<String>) -> Entry {
    Entry {
        association,
        status: Status::Deferred,
        wave: Some(wave),
        detail: why.into(),
    }
}

/// An association an earlier run of the journal finished: as it ended, never sent again.
fn from_journal(association: Target, done: &Outcome) -> Entry {
    let (status, detail) = if done.verified {
        (
            Status::Detached,
            "detached by an earlier run (journal)".to_owned(),
        )
    } else {
        let error = done.error.as_deref().unwrap_or("not verified");
        (
            Status::Failed,
            format!("failed in an earlier run (journal), not retried: {error}"),
        )
    };
    Entry {
        association,
        status,
        wave: None,
        detail,
    }
}

/// The distinct users among `associations`.
pub fn users_of(associations: &[Target]) -> usize {
    associations
        .iter()
        .map(|a| a.user_uuid.as_str())
        .collect::<HashSet<_>>()
        .len()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::equinix::PodStatus;
    use std::path::Path;

    fn user(uuid: &str, name: &str, devices: &[&str], metros: &[&str]) -> SshUser {
        SshUser {
            uuid: uuid.into(),
            username: name.into(),
            device_uuids: Some(devices.iter().map(|d| (*d).to_owned()).collect()),
            metros: metros
                .iter()
                .map(|m| ((*m).to_owned(), PodStatus::Active))
                .collect(),
        }
    }

    #[test]
    fn the_survey_plans_exactly_the_associations_no_rule_allows() {
        let policy = Policy::parse(
            Path::new("p.toml"),
            "[[allow]]\nusers = [\"noc-*\"]\ndevices = [\"*\"]\n\n[[allow]]\nusers = [\"vendor\"]\ndevices = [\"d1\"]\nmetros = [\"sv*\"]\n",
        )
        .unwrap();
        let mut survey = Survey::default();
        for u in [
            user("u1", "noc-a", &["d1", "d2"], &[]),
            user("u2", "vendor", &["d1", "d2"], &["da1.pod1"]),
            user("u3", "vendor", &["d3"], &["SV"]),
            user("u4", "mallory", &["d1", "d1"], &["sv5.pod1"]),
            user("u5", "ghost", &[], &[]),
        ] {
            survey.add(&policy, &u);
        }
        let planned: Vec<String> = survey.detaches.iter().map(key).collect();
        assert_eq!(planned, ["u2/d2", "u4/d1"]);
        assert_eq!((survey.users, survey.allowed), (5, 4));
        assert_eq!(survey.orphans.len(), 1);
        assert_eq!(survey.orphans[0].username, "ghost");
    }

    #[test]
    fn a_detach_plan_round_trips_and_an_edit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let t = |u: &str, d: &str| Target {
            user_uuid: u.into(),
            username: "x".into(),
            device_uuid: d.into(),
        };
        let mut plan = DetachPlan::new("http://127.0.0.1:1", "p.toml", "abc")
            .with_detaches(&[t("u2", "d1"), t("u1", "d2")]);
        crate::remediate::plan::write_sealed(&mut plan, &path).unwrap();
        let max = std::time::Duration::from_secs(60);
        let loaded: DetachPlan = crate::remediate::plan::load_sealed(&path, max).unwrap();
        assert_eq!(loaded, plan);
        assert_eq!(loaded.detaches[0], t("u1", "d2"));
        // A camera plan is not a detach plan, and an edited byte is refused.
        let camera =
            crate::remediate::plan::load_sealed::<crate::remediate::plan::Plan>(&path, max);
        assert!(camera.is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"u2\"", "\"u3\"", 1)).unwrap();
        let edited = crate::remediate::plan::load_sealed::<DetachPlan>(&path, max);
        assert!(matches!(
            edited,
            Err(crate::remediate::plan::PlanError::Edited { .. })
        ));
    }
}
