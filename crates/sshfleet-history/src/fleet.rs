//! What the fleet view reads of a history many scopes write to (one scanner per site or
//! shard): the latest runs of every scope, and when each site was last seen, from either back
//! end.

use super::{run_row, History, HistoryError, Sqlite, RUN_COLUMNS};
use crate::pg::Pg;
use crate::RunRow;

/// The latest runs of one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeHead {
    pub scope: String,
    /// Its latest run that went through every device it was given (finished, not
    /// interrupted): what the fleet view shows of the scope.
    pub complete: Option<RunRow>,
    /// Its latest finished run of any kind, when that is a later, interrupted one.
    pub interrupted: Option<RunRow>,
}

/// A site and the last time a device of it was seen, in any run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteSeen {
    pub site: String,
    /// RFC 3339, as recorded.
    pub last_seen: String,
}

impl History {
    /// Every scope with a finished run, by scope name: its latest complete run, and a later
    /// interrupted one if there is one.
    pub fn scope_heads(&self) -> Result<Vec<ScopeHead>, HistoryError> {
        let complete = self.latest_runs(Latest::Complete)?;
        let latest = self.latest_runs(Latest::Finished)?;
        let mut heads: Vec<ScopeHead> = Vec::with_capacity(latest.len());
        for run in latest {
            let done = complete.iter().find(|c| c.scope == run.scope).cloned();
            let later = done.as_ref().map_or(true, |d| d.id < run.id);
            heads.push(ScopeHead {
                scope: run.scope.clone(),
                complete: done,
                interrupted: (later && run.interrupted).then_some(run),
            });
        }
        heads.sort_by(|a, b| a.scope.cmp(&b.scope));
        Ok(heads)
    }
}

/// Which latest run of every scope [`History::latest_runs`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Latest {
    /// Finished and not interrupted: the run went through every device it was given.
    Complete,
    /// Finished, interrupted or not.
    Finished,
}

impl Sqlite {
    /// The latest run of every scope, by id.
    pub(crate) fn latest_runs(&self, which: Latest) -> Result<Vec<RunRow>, HistoryError> {
        let only = match which {
            Latest::Complete => "AND interrupted = 0",
            Latest::Finished => "",
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN
               (SELECT max(id) FROM runs WHERE finished_at IS NOT NULL {only} GROUP BY scope)
             ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], run_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every site a device was recorded with, and when one was last seen, by site name.
    pub(crate) fn sites_last_seen(&self) -> Result<Vec<SiteSeen>, HistoryError> {
        let mut stmt = self
            .conn
            .prepare(SITES_LAST_SEEN)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SiteSeen {
                    site: r.get(0)?,
                    last_seen: r.get(1)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// Both back ends keep times as RFC 3339 text in UTC, which sorts as the times do.
const SITES_LAST_SEEN: &str =
    "SELECT site, max(last_seen) FROM intervals GROUP BY site ORDER BY site";

impl Pg {
    /// The latest run of every scope, by id.
    pub(crate) fn latest_runs(&self, which: Latest) -> Result<Vec<RunRow>, HistoryError> {
        let only = match which {
            Latest::Complete => "AND NOT interrupted",
            Latest::Finished => "",
        };
        let columns = crate::pg::RUN_COLUMNS;
        let sql = format!(
            "SELECT {columns} FROM runs WHERE id IN
               (SELECT max(id) FROM runs WHERE finished_at IS NOT NULL {only} GROUP BY scope)
             ORDER BY id"
        );
        let rows = self.block(self.client.query(&sql, &[]))?;
        self.rows(&rows, crate::pg::run_row)
    }

    /// Every site a device was recorded with, and when one was last seen, by site name.
    pub(crate) fn sites_last_seen(&self) -> Result<Vec<SiteSeen>, HistoryError> {
        let rows = self.block(self.client.query(SITES_LAST_SEEN, &[]))?;
        self.rows(&rows, |r| {
            Ok(SiteSeen {
                site: r.try_get(0)?,
                last_seen: r.try_get(1)?,
            })
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::{Ending, RunInfo};
    use sshfleet_report::{DeviceRecord, SshState, Status, Summary};

    fn run(history: History, scope: &str, site: &str, ending: Ending) {
        let info = RunInfo {
            command: "scan",
            scope: scope.into(),
            inventory_fingerprint: "f".into(),
            shard: None,
            target: None,
        };
        let (mut recorder, _) = history.begin_run(&info).unwrap();
        let mut rec = DeviceRecord::new(format!("{scope}-a"), "n".into(), site.into(), Status::Ok);
        rec.ssh_enabled = Some(false);
        rec.expect = Some(SshState::Disabled);
        rec.judge();
        rec.checked_at = sshfleet_core::time::now_rfc3339();
        recorder.record(&rec, None);
        let mut summary = Summary::default();
        summary.add(&rec);
        recorder.finish(&summary, ending).unwrap();
    }

    #[test]
    fn heads_are_the_latest_complete_run_and_a_later_interrupted_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let open = || History::open(&path).unwrap();
        run(open(), "north.csv", "north", Ending::Finished);
        run(open(), "south.csv", "south", Ending::Finished);
        run(open(), "north.csv", "north", Ending::Finished);
        run(open(), "south.csv", "south", Ending::Interrupted);
        run(open(), "east.csv", "east", Ending::Interrupted);
        let heads = open().scope_heads().unwrap();
        let ids: Vec<_> = heads
            .iter()
            .map(|h| {
                (
                    h.scope.as_str(),
                    h.complete.as_ref().map(|r| r.id),
                    h.interrupted.as_ref().map(|r| r.id),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("east.csv", None, Some(5)),
                ("north.csv", Some(3), None),
                ("south.csv", Some(2), Some(4)),
            ]
        );
        let seen: Vec<_> = open()
            .sites_last_seen()
            .unwrap()
            .into_iter()
            .map(|s| s.site)
            .collect();
        assert_eq!(seen, ["east", "north", "south"]);
    }
}
