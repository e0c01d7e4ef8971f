//! Vendor advisories, not banners: Axis security advisories that name AXIS OS version ranges,
//! and which of them apply to the AXIS OS version a camera reports (`--device-info`). The
//! built-in set is `inputs/axis-advisories.toml`; a user's advisories file extends or replaces
//! it. Only AXIS OS versions are ever compared: an SSH banner never yields an advisory.
//!
//! ```toml
//! mode = "extend"                   # user files only: "extend" (default) or "replace"
//!
//! [[advisory]]
//! id = "CVE-2026-1185"
//! needs_ssh = true                  # exploitation needs an SSH login on the device
//! summary = "one line, in your own words"
//! affected = [                      # one range per AXIS OS track; a track not named is not affected
//!     { from = "12.0.0", fixed = "12.10.36" },   # from 12.0.0 up to before 12.10.36
//! ]
//! source = "https://…"              # where the ranges were read
//! advisory = "https://…"            # optional: the vendor's advisory document
//! ```

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use sshfleet_core::files::{CappedError, LineIndex};

mod version;

pub use version::{AxisOsVersion, VersionError};

/// The shipped advisories, built into the binary.
const BUILTIN: &str = include_str!("../../../../inputs/axis-advisories.toml");
/// How the built-in file is named in messages.
pub const BUILTIN_ORIGIN: &str = "built-in advisories (inputs/axis-advisories.toml)";
/// Largest advisories file read (thousands of advisories fit in far less).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Ranges one advisory may list (one per track; AXIS OS has had fewer than ten tracks).
const MAX_RANGES: usize = 32;
/// Longest one-line summary.
const MAX_SUMMARY_CHARS: usize = 240;

/// The versions of one track an advisory affects: from `from` up to before `fixed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AffectedRange {
    pub from: AxisOsVersion,
    pub fixed: AxisOsVersion,
}

impl AffectedRange {
    pub fn contains(&self, version: &AxisOsVersion) -> bool {
        self.from <= *version && *version < self.fixed
    }
}

impl fmt::Display for AffectedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} up to before {}", self.from, self.fixed)
    }
}

/// One advisory, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advisory {
    /// The CVE id (`CVE-2026-1185`).
    pub id: String,
    /// Exploitation needs an SSH login on the device: a finding where SSH is on or reachable.
    pub needs_ssh: bool,
    pub summary: String,
    /// Non-overlapping, in the order written.
    pub affected: Vec<AffectedRange>,
    /// Where the ranges were read.
    pub source: String,
    /// The vendor's advisory document, when named.
    pub advisory: Option<String>,
}

impl Advisory {
    pub fn affects(&self, version: &AxisOsVersion) -> bool {
        self.affected.iter().any(|range| range.contains(version))
    }
}

/// How a user's file combines with the built-in advisories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The built-in set plus the file's; an id in both takes the file's version.
    #[default]
    Extend,
    /// The file's advisories only.
    Replace,
}

/// One advisories file, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvisoryFile {
    pub mode: Mode,
    pub advisories: Vec<Advisory>,
}

/// An advisories file that cannot be used; nothing runs (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    #[error("cannot read the advisories {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}, line {line}: advisory {id}: {problem}")]
    Invalid {
        origin: String,
        line: usize,
        id: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    mode: Option<Mode>,
    #[serde(default)]
    advisory: Vec<Spanned<RawAdvisory>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdvisory {
    id: Option<String>,
    needs_ssh: Option<bool>,
    summary: Option<String>,
    affected: Option<Vec<Spanned<RawRange>>>,
    source: Option<String>,
    advisory: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    from: Option<String>,
    fixed: Option<String>,
}

/// A field's problem: the line it is on and what is wrong.
type Problem = (usize, String);

/// `CVE-YYYY-NNNN…`: the form every advisory id takes.
fn is_cve_id(id: &str) -> bool {
    let mut pieces = id.split('-');
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    matches!(
        (pieces.next(), pieces.next(), pieces.next(), pieces.next()),
        (Some("CVE"), Some(year), Some(number), None)
            if year.len() == 4 && all_digits(year) && number.len() >= 4 && all_digits(number)
    )
}

fn check_url(value: Option<String>, field: &str, line: usize) -> Result<String, Problem> {
    let url = value.ok_or_else(|| (line, format!("`{field}` is missing")))?;
    let printable = url.chars().all(|c| c.is_ascii_graphic());
    if !url.starts_with("https://") || url.len() <= "https://".len() || !printable {
        return Err((line, format!("`{field}` must be an https:// address")));
    }
    Ok(url)
}

fn check_summary(value: Option<String>, line: usize) -> Result<String, Problem> {
    let summary = value
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| (line, "`summary` is missing or empty".to_owned()))?;
    if summary.chars().any(char::is_control) {
        return Err((line, "`summary` must be one line".into()));
    }
    if summary.chars().count() > MAX_SUMMARY_CHARS {
        let problem = format!("`summary` is longer than {MAX_SUMMARY_CHARS} characters");
        return Err((line, problem));
    }
    Ok(summary)
}

fn check_bound(value: Option<String>, field: &str, line: usize) -> Result<AxisOsVersion, Problem> {
    let text = value.ok_or_else(|| (line, format!("a range has no `{field}`")))?;
    text.parse().map_err(|_| {
        (
            line,
            format!("`{field}` {text:?} is not an AXIS OS version (like 11.11.73)"),
        )
    })
}

/// Every range parsed, each `from` before its `fixed`, none overlapping another.
fn check_ranges(
    value: Option<Vec<Spanned<RawRange>>>,
    line: usize,
    lines: &LineIndex,
) -> Result<Vec<AffectedRange>, Problem> {
    let raw = value.ok_or_else(|| (line, "`affected` is missing".to_owned()))?;
    if raw.is_empty() || raw.len() > MAX_RANGES {
        let problem = format!("`affected` must list 1 to {MAX_RANGES} ranges");
        return Err((line, problem));
    }
    let mut ranges: Vec<(usize, AffectedRange)> = Vec::with_capacity(raw.len());
    for spanned in raw {
        let at = lines.line_of(spanned.span().start);
        let range = spanned.into_inner();
        let from = check_bound(range.from, "from", at)?;
        let fixed = check_bound(range.fixed, "fixed", at)?;
        if from >= fixed {
            return Err((at, format!("`from` {from} is not before `fixed` {fixed}")));
        }
        ranges.push((at, AffectedRange { from, fixed }));
    }
    let mut sorted: Vec<&(usize, AffectedRange)> = ranges.iter().collect();
    sorted.sort_by_key(|a| a.1.from);
    for pair in sorted.windows(2) {
        if let [(_, earlier), (at, later)] = pair {
            if later.from < earlier.fixed {
                return Err((*at, format!("range {later} overlaps range {earlier}")));
            }
        }
    }
    Ok(ranges.into_iter().map(|(_, range)| range).collect())
}

impl RawAdvisory {
    /// The advisory `id` (already checked) that starts on `line` of the file `lines` index,
    /// or the line and the problem of its first field that is missing or wrong.
    fn check(self, id: String, line: usize, lines: &LineIndex) -> Result<Advisory, Problem> {
        let needs_ssh = self
            .needs_ssh
            .ok_or_else(|| (line, "`needs_ssh` is missing (true or false)".to_owned()))?;
        let summary = check_summary(self.summary, line)?;
        let affected = check_ranges(self.affected, line, lines)?;
        let source = check_url(self.source, "source", line)?;
        let advisory = match self.advisory {
            Some(url) => Some(check_url(Some(url), "advisory", line)?),
            None => None,
        };
        Ok(Advisory {
            id,
            needs_ssh,
            summary,
            affected,
            source,
            advisory,
        })
    }
}

/// Parses and checks one advisories file; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<AdvisoryFile, AdvisoryError> {
    let file: RawFile = toml::from_str(text).map_err(|e| AdvisoryError::Syntax {
        origin: origin.to_owned(),
        message: sshfleet_core::inert::message(e.to_string().trim_end()),
    })?;
    let lines = LineIndex::new(text);
    let mut seen = HashSet::new();
    let mut advisories = Vec::with_capacity(file.advisory.len());
    for (i, spanned) in file.advisory.into_iter().enumerate() {
        let line = lines.line_of(spanned.span().start);
        let mut raw = spanned.into_inner();
        let invalid = |id: String, (line, problem): Problem| AdvisoryError::Invalid {
            origin: origin.to_owned(),
            line,
            id,
            problem,
        };
        let Some(id) = raw.id.take().map(|id| id.trim().to_owned()) else {
            let id = format!("#{} (no id)", i.saturating_add(1));
            return Err(invalid(id, (line, "`id` is missing".into())));
        };
        if !is_cve_id(&id) {
            let problem = "`id` must be a CVE id (CVE-YYYY-NNNN)".to_owned();
            return Err(invalid(format!("{id:?}"), (line, problem)));
        }
        if !seen.insert(id.clone()) {
            return Err(invalid(id, (line, "the same id is used twice".into())));
        }
        advisories.push(
            raw.check(id.clone(), line, &lines)
                .map_err(|p| invalid(id, p))?,
        );
    }
    Ok(AdvisoryFile {
        mode: file.mode.unwrap_or_default(),
        advisories,
    })
}

/// Reads and checks a user's advisories file (at most 1 MiB).
pub fn read(path: &Path) -> Result<AdvisoryFile, AdvisoryError> {
    let text = match sshfleet_core::files::read_capped(path, MAX_FILE_BYTES) {
        Ok(text) => text,
        Err(CappedError::Io(source)) => {
            return Err(AdvisoryError::Io {
                path: path.to_owned(),
                source,
            })
        }
        Err(CappedError::TooBig(size)) => {
            return Err(AdvisoryError::Syntax {
                origin: path.display().to_string(),
                message: format!("{size} bytes, more than the 1 MiB an advisories file may hold"),
            })
        }
    };
    parse(&text, &path.display().to_string())
}

/// The advisories of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advisories {
    list: Vec<Advisory>,
}

impl Advisories {
    /// No advisory: every id is unknown to it.
    pub fn empty() -> Advisories {
        Advisories { list: Vec::new() }
    }

    /// The shipped set (`inputs/axis-advisories.toml`, built in).
    pub fn builtin() -> Result<Advisories, AdvisoryError> {
        let file = parse(BUILTIN, BUILTIN_ORIGIN)?;
        Ok(Advisories {
            list: file.advisories,
        })
    }

    /// The built-in set, combined with the user's file when one is named (`--advisories`).
    pub fn load(user: Option<&Path>) -> Result<Advisories, AdvisoryError> {
        let builtin = Advisories::builtin()?;
        match user {
            None => Ok(builtin),
            Some(path) => Ok(builtin.combined(read(path)?)),
        }
    }

    /// These advisories with a user's file: `replace` keeps only the file's; `extend` keeps
    /// these, each one the file names again taking the file's version in place, then the
    /// file's new ones in its order.
    pub fn combined(self, file: AdvisoryFile) -> Advisories {
        if file.mode == Mode::Replace {
            return Advisories {
                list: file.advisories,
            };
        }
        let mut list = self.list;
        for advisory in file.advisories {
            match list.iter_mut().find(|known| known.id == advisory.id) {
                Some(known) => *known = advisory,
                None => list.push(advisory),
            }
        }
        Advisories { list }
    }

    /// The advisories whose ranges hold `version`, in file order.
    pub fn applicable(&self, version: &AxisOsVersion) -> Vec<&Advisory> {
        self.list.iter().filter(|a| a.affects(version)).collect()
    }

    /// The advisories that apply to the firmware text a device reported; a text that is not
    /// an AXIS OS version matches none and is an error the caller records.
    pub fn for_firmware(&self, firmware: &str) -> Result<Vec<&Advisory>, VersionError> {
        let version: AxisOsVersion = firmware.parse()?;
        Ok(self.applicable(&version))
    }

    pub fn get(&self, id: &str) -> Option<&Advisory> {
        self.list.iter().find(|a| a.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Advisory> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests;
