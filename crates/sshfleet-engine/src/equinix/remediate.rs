//! Policy remediation of SSH users (`equinix ssh-users remediate`): survey every user
//! against the policy, plan the detaches of the associations it does not allow, save that
//! plan sealed, and apply it in waves under a failure budget, journaled (intent before each
//! detach, outcome after) and verified by reading the user back. Never prints.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::equinix::bulk::Target;
use crate::equinix::policy::{Policy, Verdict};
use crate::remediate::{Journal, JournalError, Outcome, Recovered, Staging};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_equinix::{
    Dissociation, EquinixClient, EquinixError, ListFilter, PageFetcher, SshUser,
};
use sshfleet_rollout::driver::{Driver, Left, Rollout, Wave, WaveDone};
use sshfleet_rollout::journal::BudgetStop;
use sshfleet_rollout::waves;

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
    /// Sent, but no read-back shows it done (a record without devices, an unexplained 404,
    /// a failed read): a failure for the budget.
    Unverified,
    /// Not sent: it would delete the user (its last device) and that was not allowed.
    Held,
    /// Already gone when its turn came: nothing sent.
    Stale,
    /// Left by the failure budget, a stop request or a failed journal.
    Deferred,
    /// A user on no device: for follow-up only (the API cannot delete it).
    Orphan,
}

impl Status {
    /// Counted against the failure budget.
    pub(crate) fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Unverified)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Detached => "detached",
            Status::Failed => "failed",
            Status::Unverified => "unverified",
            Status::Held => "held",
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
    /// In listing order; a user's detaches by device, the one that deletes it last.
    pub detaches: Vec<Target>,
    /// Users attached to no device (`device_uuid` empty).
    pub orphans: Vec<Target>,
    /// Users the listing gave without `deviceUuids`, to read one by one before judging.
    pub unread: Vec<SshUser>,
    /// Users whose devices no read showed: they cannot be judged.
    pub unjudged: Vec<String>,
}

impl Survey {
    /// Judges one listed user: its associations by the policy, and whether it is an orphan.
    /// A user listed without its devices waits in `unread`.
    pub fn add(&mut self, policy: &Policy, user: SshUser) {
        if user.device_uuids.is_none() {
            self.unread.push(user);
            return;
        }
        self.judge(policy, &user);
    }

    fn judge(&mut self, policy: &Policy, user: &SshUser) {
        self.users = self.users.saturating_add(1);
        let Some(devices) = &user.device_uuids else {
            self.unjudged.push(user.uuid.clone());
            return;
        };
        if devices.is_empty() {
            self.orphans.push(target(user, ""));
        }
        // An API that listed a device twice still has one association to judge.
        let mut distinct: Vec<&str> = devices.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut planned = Vec::new();
        for device in &distinct {
            match policy.verdict(user, device) {
                Verdict::Allowed { .. } => self.allowed = self.allowed.saturating_add(1),
                Verdict::NotAllowed => planned.push(target(user, device)),
            }
        }
        if planned.len() == distinct.len() {
            // Every device goes: the last detach deletes the user.
            if let Some(last) = planned.last_mut() {
                last.deletes_user = true;
            }
        }
        self.detaches.extend(planned);
    }

    /// Users that the plan deletes (their last device detached).
    pub fn deleted_users(&self) -> usize {
        deleted_users(&self.detaches)
    }
}

/// How many users `detaches` delete.
pub fn deleted_users(detaches: &[Target]) -> usize {
    detaches.iter().filter(|t| t.deletes_user).count()
}

fn target(user: &SshUser, device: &str) -> Target {
    Target {
        user_uuid: user.uuid.clone(),
        username: user.username.clone(),
        device_uuid: device.to_owned(),
        deletes_user: false,
    }
}

/// Why a survey cannot be used for policy decisions.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error(transparent)]
    Listing(#[from] EquinixError),
    /// Users whose devices neither the listing nor a read of each showed.
    #[error("{} user(s) came without their devices (no deviceUuids) in the listing and when read one by one ({}): they cannot be judged, so no detach is planned", .0.len(), sample(.0))]
    Unjudged(Vec<String>),
}

/// Up to five ids, and how many more.
fn sample(ids: &[String]) -> String {
    let mut text = ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > 5 {
        text.push_str(&format!(" and {} more", ids.len() - 5));
    }
    text
}

/// Lists every user (verbose) and judges it; users listed without devices are read one by
/// one first. A listing that fails part way or is not exact, or a user whose devices no
/// read shows, is an error: a partial survey must not pass for the whole account.
pub async fn survey(
    client: Arc<EquinixClient>,
    policy: &Policy,
    page_size: u64,
    page_concurrency: usize,
    stop: Shutdown,
) -> Result<Survey, SurveyError> {
    let filter = ListFilter {
        verbose: true,
        ..ListFilter::default()
    };
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let fetch = PageFetcher::new(client.clone(), filter, page_size, page_concurrency).run(tx, stop);
    let gather = async {
        let mut survey = Survey::default();
        while let Some(user) = rx.recv().await {
            survey.add(policy, user);
        }
        survey
    };
    let (stats, mut survey) = tokio::join!(fetch, gather);
    if let Some(e) = stats.error {
        return Err(e.into());
    }
    let unread = std::mem::take(&mut survey.unread);
    for user in read_each(&client, unread, page_concurrency).await? {
        survey.judge(policy, &user);
    }
    if !survey.unjudged.is_empty() {
        return Err(SurveyError::Unjudged(std::mem::take(&mut survey.unjudged)));
    }
    Ok(survey)
}

/// `GET`s each user, `concurrency` at once; a user gone since the listing (404) is left out.
async fn read_each(
    client: &EquinixClient,
    users: Vec<SshUser>,
    concurrency: usize,
) -> Result<Vec<SshUser>, EquinixError> {
    let mut read = Vec::with_capacity(users.len());
    let mut pending = users.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < concurrency.max(1) {
            let Some(user) = pending.next() else { break };
            running.push(async move { client.get_user(&user.uuid).await });
        }
        match running.next().await {
            None => return Ok(read),
            Some(Ok(user)) => read.push(user),
            Some(Err(EquinixError::Api { status: 404, .. })) => {}
            Some(Err(e)) => return Err(e),
        }
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
    sshfleet_core::hash::sha256_hex(text.as_bytes())
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
        let now_ms = sshfleet_core::time::now_unix_ms();
        DetachPlan {
            format: FORMAT.to_owned(),
            version: VERSION,
            created_at: sshfleet_core::time::format_rfc3339_millis(now_ms),
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

sshfleet_rollout::sealed_plan!(DetachPlan, FORMAT, VERSION);

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

/// Applies detaches: up to `in_flight` at once, each paced by the client's write limiter,
/// one user's detaches one after the other (the API deletes a user with its last device).
pub struct Detacher<'a> {
    pub client: &'a EquinixClient,
    pub journal: Option<&'a Journal>,
    pub stop: Shutdown,
    /// Detaches in flight at once (at least one).
    pub in_flight: usize,
    pub deletion: UserDeletion,
}

/// Whether a detach that removes a user's last device (and so deletes the user) may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserDeletion {
    /// `--allow-user-deletion`.
    Allowed,
    /// Such detaches are `held`, never sent.
    HeldBack,
}

/// What a read of the user says about one of its associations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The user's record lists the device, among `devices` distinct ones.
    On { devices: usize },
    /// The user's record lists its devices, and this one is not among them.
    Off,
    /// A record without `deviceUuids`: it shows nothing either way.
    NoDevices,
    /// 404: no such user (or an API that says so wrongly).
    NotFound,
}

/// Whether an earlier, interrupted run journaled this detach's intent without its outcome:
/// a user then found detached is that run's work, not stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Earlier {
    Announced,
    Unannounced,
}

/// One async lock per user: a user's detaches never overlap, so the read before each shows
/// whether it is the last device.
#[derive(Default)]
struct UserLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl UserLocks {
    fn of(&self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(user.to_owned()).or_default().clone()
    }
}

/// A finished detach and the journal error that came with it, if any.
type Done = Result<Entry, (Entry, JournalError)>;

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
        let mut ordered = waves::spread_over_sites(left, |t| t.device_uuid.clone());
        deletions_last(&mut ordered);
        let driver = Driver {
            staging,
            journal: self.journal,
            stop: self.stop.clone(),
        };
        let count = ordered.len();
        let mut waves = DetachWaves {
            detacher: self,
            rest: ordered.into_iter(),
            recovered,
            applied: Applied::default(),
            each,
        };
        let driven = driver.run(count, &mut waves).await?;
        let mut applied = waves.applied;
        applied.budget_stop = driven.budget_stop();
        applied.interrupted |= driven.interrupted();
        Ok(applied)
    }

    /// Detaches one wave's associations, up to `in_flight` at once; once a stop is asked
    /// for or the journal failed, the rest of the wave is deferred unsent.
    async fn wave<E>(
        &self,
        wave: Vec<Target>,
        number: usize,
        recovered: &Recovered,
        applied: &mut Applied,
        each: &mut impl FnMut(Entry) -> Result<(), E>,
    ) -> Result<(), E> {
        let locks = UserLocks::default();
        let mut pending = wave.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < self.in_flight.max(1) {
                let Some(association) = pending.next() else {
                    break;
                };
                if let Some(why) = halted(applied, &self.stop) {
                    each(deferred(association, number, why))?;
                    continue;
                }
                let earlier = if recovered.pending.contains(&key(&association)) {
                    Earlier::Announced
                } else {
                    Earlier::Unannounced
                };
                running.push(self.detach_locked(association, number, earlier, &locks));
            }
            let Some(done) = running.next().await else {
                return Ok(());
            };
            let entry = match done {
                Ok(entry) => entry,
                Err((entry, e)) => {
                    applied.journal_error.get_or_insert(e);
                    entry
                }
            };
            if entry.status.is_failure() {
                applied.failures = applied.failures.saturating_add(1);
            }
            each(entry)?;
        }
    }

    async fn detach_locked(
        &self,
        association: Target,
        wave: usize,
        earlier: Earlier,
        locks: &UserLocks,
    ) -> Done {
        let lock = locks.of(&association.user_uuid);
        let _turn = lock.lock().await;
        self.detach_one(association, wave, earlier).await
    }

    /// Reads the user, detaches when still attached (journaled), and reads it back. A
    /// detach that would delete the user is held back unless deletions are allowed. When
    /// the journal cannot be written the entry comes with the error: `deferred` when the
    /// intent failed (nothing sent), what happened when only the outcome failed.
    async fn detach_one(&self, association: Target, wave: usize, earlier: Earlier) -> Done {
        let entry = |association, status, detail: String| Entry {
            association,
            status,
            wave: Some(wave),
            detail,
        };
        if association.deletes_user && self.deletion == UserDeletion::HeldBack {
            return Ok(entry(association, Status::Held, HELD_PLANNED.to_owned()));
        }
        let before = match self.read(&association).await {
            Ok(before) => before,
            Err(e) => {
                let why = format!("not detached: the user could not be read first: {e}");
                return Ok(entry(association, Status::Failed, why));
            }
        };
        if let Some((status, why)) = self.before_sending(before, earlier) {
            let done = entry(association.clone(), status, why.to_owned());
            if status != Status::Detached {
                return Ok(done);
            }
            // Announced by a run that stopped before its outcome: that detach went out.
            return match self.record(&association, verified()) {
                Ok(()) => Ok(done),
                Err(e) => Err((done, e)),
            };
        }
        if let Some(journal) = self.journal {
            let at = key(&association);
            if let Err(e) = journal.intent(&at, &association.username, false) {
                return Err((deferred(association, wave, JOURNAL_FAILED), e));
            }
        }
        let checked = self.detach_and_verify(&association, before).await;
        let recorded = self.record(&association, checked.outcome());
        let done = entry(association, checked.status, checked.detail);
        // Sent, but not journaled: reported as what happened; later detaches stop.
        match recorded {
            Ok(()) => Ok(done),
            Err(e) => Err((done, e)),
        }
    }

    /// What the read before the detach decides without sending anything, if anything.
    fn before_sending(&self, before: Reading, earlier: Earlier) -> Option<(Status, &'static str)> {
        let held = self.deletion == UserDeletion::HeldBack;
        match before {
            Reading::Off if earlier == Earlier::Announced => Some((
                Status::Detached,
                "detached by an earlier, interrupted run (read back)",
            )),
            Reading::Off => Some((
                Status::Stale,
                "already gone: the user's devices no longer include this one",
            )),
            Reading::On { devices } if devices <= 1 && held => {
                Some((Status::Held, HELD_LAST_DEVICE))
            }
            Reading::NoDevices | Reading::NotFound if held => Some((Status::Held, HELD_UNKNOWN)),
            _ => None,
        }
    }

    async fn detach_and_verify(&self, association: &Target, before: Reading) -> Checked {
        let sent = self
            .client
            .detach(&association.user_uuid, &association.device_uuid)
            .await;
        // Read back whatever the answer: a detach answered 5xx may have been made.
        let after = self.read(association).await;
        let gone_before = before == Reading::NotFound;
        if gone_before && matches!(&sent, Err(e) if e.status() == Some(404)) {
            if let Ok(Reading::NotFound) = after {
                return Checked {
                    status: Status::Stale,
                    detail: "already gone: the read and the detach both answer that the user does not exist (404)".into(),
                    still_on: false,
                };
            }
        }
        Checked::of(sent, after)
    }

    fn record(&self, association: &Target, outcome: Outcome) -> Result<(), JournalError> {
        match self.journal {
            Some(journal) => journal.outcome(&key(association), &association.username, outcome),
            None => Ok(()),
        }
    }

    /// `GET` the user: what its record says about the device.
    async fn read(&self, association: &Target) -> Result<Reading, EquinixError> {
        match self.client.get_user(&association.user_uuid).await {
            Ok(user) => Ok(reading(&user, &association.device_uuid)),
            Err(EquinixError::Api { status: 404, .. }) => Ok(Reading::NotFound),
            Err(e) => Err(e),
        }
    }
}

/// The associations of one run, taken wave by wave; `each` gets every entry.
struct DetachWaves<'r, 'a, F> {
    detacher: &'r Detacher<'a>,
    rest: std::vec::IntoIter<Target>,
    recovered: &'r Recovered,
    applied: Applied,
    each: &'r mut F,
}

impl<E, F: FnMut(Entry) -> Result<(), E>> Rollout for DetachWaves<'_, '_, F> {
    type Error = E;

    async fn apply(&mut self, wave: Wave) -> Result<WaveDone, E> {
        let before = self.applied.failures;
        let batch: Vec<Target> = self.rest.by_ref().take(wave.size).collect();
        let handled = batch.len() as u64;
        let (recovered, applied) = (self.recovered, &mut self.applied);
        self.detacher
            .wave(batch, wave.number(), recovered, applied, &mut *self.each)
            .await?;
        Ok(WaveDone {
            handled,
            failed: self.applied.failures.saturating_sub(before),
            interrupted: self.detacher.stop.is_triggered(),
        })
    }

    async fn leave(&mut self, wave: Wave, why: Left) -> Result<(), E> {
        let (number, why) = match why {
            Left::Stopped => {
                let why = halted(&self.applied, &self.detacher.stop);
                (wave.number(), why.unwrap_or_else(|| INTERRUPTED.to_owned()))
            }
            Left::Budget(stop) => (
                stop.next_wave.saturating_add(1),
                format!(
                    "not detached: {} failed or unverified detach(es) exceeded --max-failures ({}) after wave {}",
                    stop.failures, stop.allowed, stop.next_wave
                ),
            ),
            Left::Declined { wave: declined } => (
                wave.number(),
                format!("not detached: wave {declined} was not confirmed"),
            ),
        };
        for association in self.rest.by_ref().take(wave.size) {
            (self.each)(deferred(association, number, why.clone()))?;
        }
        Ok(())
    }

    fn journal_failed(&mut self, error: JournalError) {
        self.applied.journal_error.get_or_insert(error);
    }
}

/// What the record of `user` says about `device`.
pub fn reading(user: &SshUser, device: &str) -> Reading {
    let Some(devices) = &user.device_uuids else {
        return Reading::NoDevices;
    };
    if !devices.iter().any(|d| d.eq_ignore_ascii_case(device)) {
        return Reading::Off;
    }
    let distinct: HashSet<String> = devices.iter().map(|d| d.to_ascii_lowercase()).collect();
    Reading::On {
        devices: distinct.len(),
    }
}

/// A sent detach judged by its answer and its read-back.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub status: Status,
    pub detail: String,
    /// The read-back still showed the device.
    pub still_on: bool,
}

impl Checked {
    /// `detached` only on evidence: a record that lists its devices without this one, or
    /// no user at all when the answer said the detach deleted it. A record without
    /// devices, a 404 the answer does not explain, or a failed read-back is `unverified`.
    pub fn of(
        sent: Result<Dissociation, EquinixError>,
        after: Result<Reading, EquinixError>,
    ) -> Checked {
        let checked = |status, detail: String, still_on| Checked {
            status,
            detail,
            still_on,
        };
        let deleted = matches!(&sent, Ok(d) if d.user_deleted);
        let answer = match &sent {
            Ok(_) => String::new(),
            Err(e) => format!("the detach answered {e}; "),
        };
        match after {
            Ok(Reading::Off) if sent.is_ok() => checked(Status::Detached, String::new(), false),
            Ok(Reading::Off) => checked(
                Status::Detached,
                format!("{answer}the read-back shows the device detached"),
                false,
            ),
            Ok(Reading::NotFound) if deleted => checked(
                Status::Detached,
                "the API deleted the user with its last device (read back: no such user)".into(),
                false,
            ),
            Ok(Reading::NotFound) => checked(
                Status::Unverified,
                format!("{answer}the read-back found no such user (404), though no answer said the detach deleted it"),
                false,
            ),
            Ok(Reading::NoDevices) => checked(
                Status::Unverified,
                format!("{answer}the read-back shows the user without its devices (no deviceUuids): not verified"),
                false,
            ),
            Ok(Reading::On { .. }) if sent.is_ok() => checked(
                Status::Failed,
                "the detach was accepted but the read-back still shows the device".into(),
                true,
            ),
            Ok(Reading::On { .. }) => checked(
                Status::Failed,
                format!("{answer}the read-back still shows the device"),
                true,
            ),
            Err(e) if sent.is_ok() => checked(
                Status::Unverified,
                format!("detached, but the read-back failed: {e}"),
                false,
            ),
            Err(e) => checked(
                Status::Failed,
                format!("{answer}the read-back failed too: {e}"),
                false,
            ),
        }
    }

    /// The journal's record of it.
    fn outcome(&self) -> Outcome {
        match self.status {
            Status::Detached | Status::Stale => verified(),
            _ => Outcome {
                after: self.still_on.then_some(true),
                verified: false,
                error: Some(self.detail.clone()),
            },
        }
    }
}

/// Puts each detach that deletes its user after that user's other detaches, so that it is
/// the last one sent (one user's detaches go in order).
fn deletions_last(ordered: &mut [Target]) {
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, t) in ordered.iter().enumerate() {
        last.insert(t.user_uuid.as_str(), i);
    }
    let swaps: Vec<(usize, usize)> = ordered
        .iter()
        .enumerate()
        .filter(|(_, t)| t.deletes_user)
        .filter_map(|(i, t)| last.get(t.user_uuid.as_str()).map(|&j| (i, j)))
        .filter(|(i, j)| i < j)
        .collect();
    for (i, j) in swaps {
        ordered.swap(i, j);
    }
}

const HELD_PLANNED: &str = "held back: this detach removes the user's last device, and the API deletes the user with it (its password cannot be restored); pass --allow-user-deletion to delete it";
const HELD_LAST_DEVICE: &str = "held back: the user's record shows this is its last device, and the API deletes the user with it; pass --allow-user-deletion to delete it";
const HELD_UNKNOWN: &str = "held back: the user's record does not show its devices, so this detach might delete the user; pass --allow-user-deletion to send it anyway";

const JOURNAL_FAILED: &str = "not detached: the journal could not be written";
const INTERRUPTED: &str = "not detached: the run was interrupted";

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
    stop.is_triggered().then(|| INTERRUPTED.to_owned())
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
    use sshfleet_equinix::PodStatus;
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
            survey.add(&policy, u);
        }
        let planned: Vec<String> = survey.detaches.iter().map(key).collect();
        assert_eq!(planned, ["u2/d2", "u4/d1"]);
        // mallory loses her only device, and with it her account; vendor keeps d1.
        let deletes: Vec<bool> = survey.detaches.iter().map(|t| t.deletes_user).collect();
        assert_eq!(deletes, [false, true]);
        assert_eq!(survey.deleted_users(), 1);
        assert_eq!((survey.users, survey.allowed), (5, 4));
        assert_eq!(survey.orphans.len(), 1);
        assert_eq!(survey.orphans[0].username, "ghost");
    }

    #[test]
    fn a_detach_is_detached_only_on_evidence() {
        let answered = |user_deleted| {
            Ok(Dissociation {
                user_deleted,
                association_deleted: true,
            })
        };
        let failed = || {
            Err(EquinixError::Api {
                method: "DELETE",
                url: "u".into(),
                status: 500,
                problems: Vec::new(),
            })
        };
        let status = |sent, after| Checked::of(sent, after).status;
        assert_eq!(status(answered(false), Ok(Reading::Off)), Status::Detached);
        assert_eq!(status(failed(), Ok(Reading::Off)), Status::Detached);
        assert_eq!(
            status(answered(true), Ok(Reading::NotFound)),
            Status::Detached
        );
        assert_eq!(
            status(answered(false), Ok(Reading::NotFound)),
            Status::Unverified
        );
        assert_eq!(status(failed(), Ok(Reading::NotFound)), Status::Unverified);
        assert_eq!(
            status(answered(true), Ok(Reading::NoDevices)),
            Status::Unverified
        );
        let on = Ok(Reading::On { devices: 2 });
        assert_eq!(status(answered(false), on), Status::Failed);
        let unread = Err(EquinixError::InvalidInput {
            what: "x",
            value: "y".into(),
            reason: "z",
        });
        assert_eq!(status(answered(false), unread.clone()), Status::Unverified);
        assert_eq!(status(failed(), unread), Status::Failed);
    }

    #[test]
    fn a_detach_that_deletes_its_user_goes_after_the_users_others() {
        let t = |u: &str, d: &str, deletes_user| Target {
            user_uuid: u.into(),
            username: "x".into(),
            device_uuid: d.into(),
            deletes_user,
        };
        let mut order = vec![
            t("u1", "d2", true),
            t("u2", "d1", true),
            t("u1", "d1", false),
            t("u1", "d3", false),
        ];
        deletions_last(&mut order);
        let keys: Vec<String> = order.iter().map(key).collect();
        assert_eq!(keys, ["u1/d3", "u2/d1", "u1/d1", "u1/d2"]);
    }

    #[test]
    fn a_detach_plan_round_trips_and_an_edit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let t = |u: &str, d: &str| Target {
            user_uuid: u.into(),
            username: "x".into(),
            device_uuid: d.into(),
            deletes_user: false,
        };
        let mut plan = DetachPlan::new("http://127.0.0.1:1", "p.toml", "abc")
            .with_detaches(&[t("u2", "d1"), t("u1", "d2")]);
        sshfleet_rollout::plan::write_sealed(&mut plan, &path).unwrap();
        let max = std::time::Duration::from_secs(60);
        let loaded: DetachPlan = sshfleet_rollout::plan::load_sealed(&path, max).unwrap();
        assert_eq!(loaded, plan);
        assert_eq!(loaded.detaches[0], t("u1", "d2"));
        // A camera plan is not a detach plan, and an edited byte is refused.
        let camera =
            sshfleet_rollout::plan::load_sealed::<sshfleet_rollout::plan::Plan>(&path, max);
        assert!(camera.is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"u2\"", "\"u3\"", 1)).unwrap();
        let edited = sshfleet_rollout::plan::load_sealed::<DetachPlan>(&path, max);
        assert!(matches!(
            edited,
            Err(sshfleet_rollout::plan::PlanError::Edited { .. })
        ));
    }
}
