//! The run summary: counts by status, compliance, SSH state, site and remediation outcome,
//! built record by record (memory grows with the number of sites, not devices).

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::advisory::AdvisorySummary;
use super::claims::DuplicateSerials;
use super::drift::{is_new_exposure, DriftSummary};
use super::host_keys::HostKeyFindings;
use super::record::{Action, Change, DeviceRecord, Exposure, PortState, Remediation, Status};

/// Sites listed in the text summary; beyond this the ones with most findings are shown.
const MAX_SITE_ROWS: usize = 50;

/// Site names are cut to this many characters in the text table.
const MAX_SITE_CHARS: usize = 32;

/// What a run found. `findings` decides the exit code (`docs/design.md`: 1 when non-zero).
#[derive(Default, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub total: u64,
    /// Every status, zero included, in [`Status::ALL`] order.
    pub by_status: StatusCounts,
    pub compliant: u64,
    pub non_compliant: u64,
    /// Compliance unknown: not checked, or checked without a desired state.
    pub unknown: u64,
    pub ssh_enabled: u64,
    pub ssh_disabled: u64,
    /// Devices not checked (any status but `ok`) plus non-compliant ones not waived, plus
    /// each serial claimed by more than one device.
    pub findings: u64,
    /// Non-compliant devices a waiver in force allows (not findings).
    pub waived: u64,
    pub remediation: RemediationSummary,
    /// What the SSH port probe saw; all zero without `--probe-ssh`.
    pub exposure: ExposureSummary,
    /// Keyed by the `site` column; devices without one count under `""`.
    pub by_site: BTreeMap<String, SiteSummary>,
    /// Against the previous run, when there was one (`--baseline`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftSummary>,
    /// New exposure since the previous run: `regressed` devices, and `new` ones that are
    /// non-compliant (or, without a desired state, have SSH on). What `--fail-on regressions`
    /// counts.
    pub new_exposure: u64,
    /// SSH-enabled devices by firmware version (`--device-info`); empty without it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_enabled_by_firmware: BTreeMap<String, u64>,
    /// Devices given a desired SSH state (an `expect` column, `--expect`, the remediation's
    /// target), read or not.
    pub with_desired_state: u64,
    /// Devices in the run's scope (every inventory row of its shard), when known: set when
    /// the report opens. Devices in scope without a record were never reached.
    #[serde(skip)]
    pub in_scope: Option<u64>,
    /// Why the run ended before it was done, if it did (set by the command at the end).
    #[serde(skip)]
    pub stopped: Option<Stop>,
    /// Serials claimed by more than one device of the run: each a finding.
    #[serde(skip_serializing_if = "DuplicateSerials::is_empty")]
    pub duplicate_serials: DuplicateSerials,
    /// Host keys shared by several devices, and keys that changed while the serial did not:
    /// each a finding (`host_keys`).
    #[serde(skip_serializing_if = "HostKeyFindings::is_empty")]
    pub host_keys: HostKeyFindings,
    /// The vendor advisories that apply to the devices' AXIS OS versions (`--device-info`);
    /// left out when no device was checked against them.
    #[serde(skip_serializing_if = "AdvisorySummary::is_empty")]
    pub advisories: AdvisorySummary,
}

/// Why a run ended before it covered its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Remediation: failed writes exceeded `--max-failures`.
    FailureBudget,
    /// Remediation: devices were left for the next change window.
    ChangeWindow,
    /// Remediation: a wave was not confirmed.
    WaveDeclined,
}

impl Stop {
    /// What stopped the run, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Interrupted => "interrupted",
            Stop::FailureBudget => "stopped by the failure budget (--max-failures)",
            Stop::ChangeWindow => "stopped at the end of the change window",
            Stop::WaveDeclined => "stopped: a wave was not confirmed",
        }
    }
}

/// How much of its scope a run covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunCoverage {
    /// Every device in scope reached, and nothing stopped the run.
    pub complete: bool,
    /// What stopped the run early (`interrupted`, `failure_budget`, `change_window`,
    /// `wave_declined`), if anything did.
    pub stopped: Option<Stop>,
    pub in_scope: u64,
    /// Devices in scope that have no record (never checked), plus devices a remediation
    /// left unwritten (`deferred`).
    pub not_reached: u64,
}

/// The one definition of compliance, shared by the terminal and JSON summaries, the HTML
/// page and the metrics (`docs/guide/reports.md`, "Compliance"): devices in their desired
/// SSH state or allowed theirs by a waiver in force, over the devices in scope except those
/// read without a desired state. A device that could not be checked, or that a stopped run never
/// reached, counts against: what is not known to be compliant is not counted as such.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Compliance {
    /// Devices read in their desired SSH state, or non-compliant but waived.
    pub compliant: u64,
    /// Devices in scope but those read without a desired state: the judged ones, those not
    /// checked and those not reached.
    pub of: u64,
    /// `compliant / of`; `None` (`null`) when no device has a desired state (none read with
    /// one, and none given one): nothing is judged, which is not 0 %.
    pub ratio: Option<f64>,
}

impl Compliance {
    /// `60.5%` (never `100.0%` short of every device), or `—` when nothing has a desired
    /// state.
    pub fn percent(&self) -> String {
        match self.ratio {
            Some(r) if self.compliant < self.of && r > 0.999 => String::from("99.9%"),
            Some(r) => format!("{:.1}%", r * 100.0),
            None => String::from("—"),
        }
    }
}

/// A count per status, serialised as an object in [`Status::ALL`] order.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCounts([u64; Status::ALL.len()]);

impl StatusCounts {
    pub fn get(&self, status: Status) -> u64 {
        self.0[status.index()]
    }

    pub fn iter(&self) -> impl Iterator<Item = (Status, u64)> + '_ {
        Status::ALL.iter().copied().zip(self.0.iter().copied())
    }

    fn add(&mut self, status: Status) {
        self.0[status.index()] += 1;
    }
}

impl Serialize for StatusCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (status, count) in self.iter() {
            map.serialize_entry(status.as_str(), &count)?;
        }
        map.end()
    }
}

/// One site's line of the summary.
#[derive(Default, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SiteSummary {
    pub total: u64,
    pub ok: u64,
    pub findings: u64,
    pub ssh_enabled: u64,
    pub compliant: u64,
    /// Waived devices included.
    pub non_compliant: u64,
    /// Non-compliant devices a waiver in force allows.
    pub waived: u64,
    pub by_status: StatusCounts,
}

impl SiteSummary {
    fn add(&mut self, rec: &DeviceRecord) {
        self.total += 1;
        self.ok += u64::from(rec.status == Status::Ok);
        self.findings += u64::from(rec.is_finding());
        self.ssh_enabled += u64::from(rec.ssh_enabled == Some(true));
        self.compliant += u64::from(rec.compliant == Some(true));
        self.non_compliant += u64::from(rec.compliant == Some(false));
        self.waived += u64::from(rec.waiver.is_some());
        self.by_status.add(rec.status);
    }
}

/// The SSH port probe's results and how they agree with the configuration.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExposureSummary {
    /// Devices whose SSH port was probed.
    pub probed: u64,
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub consistent: u64,
    /// Configured on, but the port does not answer from here.
    pub config_only: u64,
    /// Configured off, yet an SSH server answers: non-compliant, a finding.
    pub port_only: u64,
}

impl ExposureSummary {
    fn add(&mut self, rec: &DeviceRecord) {
        let Some(port) = rec.ssh_port else { return };
        self.probed += 1;
        match port {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
        }
        match rec.exposure {
            Some(Exposure::Consistent) => self.consistent += 1,
            Some(Exposure::ConfigOnly) => self.config_only += 1,
            Some(Exposure::PortOnly) => self.port_only += 1,
            None => {}
        }
    }
}

/// Remediation outcomes. `set`/`none`/`skip` count the planned action; the rest count what
/// an applied run observed when reading the state back.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RemediationSummary {
    /// The state differs: a write is planned (dry run) or was made.
    pub set: u64,
    /// Already in the desired state.
    pub none: u64,
    /// Not readable, so nothing planned.
    pub skip: u64,
    /// Allowed by a waiver, so never written.
    pub waived: u64,
    /// A saved plan's device no longer as planned, so never written.
    pub stale: u64,
    /// Left for a later run by the failure budget.
    pub deferred: u64,
    /// Read back in a state different from before.
    pub changed: u64,
    /// Read back in the desired state after a write.
    pub verified: u64,
    /// A write that did not verify (`verified: false`).
    pub failed: u64,
}

impl RemediationSummary {
    pub fn planned(&self) -> u64 {
        self.set + self.none + self.skip + self.waived + self.stale + self.deferred
    }

    fn add(&mut self, rem: &Remediation) {
        match rem.action {
            Action::Set => self.set += 1,
            Action::None => self.none += 1,
            Action::Skip => self.skip += 1,
            Action::Waived => self.waived += 1,
            Action::Stale => self.stale += 1,
            Action::Deferred => self.deferred += 1,
        }
        let changed = rem.before.is_some() && rem.after.is_some() && rem.before != rem.after;
        self.changed += u64::from(changed);
        self.verified += u64::from(rem.action == Action::Set && rem.verified == Some(true));
        self.failed += u64::from(rem.action == Action::Set && rem.verified == Some(false));
    }
}

impl Summary {
    pub fn add(&mut self, rec: &DeviceRecord) {
        self.total += 1;
        self.by_status.add(rec.status);
        match rec.compliant {
            Some(true) => self.compliant += 1,
            Some(false) => self.non_compliant += 1,
            None => self.unknown += 1,
        }
        match rec.ssh_enabled {
            Some(true) => self.ssh_enabled += 1,
            Some(false) => self.ssh_disabled += 1,
            None => {}
        }
        self.findings += u64::from(rec.is_finding());
        self.findings = self.findings.saturating_add(self.host_keys.add(rec));
        self.waived += u64::from(rec.waiver.is_some());
        self.with_desired_state += u64::from(rec.expect.is_some());
        if let Some(rem) = &rec.remediation {
            self.remediation.add(rem);
        }
        if let Some(drift) = &rec.drift {
            self.drift
                .get_or_insert_with(DriftSummary::default)
                .by_change
                .add(drift.change);
            let exposed = rec.waiver.is_none()
                && is_new_exposure(drift.change, rec.compliant, rec.ssh_enabled);
            self.new_exposure += u64::from(exposed);
        }
        self.exposure.add(rec);
        self.advisories.add(rec);
        if let (Some(true), Some(firmware)) = (rec.ssh_enabled, &rec.firmware) {
            match self.ssh_enabled_by_firmware.get_mut(firmware) {
                Some(n) => *n += 1,
                None => {
                    self.ssh_enabled_by_firmware.insert(firmware.clone(), 1);
                }
            }
        }
        self.add_to_site(rec);
    }

    /// Looks the site up before allocating its key: most records hit an existing site.
    fn add_to_site(&mut self, rec: &DeviceRecord) {
        match self.by_site.get_mut(&rec.site) {
            Some(site) => site.add(rec),
            None => {
                let mut site = SiteSummary::default();
                site.add(rec);
                self.by_site.insert(rec.site.clone(), site);
            }
        }
    }

    pub fn findings(&self) -> u64 {
        self.findings
    }

    /// Counts every serial claimed by more than one device as a finding of its own.
    pub(crate) fn add_duplicate_serials(&mut self, duplicates: DuplicateSerials) {
        self.findings = self.findings.saturating_add(duplicates.count);
        self.duplicate_serials = duplicates;
    }

    /// What `--fail-on regressions` counts: new exposure, and host keys that changed while
    /// the serial did not (new since the previous run too).
    pub fn new_since_previous(&self) -> u64 {
        self.new_exposure
            .saturating_add(self.host_keys.changed.count)
    }

    /// Devices that could not be checked (any status but `ok`).
    pub fn not_checked(&self) -> u64 {
        self.total - self.by_status.get(Status::Ok)
    }

    /// How much of its scope the run covered.
    pub fn coverage(&self) -> RunCoverage {
        let in_scope = self.in_scope.unwrap_or(self.total).max(self.total);
        let not_reached = (in_scope - self.total).saturating_add(self.remediation.deferred);
        RunCoverage {
            complete: self.stopped.is_none() && not_reached == 0,
            stopped: self.stopped,
            in_scope,
            not_reached,
        }
    }

    /// The run's compliance, as every output states it (see [`Compliance`]).
    pub fn compliance(&self) -> Compliance {
        let compliant = self.compliant.saturating_add(self.waived);
        let unrecorded = self.coverage().in_scope.saturating_sub(self.total);
        // Every device in scope but those read without a desired state: judged ones, those
        // not checked and those not reached (what a report or a history holds of any run).
        let of = self
            .compliant
            .saturating_add(self.non_compliant)
            .saturating_add(self.not_checked())
            .saturating_add(unrecorded);
        let judged = self.compliant.saturating_add(self.non_compliant);
        let nothing_to_judge = judged == 0 && self.with_desired_state == 0;
        let ratio = (!nothing_to_judge && of > 0).then(|| compliant as f64 / of as f64);
        Compliance {
            compliant,
            of,
            ratio,
        }
    }

    /// Devices regressed since the previous run; `None` when there was nothing to compare
    /// with (no previous run, or none of this run's devices in it: a first recorded run).
    pub fn regressions(&self) -> Option<u64> {
        let drift = self.drift.as_ref()?;
        let compared = Change::ALL
            .iter()
            .filter(|c| !matches!(c, Change::New | Change::Gone))
            .map(|&c| drift.by_change.get(c))
            .sum::<u64>();
        (compared > 0).then(|| drift.by_change.get(Change::Regressed))
    }

    /// The human summary for stderr: totals, non-zero statuses, remediation, sites.
    pub fn render_text(&self) -> String {
        self.to_string()
    }

    /// The summary as a JSON object (pretty-printed: it is read by people too): every count
    /// of [`Summary`], with `run` ([`RunCoverage`]), `compliance` ([`Compliance`]) and
    /// `regressions` (`null` with nothing to compare with). `--summary-out` and the demo's
    /// `summary.json` write this.
    pub fn to_json(&self) -> String {
        let document = Document {
            run: self.coverage(),
            compliance: self.compliance(),
            regressions: self.regressions(),
            summary: self,
        };
        // Serialising plain counters and string-keyed maps cannot fail.
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| String::from("{}"))
    }

    /// `INCOMPLETE …` first, when the run did not cover its scope.
    fn write_incomplete(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let run = self.coverage();
        if run.complete {
            return Ok(());
        }
        let why = run
            .stopped
            .map_or("not every device was reached", Stop::describe);
        writeln!(
            f,
            "INCOMPLETE ({why}): {} of {} devices in scope not reached; the figures below are of the {} devices reported.",
            run.not_reached, run.in_scope, self.total
        )
    }

    /// `compliance: 60.5 % (…)`, or why there is no figure.
    fn write_compliance(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.compliance();
        match c.ratio {
            Some(_) => writeln!(
                f,
                "compliance: {} ({} of {} devices in scope are in their desired state or waived)",
                c.percent(),
                c.compliant,
                c.of
            ),
            None if self.total == 0 => Ok(()),
            None => writeln!(
                f,
                "compliance: — (no device has a desired state: give an `expect` column or --expect)"
            ),
        }
    }

    fn write_totals(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} devices, {} findings ({} non-compliant, {} not checked",
            self.total,
            self.findings,
            self.non_compliant.saturating_sub(self.waived),
            self.not_checked(),
        )?;
        let by_advisory = self.advisories.findings_only_advisory;
        if by_advisory > 0 {
            write!(f, ", {by_advisory} exposed to an SSH advisory only")?;
        }
        // Findings of the fleet rather than of one device: each said, so the parts add up.
        let duplicates = self.duplicate_serials.count;
        if duplicates > 0 {
            write!(f, ", {duplicates} duplicate serial(s)")?;
        }
        let host_keys = self.host_keys.count();
        if host_keys > 0 {
            write!(f, ", {host_keys} host-key finding(s)")?;
        }
        write!(f, "); {} compliant", self.compliant)?;
        if self.waived > 0 {
            write!(f, ", {} waived", self.waived)?;
        }
        // `ok` devices with no desired state are neither compliant nor findings.
        let unjudged = self.unknown.saturating_sub(self.not_checked());
        if unjudged > 0 {
            write!(f, ", {unjudged} without a desired state")?;
        }
        writeln!(
            f,
            "; SSH enabled on {}, disabled on {}",
            self.ssh_enabled, self.ssh_disabled
        )
    }

    fn write_statuses(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self
            .by_status
            .iter()
            .filter(|&(_, n)| n > 0)
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        if counts.is_empty() {
            return Ok(());
        }
        writeln!(f, "by status: {}", counts.join(", "))
    }

    fn write_exposure(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.exposure;
        if e.probed == 0 {
            return Ok(());
        }
        writeln!(
            f,
            "ssh port: {} probed, {} open, {} closed, {} filtered",
            e.probed, e.open, e.closed, e.filtered
        )?;
        if e.port_only > 0 {
            writeln!(
                f,
                "PORT_ONLY: {} device(s) answer SSH although configured disabled",
                e.port_only
            )?;
        }
        writeln!(
            f,
            "exposure: {} port_only, {} config_only, {} consistent",
            e.port_only, e.config_only, e.consistent
        )
    }

    fn write_remediation(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.remediation;
        if r.planned() == 0 {
            return Ok(());
        }
        // Deferred devices needed a write too: counted among those to set, so that the
        // counts add up; why they were left (a window, a wave, the budget) is said after the
        // summary, and in each record's `error`.
        writeln!(
            f,
            "remediation: {} to set, {} already as desired, {} skipped; {} changed, {} verified, {} failed",
            r.set.saturating_add(r.deferred), r.none, r.skip, r.changed, r.verified, r.failed
        )?;
        if r.deferred > 0 {
            writeln!(
                f,
                "DEFERRED: {} of them not written, left for a later run with the journal",
                r.deferred
            )?;
        }
        if r.stale > 0 {
            writeln!(
                f,
                "STALE: {} device(s) of the saved plan are no longer as planned: not written (plan again)",
                r.stale
            )?;
        }
        Ok(())
    }

    fn write_drift(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(drift) = &self.drift else {
            return Ok(());
        };
        if self.regressions().is_none() {
            // A first recorded run: no regressions figure, not a reassuring 0.
            writeln!(
                f,
                "since the previous run: nothing to compare with (no device of this run was in it): {}",
                drift.by_change.listed()
            )?;
        } else {
            writeln!(
                f,
                "since the previous run: {}",
                drift.by_change.describe(self.new_exposure)
            )?;
        }
        let gone = drift.by_change.get(Change::Gone);
        if gone > 0 {
            let names: Vec<String> = drift
                .gone
                .iter()
                .take(10)
                .map(|g| display_site(&g.address))
                .collect();
            let more = gone.saturating_sub(names.len() as u64);
            write!(
                f,
                "gone (in the previous run, not in this one): {}",
                names.join(", ")
            )?;
            if more > 0 {
                write!(f, " … and {more} more")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }

    fn write_sites(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One unnamed site means the inventory has no site column: no table.
        if self.by_site.keys().all(String::is_empty) {
            return Ok(());
        }
        let shown = self.sites_to_show();
        let names: Vec<String> = shown.iter().map(|(name, _)| display_site(name)).collect();
        let width = names
            .iter()
            .map(|n| n.chars().count())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(
            f,
            "{:<width$}  {:>7}  {:>7}  {:>8}  {:>11}  {:>13}",
            "site", "devices", "ok", "findings", "ssh_enabled", "non_compliant"
        )?;
        for (name, (_, site)) in names.iter().zip(&shown) {
            writeln!(
                f,
                "{name:<width$}  {:>7}  {:>7}  {:>8}  {:>11}  {:>13}",
                site.total, site.ok, site.findings, site.ssh_enabled, site.non_compliant
            )?;
        }
        let hidden = self.by_site.len() - shown.len();
        if hidden > 0 {
            writeln!(f, "… and {hidden} more sites (the JSON summary lists all)")?;
        }
        Ok(())
    }

    /// All sites by name, or, when there are too many, those with the most findings.
    fn sites_to_show(&self) -> Vec<(&String, &SiteSummary)> {
        let mut sites: Vec<_> = self.by_site.iter().collect();
        if sites.len() > MAX_SITE_ROWS {
            sites.sort_by(|a, b| b.1.findings.cmp(&a.1.findings).then(a.0.cmp(b.0)));
            sites.truncate(MAX_SITE_ROWS);
        }
        sites
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_incomplete(f)?;
        self.write_totals(f)?;
        self.write_compliance(f)?;
        self.write_statuses(f)?;
        self.write_exposure(f)?;
        self.write_remediation(f)?;
        self.write_drift(f)?;
        self.write_duplicate_serials(f)?;
        super::host_keys::write_findings(&self.host_keys, f)?;
        super::advisory::write_text(&self.advisories, f)?;
        self.write_firmware(f)?;
        self.write_sites(f)
    }
}

impl Summary {
    /// `DUPLICATE SERIAL …` lines: one per serial claimed by more than one device.
    fn write_duplicate_serials(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duplicates = &self.duplicate_serials;
        for d in &duplicates.listed {
            let more = d.devices.saturating_sub(d.addresses.len() as u64);
            let more = match more {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            writeln!(
                f,
                "DUPLICATE SERIAL {}: claimed by {} devices ({}{more}): one camera listed twice, or a device misreporting its identity",
                sshfleet_core::inert::line(&d.serial),
                d.devices,
                sshfleet_core::inert::escape(&d.addresses.join(", "))
            )?;
        }
        let unlisted = duplicates
            .count
            .saturating_sub(duplicates.listed.len() as u64);
        if unlisted > 0 {
            writeln!(
                f,
                "… and {unlisted} more duplicate serials (the JSON summary counts them)"
            )?;
        }
        Ok(())
    }

    /// `SSH enabled by firmware: 10.12.114 3, 9.80.3 1`, most first (firmware versions are
    /// sanitised device text: printable ASCII).
    fn write_firmware(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ssh_enabled_by_firmware.is_empty() {
            return Ok(());
        }
        let mut counts: Vec<(&String, &u64)> = self.ssh_enabled_by_firmware.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let listed: Vec<String> = counts
            .iter()
            .take(MAX_SITE_ROWS)
            .map(|(firmware, n)| format!("{} {n}", display_site(firmware)))
            .collect();
        writeln!(f, "SSH enabled by firmware: {}", listed.join(", "))
    }
}

/// The JSON summary: the counts, with what is derived from them.
#[derive(serde::Serialize)]
struct Document<'a> {
    run: RunCoverage,
    compliance: Compliance,
    regressions: Option<u64>,
    #[serde(flatten)]
    summary: &'a Summary,
}

/// A site name safe for a terminal: control characters (escape sequences) shown as
/// escapes, cut to [`MAX_SITE_CHARS`].
fn display_site(name: &str) -> String {
    if name.is_empty() {
        return "(no site)".to_owned();
    }
    sshfleet_core::inert::shorten(name, MAX_SITE_CHARS).into_owned()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::record::SshState;

    fn rec(
        site: &str,
        status: Status,
        enabled: Option<bool>,
        expect: Option<SshState>,
    ) -> DeviceRecord {
        let mut rec = DeviceRecord::new("a".into(), String::new(), site.into(), status);
        rec.ssh_enabled = enabled;
        rec.expect = expect;
        rec.judge();
        rec
    }

    fn sample() -> Summary {
        let off = Some(SshState::Disabled);
        let mut summary = Summary::default();
        for rec in [
            rec("hq", Status::Ok, Some(false), off),
            rec("hq", Status::Ok, Some(true), off),
            rec("hq", Status::Timeout, None, off),
            rec("branch", Status::Ok, Some(true), None),
            rec("branch", Status::Invalid, None, None),
        ] {
            summary.add(&rec);
        }
        summary
    }

    #[test]
    fn counts_statuses_compliance_and_findings() {
        let s = sample();
        assert_eq!(s.total, 5);
        assert_eq!(s.by_status.get(Status::Ok), 3);
        assert_eq!(s.by_status.get(Status::Timeout), 1);
        assert_eq!(s.by_status.get(Status::Invalid), 1);
        assert_eq!(s.by_status.get(Status::TlsError), 0);
        assert_eq!((s.compliant, s.non_compliant, s.unknown), (1, 1, 3));
        assert_eq!((s.ssh_enabled, s.ssh_disabled), (2, 1));
        assert_eq!(s.findings(), 3);
        assert_eq!(s.not_checked(), 2);
        let hq = &s.by_site["hq"];
        assert_eq!(
            (
                hq.total,
                hq.ok,
                hq.findings,
                hq.ssh_enabled,
                hq.non_compliant
            ),
            (3, 2, 2, 1, 1)
        );
    }

    #[test]
    fn json_lists_every_status_in_order() {
        let json = sample().to_json();
        // serde_json::Value sorts keys, so the order is checked on the text.
        let positions: Vec<usize> = Status::ALL
            .iter()
            .map(|s| json.find(&format!("\"{s}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["by_status"]["protocol_error"], 0);
        assert_eq!(value["findings"], 3);
        assert_eq!(value["by_site"]["branch"]["total"], 2);
        assert_eq!(value["remediation"]["set"], 0);
    }

    #[test]
    fn text_summary_has_totals_statuses_and_sites() {
        let text = sample().render_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "5 devices, 3 findings (1 non-compliant, 2 not checked); 1 compliant, \
             1 without a desired state; SSH enabled on 2, disabled on 1"
        );
        // The timeout and the invalid row are not checked: they count against.
        assert_eq!(
            lines[1],
            "compliance: 25.0% (1 of 4 devices in scope are in their desired state or waived)"
        );
        assert_eq!(lines[2], "by status: ok 3, invalid 1, timeout 1");
        assert!(lines[3].starts_with("site    devices"), "{text}");
        assert!(lines[4].starts_with("branch        2"), "{text}");
        assert!(lines[5].starts_with("hq            3"), "{text}");
    }

    #[test]
    fn compliance_has_one_definition_and_no_figure_without_a_desired_state() {
        let s = sample();
        let c = s.compliance();
        assert_eq!((c.compliant, c.of), (1, 4));
        assert_eq!(c.percent(), "25.0%");
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["compliance"]["compliant"], 1);
        assert_eq!(json["compliance"]["of"], 4);
        assert_eq!(json["run"]["complete"], true);
        assert_eq!(json["run"]["in_scope"], 5);
        assert_eq!(json["regressions"], serde_json::Value::Null);
        // Nothing with a desired state: no figure at all, never 0 %.
        let mut none = Summary::default();
        none.add(&rec("", Status::Ok, Some(true), None));
        assert_eq!(none.compliance().ratio, None);
        assert_eq!(none.compliance().percent(), "—");
        assert!(none
            .render_text()
            .contains("compliance: — (no device has a desired state"));
        let json: serde_json::Value = serde_json::from_str(&none.to_json()).unwrap();
        assert_eq!(json["compliance"]["ratio"], serde_json::Value::Null);
        // Waived devices are in their allowed state; 99.95 % is not shown as 100 %.
        let mut waived = rec("", Status::Ok, Some(true), Some(SshState::Disabled));
        waived.waiver = Some("W-1".into());
        let mut almost = Summary::default();
        almost.add(&waived);
        assert_eq!(almost.compliance().ratio, Some(1.0));
        let c = Compliance {
            compliant: 1999,
            of: 2000,
            ratio: Some(0.9995),
        };
        assert_eq!(c.percent(), "99.9%");
    }

    #[test]
    fn a_stopped_run_says_how_much_of_its_scope_it_did_not_reach() {
        let mut s = Summary {
            in_scope: Some(20),
            ..Summary::default()
        };
        for _ in 0..5 {
            s.add(&rec("", Status::Ok, Some(false), Some(SshState::Disabled)));
        }
        s.stopped = Some(Stop::Interrupted);
        let run = s.coverage();
        assert_eq!(
            (run.complete, run.in_scope, run.not_reached),
            (false, 20, 15)
        );
        // The 15 never reached count against: 5 of 20, not 100 %.
        assert_eq!(s.compliance().percent(), "25.0%");
        let text = s.render_text();
        assert_eq!(
            text.lines().next(),
            Some("INCOMPLETE (interrupted): 15 of 20 devices in scope not reached; the figures below are of the 5 devices reported.")
        );
        let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(json["run"]["complete"], false);
        assert_eq!(json["run"]["stopped"], "interrupted");
        assert_eq!(json["run"]["not_reached"], 15);
    }

    #[test]
    fn a_first_recorded_run_has_no_regressions_figure() {
        use crate::record::Drift;
        let mut s = Summary {
            drift: Some(DriftSummary::default()),
            ..Summary::default()
        };
        let mut new = rec("", Status::Ok, Some(true), Some(SshState::Disabled));
        new.drift = Some(Drift {
            change: Change::New,
            first_seen: String::new(),
            state_since: String::new(),
        });
        s.add(&new);
        assert_eq!(s.regressions(), None);
        assert!(
            s.render_text().contains("nothing to compare with"),
            "{}",
            s.render_text()
        );
        let mut same = rec("", Status::Ok, Some(false), Some(SshState::Disabled));
        same.drift = Some(Drift {
            change: Change::Unchanged,
            first_seen: String::new(),
            state_since: String::new(),
        });
        s.add(&same);
        assert_eq!(s.regressions(), Some(0));
    }

    #[test]
    fn text_summary_of_nothing() {
        assert_eq!(
            Summary::default().render_text(),
            "0 devices, 0 findings (0 non-compliant, 0 not checked); 0 compliant; SSH enabled on 0, disabled on 0\n"
        );
    }

    #[test]
    fn remediation_outcomes() {
        let mut summary = Summary::default();
        let outcomes = [
            (Action::Set, Some(true), Some(false), Some(true)),
            (Action::Set, Some(true), Some(true), Some(false)),
            (Action::Set, Some(true), None, None),
            (Action::None, Some(false), None, None),
            (Action::Skip, None, None, None),
        ];
        for (action, before, after, verified) in outcomes {
            let mut rec = rec("", Status::Ok, before, None);
            rec.remediation = Some(Remediation {
                action,
                before,
                after,
                verified,
            });
            summary.add(&rec);
        }
        let r = summary.remediation;
        assert_eq!(
            (r.set, r.none, r.skip, r.changed, r.verified, r.failed),
            (3, 1, 1, 1, 1, 1)
        );
        assert!(summary.render_text().contains("remediation: 3 to set, 1 already as desired, 1 skipped; 1 changed, 1 verified, 1 failed"));
        assert!(!summary.render_text().contains("site"));
    }

    #[test]
    fn probed_ports_and_exposure_are_counted_and_port_only_stands_out() {
        let off = Some(SshState::Disabled);
        let mut summary = Summary::default();
        assert!(!summary.render_text().contains("exposure"));
        let probed = [
            (Some(true), PortState::Open),
            (Some(true), PortState::Filtered),
            (Some(false), PortState::Open),
            (Some(false), PortState::Closed),
            (None, PortState::Open),
        ];
        for (enabled, port) in probed {
            let status = if enabled.is_some() {
                Status::Ok
            } else {
                Status::Timeout
            };
            let mut rec = rec("", status, enabled, off);
            rec.ssh_port = Some(port);
            rec.assess_exposure();
            rec.judge();
            summary.add(&rec);
        }
        summary.add(&rec("", Status::Ok, Some(false), off));
        let e = summary.exposure;
        assert_eq!((e.probed, e.open, e.closed, e.filtered), (5, 3, 1, 1));
        assert_eq!((e.consistent, e.config_only, e.port_only), (2, 1, 1));
        // Enabled-and-open, enabled-and-filtered, port_only and the timeout are findings.
        assert_eq!(summary.findings(), 4);
        let text = summary.render_text();
        assert!(
            text.contains("ssh port: 5 probed, 3 open, 1 closed, 1 filtered"),
            "{text}"
        );
        assert!(
            text.contains("PORT_ONLY: 1 device(s) answer SSH although configured disabled"),
            "{text}"
        );
        assert!(
            text.contains("exposure: 1 port_only, 1 config_only, 2 consistent"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert_eq!(json["exposure"]["port_only"], 1);
        assert_eq!(json["exposure"]["probed"], 5);
    }

    #[test]
    fn hostile_site_names_are_safe_on_a_terminal() {
        assert_eq!(display_site("\u{1b}[2Jx"), "\\u{1b}[2Jx");
        assert_eq!(display_site(""), "(no site)");
        assert_eq!(
            display_site(&"s".repeat(40)).chars().count(),
            MAX_SITE_CHARS
        );
    }

    #[test]
    fn many_sites_show_the_worst_first() {
        let mut summary = Summary::default();
        for n in 0..60 {
            summary.add(&rec(&format!("site-{n:02}"), Status::Ok, Some(false), None));
        }
        summary.add(&rec("site-59", Status::Timeout, None, None));
        let text = summary.render_text();
        assert!(
            text.lines().nth(4).unwrap().starts_with("site-59"),
            "{text}"
        );
        assert!(text.contains("… and 10 more sites"));
    }
}
