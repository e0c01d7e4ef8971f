//! The remediation journal: append-only JSONL, synced to disk before every device write, so
//! a run killed at any instant resumes without writing any device twice.
//!
//! Lines: one `header` per run (what the run is: its id, the saved plan or reverted run it
//! applies, the inventory, target, shard and `--limit`), then per device an `intent` (synced
//! before the write goes out) and an `outcome` (after the read-back), and `finished` once the
//! run went through every device. A crash can only leave a truncated last line; it is
//! ignored, because the write it announced was never sent.
//!
//! A journal resumes only the run it belongs to, and only while that run is unfinished: the
//! run after a finished one starts a section of its own (a new header), so nothing an earlier
//! run did is taken for what this run saw.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Version 2 added runs (a header per run, `finished`); a version 1 journal cannot say
/// whether its run finished, so it is never resumed (it can still be reverted).
const VERSION: u32 = 2;

/// What a journal's run belongs to; a resume must match it exactly (but for `run`, which a
/// resume keeps, and `inventory_path`, which only says where the inventory was).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub version: u32,
    /// The run's id: random, given when the run starts, kept by its resumes.
    #[serde(default)]
    pub run: String,
    /// What the run applies: `sha256:` and the saved plan's checksum, or `revert:` and the
    /// reverted run's id; none for a run that plans itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// SHA-256 over the sorted device keys of the inventory (this shard's devices).
    pub inventory: String,
    /// The inventory file (absolute), so that `--revert` needs no `--inventory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory_path: Option<String>,
    /// `enabled` or `disabled`.
    pub target: String,
    pub shard: Option<String>,
    /// The run's `--limit`, as given (none: every device of the inventory and shard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl JournalHeader {
    pub fn new(inventory: String, target: &str, shard: Option<String>) -> JournalHeader {
        JournalHeader {
            version: VERSION,
            run: new_run_id(),
            plan: None,
            inventory,
            inventory_path: None,
            target: target.to_owned(),
            shard,
            limit: None,
        }
    }
}

/// 64 random bits, hex: enough to tell the runs of one journal (and their reverts) apart.
fn new_run_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The recorded result of one device's write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub after: Option<bool>,
    pub verified: bool,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header(JournalHeader),
    Intent {
        key: String,
        address: String,
        enabled: bool,
        at_ms: u64,
    },
    Outcome {
        key: String,
        address: String,
        #[serde(flatten)]
        outcome: Outcome,
        at_ms: u64,
    },
    /// The failure budget stopped the run before wave `next_wave` (0-based).
    Stopped {
        next_wave: usize,
        failures: usize,
        allowed: usize,
        at_ms: u64,
    },
    /// A run told `--continue-after-failures` went on after a stop.
    Continued {
        at_ms: u64,
    },
    /// Wave `number` (0-based) of the waves over `total` planned writes starts, with
    /// `devices` of them.
    Wave {
        number: usize,
        devices: usize,
        total: usize,
        at_ms: u64,
    },
    /// The run went through every device: nothing of it is left to resume.
    Finished {
        at_ms: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The I/O error is part of the message, not a `source`: the message also goes into
    /// device records, and `{:#}` would otherwise print the OS error twice.
    #[error("journal {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("journal {path}: an earlier write failed and could not be undone; nothing more is written to it")]
    Broken { path: PathBuf },
    #[error("journal {path} belongs to another run, not finished ({reason}); finish that run with the command that started it, or give this run a new --journal FILE")]
    Mismatch { path: PathBuf, reason: String },
    #[error(
        "journal {path}: line {line} is not a journal entry; refusing to guess what was written"
    )]
    Corrupt { path: PathBuf, line: usize },
}

impl JournalError {
    /// The journal the error is about.
    pub fn path(&self) -> &Path {
        match self {
            JournalError::Io { path, .. }
            | JournalError::Broken { path }
            | JournalError::Mismatch { path, .. }
            | JournalError::Corrupt { path, .. } => path,
        }
    }
}

/// What an existing journal says has happened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Devices whose write finished (verified or not): never touched again.
    pub outcomes: HashMap<String, Outcome>,
    /// Devices announced but with no outcome: re-read, written only if still wrong.
    pub pending: HashSet<String>,
    /// The failure budget stopped the last run, and no run has continued since.
    pub stopped: Option<BudgetStop>,
    /// The last wave that started, and how far it got.
    pub wave: Option<WaveProgress>,
    /// The run went through every device (a `finished` entry).
    pub finished: bool,
    /// Runs in the journal before this one.
    pub earlier_runs: usize,
}

/// The last wave a journal saw start: a rerun resumes in it, with the devices it has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaveProgress {
    /// 0-based.
    pub number: usize,
    pub devices: usize,
    /// The planned writes the waves were cut from, when the first of them started.
    pub total: usize,
    /// Outcomes journaled since it started.
    pub done: usize,
}

/// Where and why the failure budget stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetStop {
    /// The wave the run would have started next (0-based).
    pub next_wave: usize,
    pub failures: usize,
    pub allowed: usize,
}

/// An open journal; appends are serialised and synced.
pub struct Journal {
    path: PathBuf,
    /// The run this journal is open for (a resumed run's own header).
    header: JournalHeader,
    file: Mutex<Appender>,
}

/// The file under the journal's lock.
struct Appender {
    file: File,
    /// Bytes of whole entries: a failed append is cut back to this.
    len: u64,
    /// A failed append could not be cut back: the file may end in a torn line, and anything
    /// appended after it would sit behind that line, mid-file.
    broken: bool,
}

impl Journal {
    /// Opens a journal for the run `header` describes: resumes the journal's last run when it
    /// is unfinished and bound as `header` is (refused when bound otherwise), else starts a
    /// new run in it: what earlier runs did is not recovered, and not trusted.
    pub fn open(path: &Path, header: &JournalHeader) -> Result<(Journal, Recovered), JournalError> {
        let io_err = |error| JournalError::Io {
            path: path.to_owned(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err)?;
        let existing = read_existing(&mut file, path)?;
        let mut len = existing.len;
        if let Some(clean) = existing.torn_at {
            // Cut a torn last line away: it announced nothing that happened, and left in
            // place it would sit mid-file once the next entry is appended.
            file.set_len(clean)
                .and_then(|()| file.sync_data())
                .map_err(io_err)?;
            len = clean;
        }
        let mut journal = Journal {
            path: path.to_owned(),
            header: header.clone(),
            file: Mutex::new(Appender {
                file,
                len,
                broken: false,
            }),
        };
        if existing.unterminated {
            journal.append_raw(b"\n")?;
        }
        let recovered = existing.recovered;
        match existing.header {
            Some(found) if recovered.resumable() => {
                check_header(path, &found, header)?;
                journal.header = found;
                Ok((journal, recovered))
            }
            found => {
                journal.append(&Line::Header(header.clone()))?;
                let earlier_runs = recovered.earlier_runs + usize::from(found.is_some());
                let fresh = Recovered {
                    earlier_runs,
                    ..Recovered::default()
                };
                Ok((journal, fresh))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The run this journal is open for: this run's header, or the resumed run's.
    pub fn header(&self) -> &JournalHeader {
        &self.header
    }

    /// Records that the run went through every device: the next run is a new one.
    pub fn finished(&self) -> Result<(), JournalError> {
        self.append(&Line::Finished { at_ms: now_ms() })
    }

    /// Records that `key` is about to be written; returns once it is on disk.
    pub fn intent(&self, key: &str, address: &str, enabled: bool) -> Result<(), JournalError> {
        self.append(&Line::Intent {
            key: key.to_owned(),
            address: address.to_owned(),
            enabled,
            at_ms: now_ms(),
        })
    }

    /// Records that the failure budget stopped the run before `stop.next_wave`.
    pub fn stopped(&self, stop: BudgetStop) -> Result<(), JournalError> {
        self.append(&Line::Stopped {
            next_wave: stop.next_wave,
            failures: stop.failures,
            allowed: stop.allowed,
            at_ms: now_ms(),
        })
    }

    /// Records that wave `wave.number` (0-based) starts.
    pub fn wave(&self, wave: WaveProgress) -> Result<(), JournalError> {
        self.append(&Line::Wave {
            number: wave.number,
            devices: wave.devices,
            total: wave.total,
            at_ms: now_ms(),
        })
    }

    /// Records that this run goes on after a budget stop (`--continue-after-failures`).
    pub fn continued(&self) -> Result<(), JournalError> {
        self.append(&Line::Continued { at_ms: now_ms() })
    }

    pub fn outcome(&self, key: &str, address: &str, outcome: Outcome) -> Result<(), JournalError> {
        self.append(&Line::Outcome {
            key: key.to_owned(),
            address: address.to_owned(),
            outcome,
            at_ms: now_ms(),
        })
    }

    fn append(&self, line: &Line) -> Result<(), JournalError> {
        let mut bytes = serde_json::to_vec(line).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            error: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        self.append_raw(&bytes)
    }

    /// One `write_all` then `sync_data` under the lock: a line is whole on disk or absent
    /// (but for a torn tail after a crash, which the reader ignores). A failed append (a
    /// full disk) is cut back off, so the entries after it still start on a line of their
    /// own; if even that fails, the journal refuses every later append.
    fn append_raw(&self, bytes: &[u8]) -> Result<(), JournalError> {
        let mut appender = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if appender.broken {
            return Err(JournalError::Broken {
                path: self.path.clone(),
            });
        }
        let written = appender
            .file
            .write_all(bytes)
            .and_then(|()| appender.file.sync_data());
        match written {
            Ok(()) => {
                appender.len = appender.len.saturating_add(bytes.len() as u64);
                Ok(())
            }
            Err(error) => {
                let clean = appender.len;
                let undone = appender
                    .file
                    .set_len(clean)
                    .and_then(|()| appender.file.sync_data());
                appender.broken = undone.is_err();
                Err(JournalError::Io {
                    path: self.path.clone(),
                    error,
                })
            }
        }
    }

    /// Makes every later append go to `file` (a test stands in a failing one).
    #[cfg(test)]
    fn replace_file(&self, file: File) {
        let mut appender = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        appender.file = file;
        appender.len = 0;
    }
}

/// A journal read back for `--revert`: its last run, what it was for and what it recorded.
pub fn read_journal(path: &Path) -> Result<(JournalHeader, Recovered), JournalError> {
    let mut file = File::open(path).map_err(|error| JournalError::Io {
        path: path.to_owned(),
        error,
    })?;
    let existing = read_existing(&mut file, path)?;
    let header = existing.header.ok_or_else(|| JournalError::Corrupt {
        path: path.to_owned(),
        line: 1,
    })?;
    Ok((header, existing.recovered))
}

/// What reading an existing journal found.
#[derive(Default)]
struct Existing {
    header: Option<JournalHeader>,
    recovered: Recovered,
    /// The length to cut the file to when its last line is torn.
    torn_at: Option<u64>,
    /// The last entry is whole but lost its newline.
    unterminated: bool,
    /// The length of the file as read.
    len: u64,
}

fn read_existing(file: &mut File, path: &Path) -> Result<Existing, JournalError> {
    let io_err = |error| JournalError::Io {
        path: path.to_owned(),
        error,
    };
    let corrupt = |line| JournalError::Corrupt {
        path: path.to_owned(),
        line,
    };
    // A device or a FIFO holds no past to read (and /dev/full or /dev/zero would read
    // forever); it is appended to like a file.
    if !file.metadata().map_err(io_err)?.is_file() {
        return Ok(Existing::default());
    }
    let raw = read_lines(file).map_err(io_err)?;
    let mut torn = None;
    let mut header = None;
    let mut recovered = Recovered::default();
    let last = raw.lines.len();
    for (i, text) in raw.lines.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let parsed: Result<Line, _> = serde_json::from_str(text.trim_end());
        match parsed {
            Ok(Line::Header(h)) => {
                // A new run: what the earlier ones recorded is theirs.
                if header.replace(h).is_some() {
                    recovered = Recovered {
                        earlier_runs: recovered.earlier_runs.saturating_add(1),
                        ..Recovered::default()
                    };
                }
            }
            Ok(entry) => recovered.record(entry),
            // Only the very last line may be torn by a crash.
            Err(_) if i + 1 == last && !text.ends_with('\n') => torn = Some(raw.clean_len),
            Err(_) => return Err(corrupt(i + 1)),
        }
    }
    if header.is_none() && !(recovered.outcomes.is_empty() && recovered.pending.is_empty()) {
        return Err(corrupt(1));
    }
    let unterminated = torn.is_none() && raw.lines.last().is_some_and(|l| !l.ends_with('\n'));
    Ok(Existing {
        header,
        recovered,
        torn_at: torn,
        unterminated,
        len: raw.len,
    })
}

/// A journal file's lines as read, each with its newline when it has one.
struct RawLines {
    lines: Vec<String>,
    /// The length of the lines that end in a newline (all but a torn last one).
    clean_len: u64,
    /// The length of the file as read.
    len: u64,
}

/// Every line of `file`, from its start.
fn read_lines(file: &mut File) -> io::Result<RawLines> {
    file.seek(SeekFrom::Start(0))?;
    let mut raw = RawLines {
        lines: Vec::new(),
        clean_len: 0,
        len: 0,
    };
    let mut reader = BufReader::new(&mut *file);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)? as u64;
        if n == 0 {
            break;
        }
        raw.len = raw.len.saturating_add(n);
        if line.ends_with('\n') {
            raw.clean_len = raw.clean_len.saturating_add(n);
        }
        raw.lines.push(line);
    }
    Ok(raw)
}

impl Recovered {
    /// The run was cut short after it began writing: a rerun of it resumes it. A finished
    /// run, or one that never got to an entry, leaves nothing to resume.
    fn resumable(&self) -> bool {
        let began = !(self.outcomes.is_empty() && self.pending.is_empty())
            || self.wave.is_some()
            || self.stopped.is_some();
        began && !self.finished
    }

    /// Where a rerun takes up the waves: before the wave a budget stop names, else inside
    /// the last wave that started (a crash or a stop request cut it), else at the start.
    pub fn resume(&self) -> crate::waves::Resume {
        match (self.stopped, self.wave) {
            (Some(stop), wave) => crate::waves::Resume {
                first_wave: stop.next_wave,
                total: wave.map(|w| w.total),
                done_in_first: 0,
            },
            (None, Some(w)) => crate::waves::Resume {
                first_wave: w.number,
                total: Some(w.total),
                done_in_first: w.done,
            },
            (None, None) => crate::waves::Resume::default(),
        }
    }

    /// What one entry after the header adds: an intent is pending until its outcome, an
    /// outcome is final, a stop holds until a run continues.
    fn record(&mut self, entry: Line) {
        match entry {
            // The reader takes the header itself: there is one, before any entry.
            Line::Header(_) => {}
            Line::Intent { key, .. } => {
                if !self.outcomes.contains_key(&key) {
                    self.pending.insert(key);
                }
            }
            Line::Outcome { key, outcome, .. } => {
                self.pending.remove(&key);
                let first = self.outcomes.insert(key, outcome).is_none();
                if let (true, Some(wave)) = (first, self.wave.as_mut()) {
                    wave.done = wave.done.saturating_add(1);
                }
            }
            Line::Wave {
                number,
                devices,
                total,
                ..
            } => {
                self.wave = Some(WaveProgress {
                    number,
                    devices,
                    total,
                    done: 0,
                });
            }
            Line::Stopped {
                next_wave,
                failures,
                allowed,
                ..
            } => {
                self.stopped = Some(BudgetStop {
                    next_wave,
                    failures,
                    allowed,
                });
            }
            Line::Continued { .. } => self.stopped = None,
            Line::Finished { .. } => self.finished = true,
        }
    }
}

fn check_header(
    path: &Path,
    found: &JournalHeader,
    wanted: &JournalHeader,
) -> Result<(), JournalError> {
    let reason = if found.version != wanted.version {
        format!(
            "journal format {} (this build writes {})",
            found.version, wanted.version
        )
    } else if found.target != wanted.target {
        format!(
            "it sets SSH {}, this run sets SSH {}",
            found.target, wanted.target
        )
    } else if found.inventory != wanted.inventory {
        "it was written for a different inventory".to_owned()
    } else if found.shard != wanted.shard {
        format!(
            "it was written for shard {}, this run is shard {}",
            found.shard.as_deref().unwrap_or("(none)"),
            wanted.shard.as_deref().unwrap_or("(none)")
        )
    } else if found.plan != wanted.plan {
        format!(
            "it applies {}, this run applies {}",
            found.plan.as_deref().unwrap_or("its own plan"),
            wanted.plan.as_deref().unwrap_or("its own plan")
        )
    } else if found.limit != wanted.limit {
        format!(
            "it was limited to {}, this run to {}",
            found.limit.as_deref().unwrap_or("(everything)"),
            wanted.limit.as_deref().unwrap_or("(everything)")
        )
    } else {
        return Ok(());
    };
    Err(JournalError::Mismatch {
        path: path.to_owned(),
        reason,
    })
}

/// Now as the journal's unsigned Unix milliseconds (0 before the epoch).
fn now_ms() -> u64 {
    u64::try_from(sshfleet_core::time::now_unix_ms()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> JournalHeader {
        JournalHeader::new("abc".into(), "disabled", None)
    }

    fn open(path: &Path) -> (Journal, Recovered) {
        match Journal::open(path, &header()) {
            Ok(v) => v,
            Err(e) => panic!("open: {e}"),
        }
    }

    /// Appends raw bytes, as a run killed mid-write leaves them.
    fn append_raw(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn resume_sees_outcomes_and_pending_intents() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let (j, rec) = open(&path);
        assert!(rec.outcomes.is_empty() && rec.pending.is_empty());
        let done = Outcome {
            after: Some(false),
            verified: true,
            error: None,
        };
        for r in [
            j.intent("a", "a", false),
            j.outcome("a", "a", done.clone()),
            j.intent("b", "b", false),
        ] {
            assert!(r.is_ok());
        }
        drop(j);
        let (_, rec) = open(&path);
        assert_eq!(rec.outcomes.get("a"), Some(&done));
        assert!(rec.pending.contains("b") && !rec.pending.contains("a"));
    }

    #[test]
    fn torn_last_line_is_ignored_and_appends_start_fresh() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        drop(open(&path));
        append_raw(&path, br#"{"type":"intent","key":"c","addr"#);
        let (j, rec) = open(&path);
        assert!(rec.pending.is_empty(), "a torn intent was never acted on");
        assert!(j.intent("d", "d", false).is_ok());
        drop(j);
        let (_, rec) = open(&path);
        assert!(rec.pending.contains("d"));
    }

    #[test]
    fn a_whole_last_entry_without_newline_is_kept_and_terminated() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        drop(open(&path));
        append_raw(
            &path,
            br#"{"type":"intent","key":"e","address":"e","enabled":false,"at_ms":1}"#,
        );
        let (j, rec) = open(&path);
        assert!(rec.pending.contains("e"));
        assert!(j.intent("f", "f", false).is_ok());
        drop(j);
        let (_, rec) = open(&path);
        assert!(rec.pending.contains("e") && rec.pending.contains("f"));
    }

    #[test]
    fn an_unfinished_run_for_another_target_or_inventory_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let (j, _) = open(&path);
        assert!(j.intent("a", "a", false).is_ok());
        drop(j);
        let other_plan = JournalHeader {
            plan: Some("sha256:beef".into()),
            ..header()
        };
        assert!(matches!(
            Journal::open(&path, &other_plan),
            Err(JournalError::Mismatch { .. })
        ));
        let other_target = JournalHeader::new("abc".into(), "enabled", None);
        assert!(matches!(
            Journal::open(&path, &other_target),
            Err(JournalError::Mismatch { .. })
        ));
        let other_inventory = JournalHeader::new("xyz".into(), "disabled", None);
        assert!(matches!(
            Journal::open(&path, &other_inventory),
            Err(JournalError::Mismatch { .. })
        ));
    }

    #[test]
    fn a_finished_run_is_never_resumed_the_next_run_is_a_new_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let (j, _) = open(&path);
        let done = Outcome {
            after: Some(false),
            verified: true,
            error: None,
        };
        for r in [
            j.intent("a", "a", false),
            j.outcome("a", "a", done),
            j.finished(),
        ] {
            assert!(r.is_ok());
        }
        let first_run = j.header().run.clone();
        drop(j);
        // Another inventory and target too: the finished run binds nothing.
        let next = JournalHeader::new("xyz".into(), "enabled", None);
        let (j, rec) = Journal::open(&path, &next).unwrap_or_else(|e| panic!("{e}"));
        assert!(rec.outcomes.is_empty() && rec.pending.is_empty(), "{rec:?}");
        assert_eq!(rec.earlier_runs, 1);
        assert_ne!(j.header().run, first_run);
        drop(j);
        let (header, rec) = read_journal(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(header, next, "the last run is the journal's run");
        assert!(rec.outcomes.is_empty() && !rec.finished);
    }

    #[test]
    fn an_unfinished_run_is_resumed_with_its_own_id() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let (j, _) = open(&path);
        assert!(j.intent("a", "a", false).is_ok());
        let run = j.header().run.clone();
        drop(j);
        let (j, rec) = open(&path);
        assert_eq!(j.header().run, run);
        assert!(rec.pending.contains("a"));
    }

    #[test]
    fn a_failed_append_is_an_error_naming_the_journal_and_the_os_error_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let (j, _) = open(&path);
        let full = OpenOptions::new()
            .append(true)
            .open("/dev/full")
            .unwrap_or_else(|e| panic!("{e}"));
        j.replace_file(full);
        let Err(e) = j.intent("a", "a", false) else {
            panic!("an intent on a full disk is an error")
        };
        let shown = format!("{:#}", anyhow::Error::from(e));
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert_eq!(
            shown.matches("No space left on device").count(),
            1,
            "{shown}"
        );
        // /dev/full cannot be cut back, so nothing more may be appended behind the failure.
        assert!(matches!(
            j.outcome(
                "a",
                "a",
                Outcome {
                    after: None,
                    verified: false,
                    error: None
                }
            ),
            Err(JournalError::Broken { .. })
        ));
    }

    #[test]
    fn a_journal_on_a_device_is_not_read_and_fails_at_its_header() {
        let err = match Journal::open(Path::new("/dev/full"), &header()) {
            Ok(_) => panic!("/dev/full takes no header"),
            Err(e) => e,
        };
        assert!(matches!(err, JournalError::Io { .. }), "{err}");
    }

    #[test]
    fn garbage_in_the_middle_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("j.jsonl");
        let _ = std::fs::write(&path, "not json\n{\"type\":\"intent\"}\n");
        assert!(matches!(
            Journal::open(&path, &header()),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn an_outcome_is_final_and_a_continue_lifts_the_stop() {
        let intent = |key: &str| Line::Intent {
            key: key.into(),
            address: key.into(),
            enabled: false,
            at_ms: 1,
        };
        let done = Outcome {
            after: Some(false),
            verified: true,
            error: None,
        };
        let mut rec = Recovered::default();
        rec.record(intent("a"));
        rec.record(intent("b"));
        rec.record(Line::Outcome {
            key: "a".into(),
            address: "a".into(),
            outcome: done.clone(),
            at_ms: 2,
        });
        // A later intent for a finished device (a resumed run re-announcing it) stays done.
        rec.record(intent("a"));
        assert_eq!(rec.outcomes.get("a"), Some(&done));
        assert!(!rec.pending.contains("a") && rec.pending.contains("b"));
        rec.record(Line::Stopped {
            next_wave: 2,
            failures: 3,
            allowed: 1,
            at_ms: 3,
        });
        assert_eq!(
            rec.stopped,
            Some(BudgetStop {
                next_wave: 2,
                failures: 3,
                allowed: 1
            })
        );
        rec.record(Line::Continued { at_ms: 4 });
        assert_eq!(rec.stopped, None);
    }

    #[test]
    fn the_last_wave_started_counts_the_outcomes_after_it() {
        let mut rec = Recovered::default();
        let outcome = |key: &str| Line::Outcome {
            key: key.into(),
            address: key.into(),
            outcome: Outcome {
                after: Some(false),
                verified: true,
                error: None,
            },
            at_ms: 1,
        };
        let wave = |number| Line::Wave {
            number,
            devices: 4,
            total: 20,
            at_ms: 1,
        };
        rec.record(wave(0));
        rec.record(outcome("a"));
        rec.record(wave(1));
        rec.record(outcome("b"));
        rec.record(outcome("c"));
        // The same device journaled again is not a second write of the wave.
        rec.record(outcome("c"));
        let expected = WaveProgress {
            number: 1,
            devices: 4,
            total: 20,
            done: 2,
        };
        assert_eq!(rec.wave, Some(expected));
    }
}
