//! The device-record pipeline: the [`Collect`] that gives each record its drift against the
//! previous run, records it in the history, counts it into the summary and tells the progress
//! display; and the error a run gets when one of its outputs failed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::claims::SerialClaims;
use super::host_keys::{note_change, HeldKeys};
use super::pipeline::{
    Closed, Collect, Named, OnOutputFailure, Output, OutputError, Pipeline, WriterPanicked,
};
use super::read::Observation;
use super::{Baseline, DeviceRecord, RecordWriter, Reporter, Summary};
use sshfleet_core::files::Staged;

/// Where a run's records are kept besides its outputs (the history): told each record and
/// what the previous run saw of that device.
pub trait RunStore: Send {
    fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>);
}

/// A store shared between the writer thread and the command that finishes the run.
pub type SharedStore = Arc<std::sync::Mutex<dyn RunStore>>;

/// A report whose output failed: which output and why, with the summary of every record
/// (the records kept flowing to the other outputs).
#[derive(Debug)]
pub struct ReportError {
    failure: OutputError,
    summary: Box<Summary>,
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure.fmt(f)
    }
}

/// The failed output's own cause, so that `{:#}` reads "cannot write the report to X: why".
impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.failure)
    }
}

impl ReportError {
    /// The reader of the output went away (`sshfleet scan | head`): end quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.failure.is_broken_pipe()
    }

    /// The failed output's name.
    pub fn output(&self) -> String {
        self.failure.output()
    }

    /// The summary of the whole run.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

impl Output<DeviceRecord> for Box<dyn RecordWriter> {
    fn write(&mut self, row: &DeviceRecord) -> std::io::Result<()> {
        self.as_mut().write(row)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.as_mut().flush()
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.as_mut().finish()
    }

    fn label(&self) -> Option<&str> {
        self.as_ref().label()
    }
}

/// A report output.
pub type RecordOutput = Box<dyn RecordWriter>;

impl RecordWriter for Named<RecordOutput> {
    fn write(&mut self, rec: &DeviceRecord) -> std::io::Result<()> {
        Output::write(self, rec)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Output::<DeviceRecord>::flush(self)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Output::<DeviceRecord>::finish(self)
    }

    fn scope(&mut self, devices: u64) {
        self.inner_mut().scope(devices);
    }

    fn previous(&mut self, baseline: &Baseline) {
        self.inner_mut().previous(baseline);
    }

    fn label(&self) -> Option<&str> {
        Output::<DeviceRecord>::label(self)
    }
}

/// Names a report output for its error messages (its path, `stdout`).
pub fn named(label: impl Into<String>, output: RecordOutput) -> RecordOutput {
    Box::new(Named::new(label, output))
}

/// A report file that is moved aside to `<path>.partial` when a write to it fails (a full
/// disk): a report cut short must never sit under its own name looking complete, and what
/// was written is kept. Only a regular file is ever moved (never `/dev/full`, a pipe or
/// the target of a symbolic link).
pub fn moved_aside_on_failure(path: &Path, output: RecordOutput) -> RecordOutput {
    let regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !regular {
        return output;
    }
    Box::new(Guarded {
        inner: output,
        policy: MoveAside {
            path: path.to_owned(),
            moved: false,
        },
    })
}

/// A report output whose failures (and end) are handled by `policy`; the records go to
/// `inner` unchanged.
struct Guarded<P> {
    inner: RecordOutput,
    policy: P,
}

/// What a [`Guarded`] report does when a write to it fails, and when it is finished.
trait OnFailure: Send {
    /// Handles the failure and returns the error to report (saying where the part went).
    fn failed(&mut self, error: io::Error) -> io::Error;

    /// After the inner writer finished well.
    fn finished(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<P: OnFailure> RecordWriter for Guarded<P> {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        self.inner.write(rec).map_err(|e| self.policy.failed(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.policy.failed(e))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish().map_err(|e| self.policy.failed(e))?;
        self.policy.finished()
    }

    fn scope(&mut self, devices: u64) {
        self.inner.scope(devices);
    }

    fn previous(&mut self, baseline: &Baseline) {
        self.inner.previous(baseline);
    }

    fn label(&self) -> Option<&str> {
        self.inner.label()
    }
}

/// On the first failure, renames the file to `<path>.partial` and says so in the error.
struct MoveAside {
    path: PathBuf,
    moved: bool,
}

impl OnFailure for MoveAside {
    fn failed(&mut self, error: io::Error) -> io::Error {
        if std::mem::replace(&mut self.moved, true) {
            return error;
        }
        let partial = partial_path(&self.path);
        match std::fs::rename(&self.path, &partial) {
            Ok(()) => io::Error::new(
                error.kind(),
                format!(
                    "{error}; the incomplete report was moved to {}",
                    partial.display()
                ),
            ),
            Err(_) => error,
        }
    }
}

/// A report written under a temporary name beside its destination and renamed over it
/// when finished (`report merge`): a run killed half-way leaves the old report or none,
/// never a part under its name. A report cut short (a write failed, or [`CutShort::mark`]
/// before the end) goes to `<path>.partial` instead, with what was written.
pub fn staged(staged: Staged, output: RecordOutput) -> (RecordOutput, CutShort) {
    let cut_short = CutShort {
        partial: Some(partial_path(staged.path())),
        marked: Arc::default(),
    };
    let writer = Guarded {
        inner: output,
        policy: Stage {
            staged: Some(staged),
            cut_short: cut_short.clone(),
        },
    };
    (Box::new(writer), cut_short)
}

/// Tells a [`staged`] report that it ends short of what it should hold.
#[derive(Clone, Default)]
pub struct CutShort {
    /// Where the report goes then (`None`: the report is not staged).
    partial: Option<PathBuf>,
    marked: Arc<AtomicBool>,
}

impl CutShort {
    /// The report is incomplete: when finished it goes to `<path>.partial`, which is
    /// returned (`None` when the report is not staged, and so stays where it is).
    pub fn mark(&self) -> Option<&Path> {
        self.marked.store(true, Ordering::Relaxed);
        self.partial.as_deref()
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.to_owned().into_os_string();
    name.push(".partial");
    PathBuf::from(name)
}

/// Keeps the report under its temporary name until it is finished, then renames it into
/// place, or to `<path>.partial` when it failed or was marked cut short.
struct Stage {
    /// Until it is renamed into place (or aside).
    staged: Option<Staged>,
    cut_short: CutShort,
}

impl OnFailure for Stage {
    fn failed(&mut self, error: io::Error) -> io::Error {
        let Some(staged) = self.staged.take() else {
            return error;
        };
        let partial = partial_path(staged.path());
        match staged.commit_to(&partial) {
            Ok(()) => io::Error::new(
                error.kind(),
                format!("{error}; the incomplete report is in {}", partial.display()),
            ),
            Err(_) => error,
        }
    }

    fn finished(&mut self) -> io::Result<()> {
        let Some(staged) = self.staged.take() else {
            return Ok(());
        };
        if self.cut_short.marked.load(Ordering::Relaxed) {
            let partial = partial_path(staged.path());
            staged.commit_to(&partial)
        } else {
            staged.commit()
        }
    }
}

/// The outputs of a device report, with what each record is compared with and kept in.
pub struct RecordSinks {
    pub outputs: Vec<RecordOutput>,
    pub reporter: Arc<dyn Reporter>,
    /// The previous run: every record gets its drift against it.
    pub baseline: Option<Baseline>,
    /// The history this run is recorded in.
    pub store: Option<SharedStore>,
}

impl RecordSinks {
    pub fn new(outputs: Vec<RecordOutput>, reporter: Arc<dyn Reporter>) -> RecordSinks {
        RecordSinks {
            outputs,
            reporter,
            baseline: None,
            store: None,
        }
    }
}

/// The writer thread's work on device records.
pub struct Records {
    summary: Summary,
    baseline: Option<Baseline>,
    store: Option<SharedStore>,
    reporter: Arc<dyn Reporter>,
    claims: SerialClaims,
    /// Records with a host key, until the run ends (`ssh_key_shared`).
    held: HeldKeys,
    /// The held records are being written: the progress display was told of them already.
    releasing: bool,
}

impl Records {
    /// Notes the serial `rec` claims; when another device of this run claimed it first, the
    /// record says which (in `error`, after any error of its own).
    fn claim_serial(&mut self, rec: &mut DeviceRecord) {
        let Some(serial) = &rec.serial else { return };
        let Some(first) = self.claims.claim(serial, &rec.address) else {
            return;
        };
        let note = format!("serial {serial} is also claimed by {first}");
        rec.error = Some(match rec.error.take() {
            Some(error) => format!("{error}; {note}"),
            None => note,
        });
    }
}

impl Collect for Records {
    type Item = DeviceRecord;
    type Row = DeviceRecord;
    type Summary = Summary;

    fn row(&mut self, mut rec: DeviceRecord) -> DeviceRecord {
        self.claim_serial(&mut rec);
        let before = match &mut self.baseline {
            Some(baseline) => {
                let before = baseline.annotate(&mut rec);
                note_change(&mut rec, before);
                before
            }
            None => None,
        };
        if let Some(store) = &self.store {
            store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(&rec, before);
        }
        rec
    }

    fn hold(&mut self, rec: DeviceRecord) -> Option<DeviceRecord> {
        if rec.ssh.host_key.is_some() {
            // Counted by the progress display as it arrives, written when the run ends.
            self.reporter.record(&rec);
        }
        self.held.hold(rec)
    }

    fn release(&mut self) -> Option<DeviceRecord> {
        self.releasing = true;
        self.held.release()
    }

    fn failure(&mut self) -> Option<(&'static str, std::io::Error)> {
        let what = "the temporary file of the records held until the run ends (ssh_key_shared)";
        self.held.failure().map(|e| (what, e))
    }

    fn count(&mut self, rec: &DeviceRecord) {
        self.summary.add(rec);
        if !self.releasing {
            self.reporter.record(rec);
        }
    }

    fn finish(mut self) -> Summary {
        if let (Some(baseline), Some(drift)) = (&self.baseline, &mut self.summary.drift) {
            baseline.finish_into(drift);
        }
        self.reporter.finished();
        self.summary.add_duplicate_serials(self.claims.finish());
        self.summary
    }
}

/// The pipeline of one device report.
pub type RecordPipeline = Pipeline<Records>;

/// Opens the pipeline of a report of `total` devices (told to the progress display).
pub fn record_pipeline(
    sinks: RecordSinks,
    total: usize,
    on_failure: OnOutputFailure,
) -> RecordPipeline {
    let RecordSinks {
        mut outputs,
        reporter,
        baseline,
        store,
    } = sinks;
    reporter.started(total as u64);
    for output in &mut outputs {
        output.scope(total as u64);
        if let Some(baseline) = &baseline {
            output.previous(baseline);
        }
    }
    let summary = Summary {
        drift: baseline.as_ref().map(|_| Default::default()),
        in_scope: Some(total as u64),
        ..Summary::default()
    };
    let records = Records {
        summary,
        baseline,
        store,
        reporter,
        claims: SerialClaims::default(),
        held: HeldKeys::default(),
        releasing: false,
    };
    Pipeline::start(records, outputs, on_failure)
}

/// The summary of a closed record pipeline, or the first output failure with it inside.
pub fn into_summary(closed: Closed<Summary>) -> Result<Summary, ReportError> {
    match closed.failure {
        None => Ok(closed.summary),
        Some(failure) => Err(ReportError {
            failure,
            summary: Box::new(closed.summary),
        }),
    }
}

/// Closes a record pipeline: its summary, or the failed output (with the summary inside).
pub async fn finish(pipeline: RecordPipeline) -> anyhow::Result<Summary> {
    let closed = pipeline
        .close()
        .await
        .map_err(|e: WriterPanicked| anyhow::anyhow!(e))?;
    Ok(into_summary(closed)?)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::io;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::super::test_support::{full_record, BrokenPipe, SharedBuf};
    use super::super::{writer, Format, NoProgress, Schema, Status};
    use super::*;

    #[derive(Default)]
    struct Counting {
        started: AtomicU64,
        records: AtomicU64,
        finished: AtomicU64,
    }

    impl Reporter for Counting {
        fn started(&self, total: u64) {
            self.started.store(total, Ordering::Relaxed);
        }

        fn record(&self, _rec: &DeviceRecord) {
            self.records.fetch_add(1, Ordering::Relaxed);
        }

        fn finished(&self) {
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn timeout_record() -> DeviceRecord {
        DeviceRecord::new("cam".into(), String::new(), "hq".into(), Status::Timeout)
    }

    fn output(format: Format, out: impl io::Write + Send + 'static) -> RecordOutput {
        writer(format, &Schema::default(), Box::new(out))
    }

    #[test]
    fn writes_every_record_to_every_output_and_summarises() {
        let (csv, jsonl) = (SharedBuf::default(), SharedBuf::default());
        let outputs = vec![
            output(Format::Csv, csv.clone()),
            output(Format::Jsonl, jsonl.clone()),
        ];
        let reporter = Arc::new(Counting::default());
        let sinks = RecordSinks::new(outputs, reporter.clone());
        let pipe = record_pipeline(sinks, 11, OnOutputFailure::Continue);
        for _ in 0..10 {
            pipe.sender().blocking_send(full_record()).unwrap();
        }
        pipe.sender().blocking_send(timeout_record()).unwrap();
        let summary = into_summary(pipe.close_blocking().unwrap()).unwrap();
        assert_eq!(summary.total, 11);
        // Every device, the one host key all ten present, and the ten whose key changed.
        assert_eq!(summary.findings(), 22);
        assert_eq!(summary.host_keys.shared.count, 1);
        assert_eq!(summary.host_keys.changed.count, 10);
        assert_eq!(summary.by_status.get(Status::Timeout), 1);
        assert_eq!(reporter.started.load(Ordering::Relaxed), 11);
        assert_eq!(reporter.records.load(Ordering::Relaxed), 11);
        assert_eq!(reporter.finished.load(Ordering::Relaxed), 1);
        assert_eq!(csv.text().lines().count(), 12);
        let lines: Vec<String> = jsonl.text().lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 11);
        // The records with a host key wait for the end of the run, to carry its count.
        assert!(lines[0].contains("\"status\":\"timeout\""), "{}", lines[0]);
        assert!(lines[1..]
            .iter()
            .all(|l| l.contains("\"ssh_key_shared\":10,")
                && l.contains("\"ssh_kexinit\":{\"kex\":[\"curve25519-sha256\"]")));
    }

    #[test]
    fn no_records_still_finish_every_output() {
        let json = SharedBuf::default();
        let sinks = RecordSinks::new(
            vec![output(Format::Json, json.clone())],
            Arc::new(NoProgress),
        );
        let pipe = record_pipeline(sinks, 0, OnOutputFailure::Continue);
        let summary = into_summary(pipe.close_blocking().unwrap()).unwrap();
        assert_eq!(summary.total, 0);
        assert_eq!(json.text(), "[]\n");
    }

    #[test]
    fn a_failed_output_is_named_and_carries_the_summary_of_every_record() {
        let good = SharedBuf::default();
        let stdout = writer(Format::Jsonl, &Schema::default(), Box::new(BrokenPipe));
        let outputs: Vec<RecordOutput> =
            vec![named("stdout", stdout), output(Format::Jsonl, good.clone())];
        let (trigger, shutdown) = sshfleet_core::shutdown::channel();
        let sinks = RecordSinks::new(outputs, Arc::new(NoProgress));
        let pipe = record_pipeline(sinks, 50, OnOutputFailure::Stop(trigger));
        for _ in 0..50 {
            pipe.sender().blocking_send(timeout_record()).unwrap();
        }
        let err = into_summary(pipe.close_blocking().unwrap()).unwrap_err();
        assert!(shutdown.is_triggered());
        assert!(err.is_broken_pipe());
        assert_eq!(err.to_string(), "cannot write the report to stdout");
        assert_eq!(err.summary().total, 50);
        assert_eq!(good.text().lines().count(), 50);
    }
}
