//! Accountable waivers: a TOML file, reviewed like code, that allows named devices an SSH
//! state for a reason, by an owner, until a date. A waived device stays in every output
//! (its `waiver` column says which waiver, whose, until when) and is not a finding; an
//! expired waiver hides nothing and is named in the summary.
//!
//! ```toml
//! [[waiver]]
//! id = "W-17"
//! match = { site = "hq", name = "lobby-*" }   # serial, address, name, site, tag; globs
//! ssh = "enabled"
//! reason = "vendor maintenance access, contract 4411"
//! owner = "secops@example.com"
//! expires = "2027-03-31"
//! ticket = "SEC-1234"                          # optional
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use toml::Spanned;

use sshfleet_core::files::{LineIndex, LoadError, TextFile};
use sshfleet_core::glob::glob;
use sshfleet_inventory::Device;
use sshfleet_report::record::WaiverTag;
use sshfleet_report::{DeviceRecord, SshState};

pub use sshfleet_core::model::EXPIRING_WITHIN_DAYS;

/// Largest waiver file read (a few thousand waivers fit in far less).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// A waiver file that cannot be used; nothing runs (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum WaiverError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}, line {line}: waiver {id}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        id: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaiverFile {
    #[serde(default)]
    waiver: Vec<Spanned<RawWaiver>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    id: Option<String>,
    #[serde(rename = "match")]
    matches: Option<RawMatch>,
    ssh: Option<String>,
    reason: Option<String>,
    owner: Option<String>,
    expires: Option<Spanned<String>>,
    ticket: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    serial: Option<String>,
    address: Option<String>,
    name: Option<String>,
    site: Option<String>,
    tag: Option<String>,
}

impl RawWaiver {
    /// The waiver `id` (already checked) that starts on `line` of its file, or the line and
    /// the problem of its first field that is missing or wrong.
    fn check(self, id: String, line: usize, lines: &LineIndex) -> Result<Waiver, (usize, String)> {
        let required = |value: Option<String>, field: &str| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| (line, format!("`{field}` is missing or empty")))
        };
        let reason = required(self.reason, "reason")?;
        let owner = required(self.owner, "owner")?;
        let allows = self
            .ssh
            .as_deref()
            .and_then(SshState::parse)
            .ok_or_else(|| (line, "`ssh` must be \"enabled\" or \"disabled\"".into()))?;
        let expires = self
            .expires
            .ok_or_else(|| (line, "`expires` is missing".into()))?;
        let expires_line = lines.line_of(expires.span().start);
        let expires = expires.into_inner();
        let expires_day = sshfleet_core::time::parse_date(&expires).ok_or_else(|| {
            (
                expires_line,
                format!(
                    "`expires` \"{}\" is not a date (YYYY-MM-DD)",
                    sshfleet_core::inert::line(&expires)
                ),
            )
        })?;
        let selectors = self.matches.unwrap_or_default().selectors();
        if selectors.is_empty() {
            return Err((
                line,
                "`match` must name at least one of serial, address, name, site, tag".into(),
            ));
        }
        Ok(Waiver {
            id,
            allows,
            reason,
            owner,
            expires,
            expires_day,
            ticket: self.ticket.filter(|t| !t.trim().is_empty()),
            selectors,
            matched: AtomicU64::new(0),
            waived: AtomicU64::new(0),
            resurfaced: AtomicU64::new(0),
        })
    }
}

impl RawMatch {
    /// The fields it names, in the order they are tried.
    fn selectors(self) -> Vec<(Field, String)> {
        [
            (Field::Serial, self.serial),
            (Field::Address, self.address),
            (Field::Name, self.name),
            (Field::Site, self.site),
            (Field::Tag, self.tag),
        ]
        .into_iter()
        .filter_map(|(field, pattern)| pattern.map(|p| (field, p)))
        .collect()
    }
}

/// One waiver, checked.
#[derive(Debug)]
pub struct Waiver {
    pub id: String,
    pub allows: SshState,
    pub reason: String,
    pub owner: String,
    /// The last day it holds (UTC), as written.
    pub expires: String,
    expires_day: sshfleet_core::time::Date,
    pub ticket: Option<String>,
    selectors: Vec<(Field, String)>,
    /// Devices its selectors matched, whatever their state.
    matched: AtomicU64,
    /// Findings it hid.
    waived: AtomicU64,
    /// Findings it would have hidden had it not expired.
    resurfaced: AtomicU64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Serial,
    Address,
    Name,
    Site,
    Tag,
}

/// The waivers of a run, judged against one day.
#[derive(Debug)]
pub struct Waivers {
    waivers: Vec<Waiver>,
    today: sshfleet_core::time::Date,
}

/// How the waivers fared over a run, for the summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WaiverReport {
    /// `(id, owner, expires, findings hidden)` of every waiver in force that hid something.
    pub used: Vec<(String, String, String, u64)>,
    /// Expired waivers whose devices are findings again: `(id, owner, expires, devices)`.
    pub resurfaced: Vec<(String, String, String, u64)>,
    /// In force, expiring within [`EXPIRING_WITHIN_DAYS`]: `(id, owner, expires)`.
    pub expiring: Vec<(String, String, String)>,
    /// Matched no device of this run.
    pub unmatched: Vec<String>,
}

impl Waivers {
    pub fn load(path: &Path, today: sshfleet_core::time::Date) -> Result<Waivers, WaiverError> {
        let text = sshfleet_core::files::load_capped(
            path,
            TextFile {
                name: "waivers",
                one: "a waiver file",
                max: MAX_FILE_BYTES,
            },
        )?;
        Waivers::parse(path, &text, today)
    }

    pub fn parse(
        path: &Path,
        text: &str,
        today: sshfleet_core::time::Date,
    ) -> Result<Waivers, WaiverError> {
        let file: WaiverFile = toml::from_str(text).map_err(|e| WaiverError::Syntax {
            path: path.to_owned(),
            message: sshfleet_core::inert::message(e.to_string().trim_end()),
        })?;
        let lines = LineIndex::new(text);
        let mut seen = HashSet::new();
        let mut waivers = Vec::with_capacity(file.waiver.len());
        for (i, spanned) in file.waiver.into_iter().enumerate() {
            let line = lines.line_of(spanned.span().start);
            let mut raw = spanned.into_inner();
            let id = raw.id.take().filter(|id| !id.trim().is_empty());
            let invalid = |id: String, (line, problem): (usize, String)| WaiverError::Invalid {
                path: path.to_owned(),
                line,
                id: sshfleet_core::inert::line(&id).into_owned(),
                problem,
            };
            let Some(id) = id else {
                let id = format!("#{} (no id)", i + 1);
                return Err(invalid(id, (line, "`id` is missing".into())));
            };
            if !seen.insert(id.clone()) {
                return Err(invalid(id, (line, "the same id is used twice".into())));
            }
            match raw.check(id.clone(), line, &lines) {
                Ok(waiver) => waivers.push(waiver),
                Err(problem) => return Err(invalid(id, problem)),
            }
        }
        Ok(Waivers { waivers, today })
    }

    pub fn len(&self) -> usize {
        self.waivers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waivers.is_empty()
    }

    /// Applies the first waiver in force that matches the device and allows its observed
    /// state: the record gets its `waiver` and stops being a finding. A device that could
    /// not be read is never waived (its state is unknown), nor one whose SSH port answers
    /// while it is configured off (`port_only`: see [`DeviceRecord::waivable_state`]).
    pub fn apply(&self, device: &Device, record: &mut DeviceRecord) {
        record.waiver = None;
        let mut resurfacing: Option<&Waiver> = None;
        for w in &self.waivers {
            if !w.matches(device, record) {
                continue;
            }
            w.matched.fetch_add(1, Ordering::Relaxed);
            let waivable = record.waivable_state() == Some(w.allows);
            if !waivable || record.waiver.is_some() {
                continue;
            }
            if w.expires_day < self.today {
                resurfacing.get_or_insert(w);
                continue;
            }
            w.waived.fetch_add(1, Ordering::Relaxed);
            record.waiver = Some(w.tag());
        }
        if let (None, Some(w)) = (&record.waiver, resurfacing) {
            w.resurfaced.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn report(&self) -> WaiverReport {
        let mut report = WaiverReport::default();
        for w in &self.waivers {
            let who = || (w.id.clone(), w.owner.clone(), w.expires.clone());
            let (matched, waived, resurfaced) = (
                w.matched.load(Ordering::Relaxed),
                w.waived.load(Ordering::Relaxed),
                w.resurfaced.load(Ordering::Relaxed),
            );
            if matched == 0 {
                report.unmatched.push(w.id.clone());
            }
            if waived > 0 {
                let (id, owner, expires) = who();
                report.used.push((id, owner, expires, waived));
            }
            if resurfaced > 0 {
                let (id, owner, expires) = who();
                report.resurfaced.push((id, owner, expires, resurfaced));
            }
            let left = sshfleet_core::time::days_between(self.today, w.expires_day);
            if (0..=EXPIRING_WITHIN_DAYS).contains(&left) {
                report.expiring.push(who());
            }
        }
        report
    }
}

impl Waiver {
    /// Every selector given must match (globs: `*` any run, `?` one character).
    fn matches(&self, device: &Device, record: &DeviceRecord) -> bool {
        self.selectors.iter().all(|(field, pattern)| match field {
            Field::Serial => record
                .serial
                .as_deref()
                .is_some_and(|s| glob(&pattern.to_ascii_uppercase(), s)),
            Field::Address => glob(pattern, &device.address),
            Field::Name => glob(pattern, &device.name),
            Field::Site => glob(pattern, &device.site),
            Field::Tag => device
                .tags
                .split([';', ','])
                .map(str::trim)
                .any(|tag| !tag.is_empty() && glob(pattern, tag)),
        })
    }

    /// What a record it allows carries of it (the `waiver` column, and the page's parts).
    fn tag(&self) -> WaiverTag {
        WaiverTag::new(
            self.id.clone(),
            self.owner.clone(),
            self.expires.clone(),
            self.ticket.clone(),
        )
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_report::{Exposure, PortState, Status};

    const TODAY: &str = "2026-12-02";

    fn today() -> sshfleet_core::time::Date {
        sshfleet_core::time::parse_date(TODAY).unwrap()
    }

    fn parse(text: &str) -> Result<Waivers, WaiverError> {
        Waivers::parse(Path::new("waivers.toml"), text, today())
    }

    const GOOD: &str = r#"
[[waiver]]
id = "W-17"
match = { site = "hq", name = "lobby-*" }
ssh = "enabled"
reason = "vendor maintenance access, contract 4411"
owner = "secops@example.com"
expires = "2027-03-31"
ticket = "SEC-1234"

[[waiver]]
id = "W-3"
match = { tag = "lab" }
ssh = "enabled"
reason = "test bench"
owner = "lab@example.com"
expires = "2026-11-30"

[[waiver]]
id = "W-9"
match = { serial = "accc8e0123*" }
ssh = "enabled"
reason = "jump host"
owner = "netops@example.com"
expires = "2026-12-10"

[[waiver]]
id = "W-nothing"
match = { address = "10.99.*" }
ssh = "enabled"
reason = "old site"
owner = "x@example.com"
expires = "2027-01-01"
"#;

    fn device(name: &str, site: &str, tags: &str) -> Device {
        let options = sshfleet_inventory::InventoryOptions::default();
        let csv = format!("address,name,site,tags\n10.0.0.1,{name},{site},{tags}\n");
        let inv = sshfleet_inventory::parse(csv.as_bytes(), &options).unwrap();
        let device = inv.rows.devices().next().unwrap();
        device
    }

    fn exposed(serial: Option<&str>) -> DeviceRecord {
        let mut rec =
            DeviceRecord::new("10.0.0.1".into(), String::new(), String::new(), Status::Ok);
        rec.ssh_enabled = Some(true);
        rec.expect = Some(SshState::Disabled);
        rec.serial = serial.map(str::to_owned);
        rec.judge();
        rec
    }

    #[test]
    fn a_matching_waiver_in_force_hides_the_finding_and_says_whose_it_is() {
        let waivers = parse(GOOD).unwrap();
        let mut rec = exposed(None);
        waivers.apply(&device("lobby-2", "hq", ""), &mut rec);
        assert_eq!(
            rec.waiver.as_ref().map(WaiverTag::as_str),
            Some("W-17 owner=secops@example.com expires=2027-03-31 ticket=SEC-1234")
        );
        assert!(!rec.is_finding());
        // Another site, or a compliant device, is not waived.
        let mut rec = exposed(None);
        waivers.apply(&device("lobby-2", "branch", ""), &mut rec);
        assert_eq!(rec.waiver, None);
        assert!(rec.is_finding());
        // The serial glob is case-insensitive (serials are upper case).
        let mut rec = exposed(Some("ACCC8E012345"));
        waivers.apply(&device("x", "y", ""), &mut rec);
        assert!(rec.waiver.is_some_and(|w| w.id == "W-9"));
    }

    #[test]
    fn an_expired_waiver_hides_nothing_and_is_reported() {
        let waivers = parse(GOOD).unwrap();
        let mut rec = exposed(None);
        waivers.apply(&device("cam", "lab-site", "lab;outdoor"), &mut rec);
        assert_eq!(rec.waiver, None);
        assert!(rec.is_finding());
        let report = waivers.report();
        assert_eq!(report.resurfaced.len(), 1);
        assert_eq!(report.resurfaced[0].0, "W-3");
        assert_eq!(
            report.expiring,
            [(
                "W-9".into(),
                "netops@example.com".into(),
                "2026-12-10".into()
            )]
        );
        assert!(report.unmatched.contains(&"W-nothing".to_owned()));
    }

    #[test]
    fn a_waiver_allowing_disabled_never_hides_an_ssh_server_answering_while_off() {
        let text = GOOD.replacen("ssh = \"enabled\"", "ssh = \"disabled\"", 1);
        let waivers = parse(&text).unwrap();
        let mut rec = exposed(None);
        rec.ssh_enabled = Some(false);
        rec.ssh_port = Some(PortState::Open);
        rec.assess_exposure();
        rec.judge();
        assert_eq!(rec.exposure, Some(Exposure::PortOnly));
        waivers.apply(&device("lobby-2", "hq", ""), &mut rec);
        assert_eq!(rec.waiver, None);
        assert!(rec.is_finding());
        // The same device expected enabled: its configuration alone would be waivable, but
        // the port still answers while it is off.
        rec.expect = Some(SshState::Enabled);
        rec.judge();
        waivers.apply(&device("lobby-2", "hq", ""), &mut rec);
        assert_eq!(rec.waiver, None);
        // Closed port, expected enabled: the configured state is what the waiver allows.
        rec.ssh_port = Some(PortState::Closed);
        rec.assess_exposure();
        rec.judge();
        waivers.apply(&device("lobby-2", "hq", ""), &mut rec);
        assert!(rec.waiver.is_some_and(|w| w.id == "W-17"));
    }

    #[test]
    fn a_device_that_could_not_be_read_is_never_waived() {
        let waivers = parse(GOOD).unwrap();
        let mut rec = DeviceRecord::new(
            "10.0.0.1".into(),
            String::new(),
            String::new(),
            Status::Timeout,
        );
        waivers.apply(&device("lobby-1", "hq", ""), &mut rec);
        assert_eq!(rec.waiver, None);
        assert!(rec.is_finding());
    }

    #[test]
    fn incomplete_waivers_are_refused_with_file_line_and_field() {
        let base = |extra: &str, skip: &str| {
            let mut lines = vec![
                "[[waiver]]",
                "id = \"W-1\"",
                "match = { site = \"hq\" }",
                "ssh = \"enabled\"",
                "reason = \"r\"",
                "owner = \"o\"",
                "expires = \"2027-01-01\"",
            ];
            lines.retain(|l| !l.starts_with(skip) || skip.is_empty());
            format!("# waivers\n{}\n{extra}\n", lines.join("\n"))
        };
        let cases = [
            (
                base("", "reason"),
                "line 2: waiver W-1: `reason` is missing",
            ),
            (base("", "owner"), "line 2: waiver W-1: `owner` is missing"),
            (
                base("", "expires"),
                "line 2: waiver W-1: `expires` is missing",
            ),
            (base("", "id"), "`id` is missing"),
            (base("", "match"), "`match` must name"),
            (base("", "ssh"), "`ssh` must be"),
            (
                base("", "").replace("2027-01-01", "2027-02-30"),
                "line 8: waiver W-1: `expires` \"2027-02-30\" is not a date",
            ),
            (base("colour = \"red\"", ""), "unknown field"),
            (
                format!("{}\n{}", base("", ""), base("", "")),
                "the same id is used twice",
            ),
            ("[[waiver]\n".to_owned(), "waivers.toml"),
        ];
        for (text, want) in cases {
            let err = match parse(&text) {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{text}\n=> {err}\nwant {want}");
            assert!(err.starts_with("waivers.toml"), "{err}");
        }
    }
}
