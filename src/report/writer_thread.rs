//! The writer thread: the one consumer of the record channel. It fans each record out to
//! every output, keeps the summary, and never stops draining, so the engine never blocks on
//! a failed output.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::Receiver;

use super::read::Observation;
use super::{Baseline, DeviceRecord, RecordWriter, Reporter, Summary};

/// Where a run's records are kept besides its outputs (the history): told each record and
/// what the previous run saw of that device.
pub trait RunStore: Send {
    fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>);
}

/// A store shared between the writer thread and the command that finishes the run.
pub type SharedStore = Arc<std::sync::Mutex<dyn RunStore>>;

/// How long the writer waits for more records once the channel is empty.
const GATHER: Duration = Duration::from_millis(2);
/// The longest records wait in an output's buffer while results keep arriving.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// An output that failed. Carries which one, the I/O error and, once the run is over, the
/// summary of every record (the records kept flowing to the other outputs).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report to {}", self.output())]
pub struct ReportError {
    sink: usize,
    label: Option<String>,
    #[source]
    source: io::Error,
    summary: Option<Box<Summary>>,
}

impl ReportError {
    fn new(sink: usize, label: Option<&str>, source: io::Error) -> ReportError {
        ReportError {
            sink,
            label: label.map(str::to_owned),
            source,
            summary: None,
        }
    }

    /// The reader of the output went away (`sshfleet scan | head`): end quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }

    /// Position of the failed output in the `sinks` given to [`spawn_writer`].
    pub fn sink(&self) -> usize {
        self.sink
    }

    /// The output's label (see [`super::labelled`]), else `output N` (1-based).
    pub fn output(&self) -> String {
        match &self.label {
            Some(label) => label.clone(),
            None => format!("output {}", self.sink + 1),
        }
    }

    /// The summary of the whole run; present on the error returned by the writer thread.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_deref()
    }
}

/// Starts the writer on its own OS thread (blocking I/O stays off the async runtime). It
/// returns when every sender is dropped, after finishing every output. On output failure it
/// returns the first error, with the summary inside.
pub fn spawn_writer(
    rx: Receiver<DeviceRecord>,
    sinks: Vec<Box<dyn RecordWriter>>,
    reporter: Arc<dyn Reporter>,
) -> JoinHandle<Result<Summary, ReportError>> {
    spawn_drift_writer(rx, sinks, reporter, None, None)
}

/// [`spawn_writer`] that first gives every record its drift against `baseline` (the
/// previous run), and counts the devices gone since into the summary when the run ends.
pub fn spawn_drift_writer(
    rx: Receiver<DeviceRecord>,
    sinks: Vec<Box<dyn RecordWriter>>,
    reporter: Arc<dyn Reporter>,
    baseline: Option<Baseline>,
    store: Option<SharedStore>,
) -> JoinHandle<Result<Summary, ReportError>> {
    let summary = Summary {
        drift: baseline.as_ref().map(|_| Default::default()),
        ..Summary::default()
    };
    let fanout = Fanout {
        sinks: sinks
            .into_iter()
            .map(|writer| Sink {
                writer,
                failed: false,
            })
            .collect(),
        reporter,
        summary,
        baseline,
        store,
        first_error: None,
    };
    std::thread::spawn(move || fanout.run(rx))
}

struct Sink {
    writer: Box<dyn RecordWriter>,
    /// A failed output gets nothing more: its file is already incomplete.
    failed: bool,
}

struct Fanout {
    sinks: Vec<Sink>,
    reporter: Arc<dyn Reporter>,
    summary: Summary,
    baseline: Option<Baseline>,
    store: Option<SharedStore>,
    first_error: Option<ReportError>,
}

impl Fanout {
    /// Takes records in batches: when the channel runs dry it waits [`GATHER`] for more
    /// before sleeping on the channel, so that a fast scan wakes this thread (and writes)
    /// once per batch rather than once per record. Outputs are flushed whenever the channel
    /// stays empty, and at most [`FLUSH_EVERY`] apart while batches keep coming.
    fn run(mut self, mut rx: Receiver<DeviceRecord>) -> Result<Summary, ReportError> {
        let mut flushed = Instant::now();
        loop {
            let rec = match rx.try_recv() {
                Ok(rec) => rec,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    std::thread::sleep(GATHER);
                    let more = !rx.is_empty();
                    if !more || flushed.elapsed() >= FLUSH_EVERY {
                        self.each_sink(|w| w.flush());
                        flushed = Instant::now();
                    }
                    if more {
                        continue;
                    }
                    match rx.blocking_recv() {
                        Some(rec) => rec,
                        None => break,
                    }
                }
            };
            self.record(rec);
        }
        self.finish()
    }

    fn record(&mut self, mut rec: DeviceRecord) {
        let before = match &mut self.baseline {
            Some(baseline) => baseline.annotate(&mut rec),
            None => None,
        };
        if let Some(store) = &self.store {
            store
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(&rec, before);
        }
        self.each_sink(|w| w.write(&rec));
        self.summary.add(&rec);
        self.reporter.record(&rec);
    }

    fn finish(mut self) -> Result<Summary, ReportError> {
        if let (Some(baseline), Some(drift)) = (&self.baseline, &mut self.summary.drift) {
            baseline.finish_into(drift);
        }
        self.each_sink(|w| w.finish());
        match self.first_error {
            None => Ok(self.summary),
            Some(mut err) => {
                err.summary = Some(Box::new(self.summary));
                Err(err)
            }
        }
    }

    /// Runs `op` on every healthy output; a failure retires that output and is kept if first.
    fn each_sink(&mut self, mut op: impl FnMut(&mut dyn RecordWriter) -> io::Result<()>) {
        for (index, sink) in self.sinks.iter_mut().enumerate() {
            if sink.failed {
                continue;
            }
            if let Err(source) = op(sink.writer.as_mut()) {
                sink.failed = true;
                let err = ReportError::new(index, sink.writer.label(), source);
                self.reporter.output_failed(&err);
                self.first_error.get_or_insert(err);
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::sync::mpsc;

    use super::super::test_support::{full_record, BrokenPipe, SharedBuf};
    use super::super::{labelled, writer, Format, NoProgress, Schema, Status};
    use super::*;

    #[derive(Default)]
    struct Counting {
        records: AtomicU64,
        failures: AtomicU64,
    }

    impl Reporter for Counting {
        fn record(&self, _rec: &DeviceRecord) {
            self.records.fetch_add(1, Ordering::Relaxed);
        }

        fn output_failed(&self, _error: &ReportError) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn timeout_record() -> DeviceRecord {
        DeviceRecord::new("cam".into(), String::new(), "hq".into(), Status::Timeout)
    }

    #[test]
    fn writes_every_record_to_every_output_and_summarises() {
        let (csv, jsonl) = (SharedBuf::default(), SharedBuf::default());
        let schema = Schema::default();
        let sinks = vec![
            writer(Format::Csv, &schema, Box::new(csv.clone())),
            writer(Format::Jsonl, &schema, Box::new(jsonl.clone())),
        ];
        let reporter = Arc::new(Counting::default());
        let (tx, rx) = mpsc::channel(4);
        let handle = spawn_writer(rx, sinks, reporter.clone());
        for _ in 0..10 {
            tx.blocking_send(full_record()).unwrap();
        }
        tx.blocking_send(timeout_record()).unwrap();
        drop(tx);
        let summary = handle.join().unwrap().unwrap();
        assert_eq!(summary.total, 11);
        assert_eq!(summary.findings(), 11);
        assert_eq!(summary.by_status.get(Status::Timeout), 1);
        assert_eq!(reporter.records.load(Ordering::Relaxed), 11);
        assert_eq!(csv.text().lines().count(), 12);
        assert_eq!(jsonl.text().lines().count(), 11);
    }

    #[test]
    fn no_records_still_finish_every_output() {
        let json = SharedBuf::default();
        let sinks = vec![writer(
            Format::Json,
            &Schema::default(),
            Box::new(json.clone()),
        )];
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        let summary = spawn_writer(rx, sinks, Arc::new(NoProgress))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(summary.total, 0);
        assert_eq!(json.text(), "[]\n");
    }

    #[test]
    fn broken_pipe_is_reported_after_draining_with_the_summary() {
        let good = SharedBuf::default();
        let schema = Schema::default();
        let sinks = vec![
            labelled(
                "stdout",
                writer(Format::Jsonl, &schema, Box::new(BrokenPipe)),
            ),
            writer(Format::Jsonl, &schema, Box::new(good.clone())),
        ];
        let reporter = Arc::new(Counting::default());
        // More records than the channel holds: the sender would block if the writer stopped.
        let (tx, rx) = mpsc::channel(2);
        let handle = spawn_writer(rx, sinks, reporter.clone());
        for _ in 0..50 {
            tx.blocking_send(timeout_record()).unwrap();
        }
        drop(tx);
        let err = handle.join().unwrap().unwrap_err();
        assert!(err.is_broken_pipe());
        assert_eq!(err.sink(), 0);
        assert_eq!(err.to_string(), "cannot write the report to stdout");
        assert_eq!(err.summary().unwrap().total, 50);
        assert_eq!(good.text().lines().count(), 50);
        assert_eq!(reporter.failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn other_failures_are_not_broken_pipes() {
        struct Full;
        impl io::Write for Full {
            fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sinks = vec![writer(Format::Csv, &Schema::default(), Box::new(Full))];
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        let err = spawn_writer(rx, sinks, Arc::new(NoProgress))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(!err.is_broken_pipe());
        assert_eq!(err.to_string(), "cannot write the report to output 1");
    }
}
