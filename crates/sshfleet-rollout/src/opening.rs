//! The one rollout opener, for cameras and Equinix alike: the journal opened (its
//! unfinished run resumed), the waves taken up where it left them, the rule that a run its
//! failure budget stopped goes on only when told, and a saved plan checked against the run
//! that applies it. Each refusal is an [`OpenError`], before anything is sent.

use std::path::{Path, PathBuf};

use crate::driver::Staging;
use crate::journal::{BudgetStop, Journal, JournalError, JournalHeader, Recovered};
use crate::plan::Plan;
use crate::waves::{Budget, Resume, Waves};
use sshfleet_core::model::SshState;

/// What a rollout changes, for the words of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// SSH on cameras.
    Devices,
    /// Equinix SSH users' device associations.
    Associations,
}

impl Subject {
    /// What fails and counts against the budget.
    fn failures(self) -> &'static str {
        match self {
            Subject::Devices => "failed writes or verifications",
            Subject::Associations => "failed detaches or verifications",
        }
    }

    fn items(self) -> &'static str {
        match self {
            Subject::Devices => "devices",
            Subject::Associations => "associations",
        }
    }
}

/// What a file names as its target, read as a state: `plan` or `journal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Plan,
    Journal,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Plan => "plan",
            Source::Journal => "journal",
        }
    }
}

/// Why a rollout cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the last run of this journal was stopped by its failure budget before wave {} ({} {}, {} allowed); look at the failed {}, then rerun with --continue-after-failures to go on", .stop.next_wave + 1, .stop.failures, .subject.failures(), .stop.allowed, .subject.items())]
    BudgetStopped { stop: BudgetStop, subject: Subject },
    #[error("the {} {} has an unknown target {found:?}", .kind.as_str(), .path.display())]
    UnknownTarget {
        kind: Source,
        path: PathBuf,
        found: String,
    },
    #[error("the plan {} sets SSH {planned}, not {wanted}: give --ssh {planned}", .path.display())]
    PlanTarget {
        path: PathBuf,
        planned: SshState,
        wanted: SshState,
    },
    #[error("the plan {} was made for shard {}, this run is shard {}", .path.display(), or_none(.planned), or_none(.run))]
    PlanShard {
        path: PathBuf,
        planned: Option<String>,
        run: Option<String>,
    },
    #[error("the inventory has changed since the plan {} was made (its devices differ from the plan's {inventory}); plan again", .path.display())]
    PlanInventory { path: PathBuf, inventory: String },
    #[error("the plan {} was made against {planned}, not {endpoint}; plan again against this endpoint", .path.display())]
    PlanEndpoint {
        path: PathBuf,
        planned: String,
        endpoint: String,
    },
    #[error("the policy {} is not the one the plan {} was made from ({planned}); plan again", .policy.display(), .path.display())]
    PlanPolicy {
        path: PathBuf,
        policy: PathBuf,
        planned: String,
    },
}

fn or_none(text: &Option<String>) -> &str {
    text.as_deref().unwrap_or("(none)")
}

/// The SSH state a plan or journal names as its target (`enabled` or `disabled`).
pub fn ssh_target(target: &str, source: Source, path: &Path) -> Result<SshState, OpenError> {
    match target {
        "enabled" => Ok(SshState::Enabled),
        "disabled" => Ok(SshState::Disabled),
        other => Err(OpenError::UnknownTarget {
            kind: source,
            path: path.to_owned(),
            found: other.to_owned(),
        }),
    }
}

/// The waves a run asked for (`--waves`, `--max-failures`, `--wave-pause`,
/// `--continue-after-failures`).
#[derive(Clone, Debug, Default)]
pub struct Asked {
    pub waves: Waves,
    pub max_failures: Option<Budget>,
    pub pause: std::time::Duration,
    pub continue_after_failures: bool,
}

/// Whether a run goes on after a run its failure budget stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuing {
    /// The journal's last run was not stopped by its budget.
    No,
    /// It was, and `--continue-after-failures` was given: journal that it goes on.
    AfterBudgetStop,
}

impl Asked {
    /// The staging of this run, taking up the waves where `recovered` left them; a run its
    /// failure budget stopped goes on only with `--continue-after-failures`.
    pub fn staging(
        self,
        recovered: &mut Recovered,
        subject: Subject,
    ) -> Result<(Staging, Continuing), OpenError> {
        let resume: Resume = recovered.resume();
        let continuing = match recovered.stopped.take() {
            Some(stop) if !self.continue_after_failures => {
                return Err(OpenError::BudgetStopped { stop, subject })
            }
            Some(_) => Continuing::AfterBudgetStop,
            None => Continuing::No,
        };
        let staging = Staging {
            waves: self.waves,
            max_failures: self.max_failures,
            pause: self.pause,
            resume,
            confirm: None,
        };
        Ok((staging, continuing))
    }
}

/// A journal opened for a run: an unfinished run of it resumes, else a new one starts.
pub struct Opened {
    pub journal: Journal,
    pub recovered: Recovered,
}

impl Opened {
    pub fn open(path: &Path, header: &JournalHeader) -> Result<Opened, OpenError> {
        let (journal, recovered) = Journal::open(path, header)?;
        Ok(Opened { journal, recovered })
    }

    /// What is said when it opens: a resume and how far the run it resumes got, a new run
    /// after earlier ones, or only its name.
    pub fn describe(&self, subject: Subject) -> String {
        let path = self.journal.path().display();
        let (done, pending) = (self.recovered.outcomes.len(), self.recovered.pending.len());
        let earlier = self.recovered.earlier_runs;
        match subject {
            _ if done + pending == 0 && earlier == 0 => format!("journal {path}"),
            Subject::Devices if done + pending > 0 => format!(
                "journal {path}: resuming its unfinished run ({done} devices done, read again; {pending} to re-check)"
            ),
            Subject::Devices => format!(
                "journal {path}: a new run after {earlier} finished or unstarted one(s); every device is read again"
            ),
            Subject::Associations if done + pending > 0 => format!(
                "journal {path}: resuming ({done} associations done, {pending} to re-check)"
            ),
            Subject::Associations => format!("journal {path}"),
        }
    }
}

/// The run a saved camera plan is checked against.
pub struct PlanRun<'a> {
    pub target: SshState,
    pub shard: Option<String>,
    /// The inventory's fingerprint (this shard's devices).
    pub fingerprint: &'a str,
}

/// A saved plan applies to the inventory, shard and target it was made for, or not at all.
pub fn check_plan(plan: &Plan, path: &Path, run: &PlanRun<'_>) -> Result<(), OpenError> {
    let planned = ssh_target(&plan.target, Source::Plan, path)?;
    if planned != run.target {
        return Err(OpenError::PlanTarget {
            path: path.to_owned(),
            planned,
            wanted: run.target,
        });
    }
    if plan.shard != run.shard {
        return Err(OpenError::PlanShard {
            path: path.to_owned(),
            planned: plan.shard.clone(),
            run: run.shard.clone(),
        });
    }
    if run.fingerprint != plan.inventory_fingerprint {
        return Err(OpenError::PlanInventory {
            path: path.to_owned(),
            inventory: plan.inventory.clone(),
        });
    }
    Ok(())
}

/// What a saved detach plan was made against: its endpoint, and the policy (as given, and
/// its fingerprint).
pub struct DetachPlanMade<'a> {
    pub endpoint: &'a str,
    pub policy: &'a str,
    pub policy_fingerprint: &'a str,
}

/// A saved detach plan applies against the endpoint it was made for, and with the policy it
/// was made from when one is given (its file and fingerprint).
pub fn check_detach_plan(
    plan: &DetachPlanMade<'_>,
    path: &Path,
    endpoint: &str,
    policy: Option<(&Path, &str)>,
) -> Result<(), OpenError> {
    if plan.endpoint != endpoint {
        return Err(OpenError::PlanEndpoint {
            path: path.to_owned(),
            planned: plan.endpoint.to_owned(),
            endpoint: endpoint.to_owned(),
        });
    }
    match policy {
        Some((policy, fingerprint)) if fingerprint != plan.policy_fingerprint => {
            Err(OpenError::PlanPolicy {
                path: path.to_owned(),
                policy: policy.to_owned(),
                planned: plan.policy.to_owned(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::journal::WaveProgress;

    fn stopped() -> Recovered {
        Recovered {
            stopped: Some(BudgetStop {
                next_wave: 2,
                failures: 4,
                allowed: 3,
            }),
            wave: Some(WaveProgress {
                number: 1,
                devices: 5,
                total: 50,
                done: 5,
            }),
            ..Recovered::default()
        }
    }

    fn asked(continue_after_failures: bool) -> Asked {
        Asked {
            waves: "1,10%,100%".parse().unwrap(),
            continue_after_failures,
            ..Asked::default()
        }
    }

    #[test]
    fn a_run_its_budget_stopped_goes_on_only_when_told() {
        let refused = asked(false).staging(&mut stopped(), Subject::Devices);
        let Err(e) = refused else {
            panic!("a budget-stopped journal was continued without --continue-after-failures")
        };
        assert_eq!(
            e.to_string(),
            "the last run of this journal was stopped by its failure budget before wave 3 (4 failed writes or verifications, 3 allowed); look at the failed devices, then rerun with --continue-after-failures to go on"
        );
        let equinix = asked(false).staging(&mut stopped(), Subject::Associations);
        let text = equinix.err().unwrap().to_string();
        assert!(
            text.contains(
                "(4 failed detaches or verifications, 3 allowed); look at the failed associations"
            ),
            "{text}"
        );
        let mut recovered = stopped();
        let (staging, continuing) = asked(true)
            .staging(&mut recovered, Subject::Devices)
            .unwrap();
        assert_eq!(continuing, Continuing::AfterBudgetStop);
        // It takes up the waves before the one the stop names, cut from the first plan.
        assert_eq!(
            staging.resume,
            Resume {
                first_wave: 2,
                total: Some(50),
                done_in_first: 0
            }
        );
        assert_eq!(recovered.stopped, None);
        let (_, fresh) = asked(false)
            .staging(&mut Recovered::default(), Subject::Devices)
            .unwrap();
        assert_eq!(fresh, Continuing::No);
    }

    fn plan(target: &str, shard: Option<&str>) -> Plan {
        let inventory = Path::new("/srv/cams.csv");
        Plan::new(inventory, "abc".into(), target, shard.map(Into::into))
    }

    #[test]
    fn a_saved_plan_is_refused_for_another_target_shard_or_inventory() {
        let path = Path::new("plan.json");
        let run = PlanRun {
            target: SshState::Disabled,
            shard: None,
            fingerprint: "abc",
        };
        let check = |plan: &Plan, run: &PlanRun<'_>| {
            check_plan(plan, path, run).err().map(|e| e.to_string())
        };
        assert_eq!(check(&plan("disabled", None), &run), None);
        assert_eq!(
            check(&plan("enabled", None), &run).unwrap(),
            "the plan plan.json sets SSH enabled, not disabled: give --ssh enabled"
        );
        assert_eq!(
            check(&plan("off", None), &run).unwrap(),
            "the plan plan.json has an unknown target \"off\""
        );
        assert_eq!(
            check(&plan("disabled", Some("2/4")), &run).unwrap(),
            "the plan plan.json was made for shard 2/4, this run is shard (none)"
        );
        let other = PlanRun {
            fingerprint: "def",
            ..run
        };
        assert_eq!(
            check(&plan("disabled", None), &other).unwrap(),
            "the inventory has changed since the plan plan.json was made (its devices differ from the plan's /srv/cams.csv); plan again"
        );
    }

    #[test]
    fn a_detach_plan_is_refused_for_another_endpoint_or_policy() {
        let path = Path::new("detach.json");
        let made = DetachPlanMade {
            endpoint: "https://api.example",
            policy: "policy.toml",
            policy_fingerprint: "f1",
        };
        let policy = Path::new("new.toml");
        let check = |endpoint, policy| {
            check_detach_plan(&made, path, endpoint, policy)
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(check("https://api.example", Some((policy, "f1"))), None);
        assert_eq!(check("https://api.example", None), None);
        assert_eq!(
            check("https://other.example", None).unwrap(),
            "the plan detach.json was made against https://api.example, not https://other.example; plan again against this endpoint"
        );
        assert_eq!(
            check("https://api.example", Some((policy, "f2"))).unwrap(),
            "the policy new.toml is not the one the plan detach.json was made from (policy.toml); plan again"
        );
    }

    #[test]
    fn targets_are_read_as_states_and_nothing_else() {
        let path = Path::new("j.jsonl");
        let read = |t| ssh_target(t, Source::Journal, path).map_err(|e| e.to_string());
        assert_eq!(read("enabled"), Ok(SshState::Enabled));
        assert_eq!(read("disabled"), Ok(SshState::Disabled));
        assert_eq!(
            read("detached"),
            Err("the journal j.jsonl has an unknown target \"detached\"".to_owned())
        );
    }

    #[test]
    fn an_opened_journal_says_whether_it_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let header = JournalHeader::new("inv".into(), "disabled", None);
        let opened = Opened::open(&path, &header).unwrap();
        let shown = path.display();
        assert_eq!(
            opened.describe(Subject::Devices),
            format!("journal {shown}")
        );
        opened.journal.intent("k1", "10.0.0.1", false).unwrap();
        drop(opened);
        let again = Opened::open(&path, &header).unwrap();
        assert_eq!(
            again.describe(Subject::Devices),
            format!("journal {shown}: resuming its unfinished run (0 devices done, read again; 1 to re-check)")
        );
        assert_eq!(
            again.describe(Subject::Associations),
            format!("journal {shown}: resuming (0 associations done, 1 to re-check)")
        );
        // Another run's journal is refused, with the journal's own words.
        let other = JournalHeader::new("inv".into(), "enabled", None);
        let refused = Opened::open(&path, &other).err().unwrap();
        assert!(matches!(
            refused,
            OpenError::Journal(JournalError::Mismatch { .. })
        ));
    }
}
