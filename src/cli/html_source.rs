//! Where `sshfleet report html` takes its devices from: a report file sshfleet wrote
//! (JSON Lines, JSON or CSV), or one run of a `--history` database. Either way every
//! device passes through [`Summary::add`], so the page's numbers are the summary's.

use std::path::Path;

use sshfleet_engine::advisories::Advisories;
use sshfleet_engine::run::{trend_of, TREND_RUNS};
use sshfleet_history::{History, HistoryError, Period, RunRow};
use sshfleet_report::html::{DeviceRows, TrendPoint};
use sshfleet_report::read::ReadError;
use sshfleet_report::record::DeviceRecord;
use sshfleet_report::replay::replay_with;
use sshfleet_report::{Baseline, DriftSummary, Summary};

/// What a page is made of, read back.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub rows: DeviceRows,
    pub summary: Summary,
    /// Oldest first.
    pub trend: Vec<TrendPoint>,
    /// Remediation: whether it wrote.
    pub applied: Option<bool>,
    /// When the devices were checked (the latest `checked_at`).
    pub checked_at: String,
}

impl Loaded {
    fn add(&mut self, rec: &DeviceRecord) {
        self.summary.add(rec);
        self.rows.push(rec);
        if let Some(rem) = &rec.remediation {
            let wrote = rem.verified.is_some();
            self.applied = Some(self.applied.unwrap_or(false) || wrote);
        }
        if rec.checked_at > self.checked_at {
            self.checked_at.clone_from(&rec.checked_at);
        }
    }
}

/// `report html` could not read its input.
#[derive(Debug, thiserror::Error)]
pub(super) enum SourceError {
    #[error(transparent)]
    Report(#[from] ReadError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("the history {} does not exist", .0.display())]
    NoHistory(std::path::PathBuf),
    #[error("the history {path} has no run {which}")]
    NoRun { path: String, which: String },
}

/// Every device of the report at `path`, whichever format it is in (read back whole, as
/// `report merge` reads its shards), its advisory ids read against `advisories`.
pub(super) fn from_report(path: &Path, advisories: &Advisories) -> Result<Loaded, SourceError> {
    let mut loaded = Loaded::default();
    replay_with(path, &[], advisories, |rec, _| {
        loaded.add(&rec);
        Ok(())
    })?;
    Ok(loaded)
}

/// Run `run` (default: the latest finished) of the history at `path`: its devices as the
/// history kept them (no error messages: the history keeps states, not errors), their
/// drift against the scope's previous finished run, and the scope's trend.
pub(super) fn from_history(path: &Path, run: Option<i64>) -> Result<(Loaded, RunRow), SourceError> {
    if !sshfleet_history::is_database(path) && !path.exists() {
        return Err(SourceError::NoHistory(path.to_owned()));
    }
    let history = History::open(path)?;
    let Some(row) = history.run(run)? else {
        return Err(SourceError::NoRun {
            path: sshfleet_history::display(path),
            which: run.map_or_else(|| "finished yet".to_owned(), |id| id.to_string()),
        });
    };
    let previous = history
        .scope_runs(&row.scope, row.id - 1, TREND_RUNS)?
        .into_iter()
        .find(|r| !r.interrupted);
    let mut baseline = match &previous {
        Some(p) => Some(Baseline::new(
            history
                .run_periods(&p.scope, p.id)?
                .into_iter()
                .map(Period::into_observation)
                .collect(),
        )),
        None => None,
    };
    let mut loaded = Loaded {
        summary: Summary {
            drift: baseline.as_ref().map(|_| DriftSummary::default()),
            ..Summary::default()
        },
        ..Loaded::default()
    };
    for period in history.run_periods(&row.scope, row.id)? {
        let mut rec = period.into_record();
        if let Some(b) = &mut baseline {
            b.annotate(&mut rec);
        }
        loaded.add(&rec);
    }
    if let (Some(b), Some(drift)) = (&baseline, &mut loaded.summary.drift) {
        b.finish_into(drift);
    }
    loaded.trend = trend_of(&history, &row)?;
    Ok((loaded, row))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_report::Change;

    #[test]
    fn every_format_reads_back_into_the_same_summary() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("r.jsonl");
        std::fs::write(
            &jsonl,
            concat!(
                r#"{"address":"a","name":"n","site":"s","status":"ok","ssh_enabled":true,"compliant":false,"serial":"S1","change":"regressed"}"#,
                "\n",
                r#"{"address":"b","site":"s","status":"timeout","error":"no answer"}"#,
                "\n"
            ),
        )
        .unwrap();
        let csv = dir.path().join("r.csv");
        std::fs::write(
            &csv,
            "address,name,site,status,ssh_enabled,compliant,error,serial,change\n\
             a,n,s,ok,true,false,,S1,regressed\n\
             b,,s,timeout,,,no answer,,\n",
        )
        .unwrap();
        for path in [&jsonl, &csv] {
            let loaded = from_report(path, &Advisories::builtin().unwrap()).unwrap();
            assert_eq!(loaded.summary.total, 2);
            assert_eq!(loaded.summary.ssh_enabled, 1);
            assert_eq!(loaded.summary.not_checked(), 1);
            let drift = loaded.summary.drift.as_ref().unwrap();
            assert_eq!(drift.by_change.get(Change::Regressed), 1);
            assert_eq!(loaded.rows.len(), 2);
            assert_eq!(loaded.rows.errors.values(), ["no answer"]);
        }
    }

    #[test]
    fn an_unknown_status_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, "{\"address\":\"a\",\"status\":\"maybe\"}\n").unwrap();
        let err = from_report(&path, &Advisories::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("maybe"), "{err}");
    }
}
