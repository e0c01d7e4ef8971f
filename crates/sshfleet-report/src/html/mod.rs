//! The HTML report: one self-contained file (inline CSS, SVG and script, nothing fetched)
//! with the headline, per-site bars, trend, drift, waivers and a device table that stays
//! usable at 100,000 devices. Rows are gathered as records stream; the page is rendered
//! once the run's summary is known.

mod advisories;
mod data;
mod fleet;
mod keys;
mod page;
mod rows;
mod svg;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

pub use data::script_safe;
pub use rows::{DeviceRows, Standing};

use super::{DeviceRecord, RecordWriter, Summary};

/// One run in the trend chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrendPoint {
    /// `run 12`, or `scan 1` without a history.
    pub label: String,
    /// When it ran, short (`12-03 11:52`).
    pub when: String,
    pub devices: u64,
    pub compliant: u64,
    pub ssh_enabled: u64,
}

impl TrendPoint {
    /// A point labelled `label`, of a run at `when` (RFC 3339), with its counts.
    pub fn new(
        label: String,
        when: &str,
        devices: u64,
        compliant: u64,
        ssh_enabled: u64,
    ) -> TrendPoint {
        TrendPoint {
            label,
            when: short_time(when),
            devices,
            compliant,
            ssh_enabled,
        }
    }

    pub fn from_summary(label: impl Into<String>, when: &str, summary: &Summary) -> TrendPoint {
        TrendPoint {
            label: label.into(),
            when: short_time(when),
            devices: summary.total,
            compliant: summary.compliant,
            ssh_enabled: summary.ssh_enabled,
        }
    }
}

/// `2026-12-03T11:52:07.123Z` → `12-03 11:52`; anything else unchanged.
fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(5..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) if rfc3339.len() >= 16 => format!("{day} {time}"),
        _ => rfc3339.to_owned(),
    }
}

/// A waiver from the waivers file that expires soon (it may match no device of this run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiringWaiver {
    pub id: String,
    pub owner: String,
    pub expires: String,
}

/// Everything one page shows.
pub struct HtmlReport<'a> {
    /// What produced it: `scan of inventory.csv`, `report of scan.jsonl`.
    pub context: String,
    /// RFC 3339 UTC.
    pub generated_at: String,
    pub summary: &'a Summary,
    pub rows: &'a DeviceRows,
    /// Oldest first; empty without a history.
    pub trend: Vec<TrendPoint>,
    /// Waivers of the waivers file expiring soon, besides those seen in the rows.
    pub expiring: Vec<ExpiringWaiver>,
    /// Remediation: `Some(true)` when the run wrote, `Some(false)` for a dry run.
    pub applied: Option<bool>,
    /// Today, UTC (for the days left on each waiver).
    pub today: sshfleet_core::time::Date,
}

impl HtmlReport<'_> {
    /// The page as one string.
    pub fn render(&self) -> String {
        page::render(self, None)
    }

    /// The page of a fleet view: coverage and the per-site table above the usual sections.
    pub fn render_fleet(&self, fleet: &crate::fleet::FleetView) -> String {
        page::render(self, Some(fleet))
    }

    /// Writes the page to `path` atomically: a temporary file beside it, then a rename, so
    /// a reader never sees half a report and a failed run leaves the old one in place.
    pub fn write_to(&self, path: &Path) -> io::Result<()> {
        sshfleet_core::files::write_atomically(path, self.render().as_bytes())
    }
}

/// The rows an [`HtmlSink`] gathered, for rendering once the run is over.
#[derive(Clone, Default)]
pub struct HtmlRows(Arc<Mutex<DeviceRows>>);

impl HtmlRows {
    /// Takes the rows gathered so far, leaving none.
    pub fn take(&self) -> DeviceRows {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A report output that keeps each record as a compact row; the page itself is written
/// after the run (see [`HtmlReport::write_to`]), when the summary is known.
pub struct HtmlSink {
    rows: HtmlRows,
    label: String,
}

impl HtmlSink {
    /// A sink for the page at `path`, and the handle its rows are taken from.
    pub fn new(path: &Path) -> (HtmlSink, HtmlRows) {
        let rows = HtmlRows::default();
        let sink = HtmlSink {
            rows: rows.clone(),
            label: path.display().to_string(),
        };
        (sink, rows)
    }
}

impl RecordWriter for HtmlSink {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        self.rows
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rec);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn label(&self) -> Option<&str> {
        Some(&self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shortened_for_the_axis() {
        assert_eq!(short_time("2026-12-03T11:52:07.123Z"), "12-03 11:52");
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}
