//! The report pipeline: a bounded channel from the engine into one writer thread. The thread
//! turns each item into a row (annotating and counting it), fans the row out to every output,
//! retires an output that fails while the others go on, and says so to the run through an
//! explicit stop policy. Scans, remediation, merges, the demo and the Equinix listing all
//! stream through it.

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, error::TryRecvError, Receiver, Sender};

use sshfleet_core::shutdown::ShutdownTrigger;

/// Items in flight between the engine and the writer thread.
pub(crate) const CAPACITY: usize = 1024;

/// How long the writer waits for more items once the channel is empty.
const GATHER: Duration = Duration::from_millis(2);
/// The longest rows wait in an output's buffer while results keep arriving.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// What the writer thread does with each item besides writing it: the row it becomes, the
/// summary it counts into. Runs on the writer thread only, so it needs no locking.
pub trait Collect: Send + 'static {
    /// What the engine sends.
    type Item: Send + 'static;
    /// What the outputs write.
    type Row;
    /// What the run is told at the end.
    type Summary: Send + 'static;

    fn row(&mut self, item: Self::Item) -> Self::Row;
    /// The row to write now, or `None` to hold it back until every item is in (a row that
    /// needs the whole run, like a host key's count of devices presenting it).
    fn hold(&mut self, row: Self::Row) -> Option<Self::Row> {
        Some(row)
    }
    /// The next row held back, once every item is in; written and counted like the others.
    fn release(&mut self) -> Option<Self::Row> {
        None
    }
    /// A failure of the collector's own since last asked (the file it holds rows in), with
    /// what failed: the run is told of it as of a failed output, and the outputs go on.
    fn failure(&mut self) -> Option<(&'static str, io::Error)> {
        None
    }
    /// Called once the row went to every healthy output.
    fn count(&mut self, row: &Self::Row);
    fn finish(self) -> Self::Summary;
}

/// One report output. Rows stream in; `finish` completes the file (a JSON array's `]`, the
/// CSV header of an empty report) and flushes it.
pub trait Output<R>: Send {
    fn write(&mut self, row: &R) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    fn finish(&mut self) -> io::Result<()>;

    /// What to call this output in an error message (a path, `stdout`); see [`Named`].
    fn label(&self) -> Option<&str> {
        None
    }
}

/// An output with a name for its error messages.
pub struct Named<O> {
    label: String,
    inner: O,
}

impl<O> Named<O> {
    pub fn new(label: impl Into<String>, inner: O) -> Named<O> {
        Named {
            label: label.into(),
            inner,
        }
    }

    /// The output named.
    pub(crate) fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }
}

impl<R, O: Output<R>> Output<R> for Named<O> {
    fn write(&mut self, row: &R) -> io::Result<()> {
        self.inner.write(row)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }

    fn label(&self) -> Option<&str> {
        Some(&self.label)
    }
}

impl<R> Output<R> for Box<dyn Output<R>> {
    fn write(&mut self, row: &R) -> io::Result<()> {
        self.as_mut().write(row)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.as_mut().flush()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.as_mut().finish()
    }

    fn label(&self) -> Option<&str> {
        self.as_ref().label()
    }
}

/// What a failed output does to the run. The outputs still healthy always get every row.
#[derive(Clone, Debug)]
pub enum OnOutputFailure {
    /// Fire this trigger: the engine stops dispatching and finishes what is in flight (a
    /// scan whose report cannot be written is not worth going on with).
    Stop(ShutdownTrigger),
    /// Close the channel: the engine's next send fails, which ends a producer that stops on
    /// a closed channel (the Equinix listing); what was already sent is still written.
    CloseChannel,
    /// Go on: the run decides at the end.
    Continue,
}

/// An output that failed: which one, and the I/O error.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the report to {}", self.output())]
pub struct OutputError {
    position: usize,
    label: Option<String>,
    #[source]
    source: io::Error,
}

impl OutputError {
    /// The reader of the output went away (`sshfleet scan | head`): end quietly.
    pub fn is_broken_pipe(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }

    /// Position of the failed output in the outputs given to [`Pipeline::start`].
    pub fn position(&self) -> usize {
        self.position
    }

    /// The output's label (see [`Named`]), else `output N` (1-based).
    pub fn output(&self) -> String {
        match &self.label {
            Some(label) => label.clone(),
            None => format!("output {}", self.position.saturating_add(1)),
        }
    }
}

/// A finished pipeline: the summary of every item, and the first output that failed.
#[derive(Debug)]
pub struct Closed<S> {
    pub summary: S,
    pub failure: Option<OutputError>,
}

/// The writer thread ended without a summary: a bug, never an output failure.
#[derive(Debug, thiserror::Error)]
#[error("the report writer thread panicked")]
pub struct WriterPanicked;

/// The engine's side of one report.
pub struct Pipeline<C: Collect> {
    tx: Sender<C::Item>,
    writer: JoinHandle<Closed<C::Summary>>,
}

impl<C: Collect> Pipeline<C> {
    /// Starts the writer on its own OS thread (blocking I/O stays off the async runtime).
    pub fn start<O>(collector: C, outputs: Vec<O>, on_failure: OnOutputFailure) -> Pipeline<C>
    where
        O: Output<C::Row> + 'static,
    {
        Pipeline::with_capacity(collector, outputs, on_failure, CAPACITY)
    }

    /// [`Pipeline::start`] with a channel of `capacity` items (tests).
    pub fn with_capacity<O>(
        collector: C,
        outputs: Vec<O>,
        on_failure: OnOutputFailure,
        capacity: usize,
    ) -> Pipeline<C>
    where
        O: Output<C::Row> + 'static,
    {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let fanout = Fanout {
            outputs: outputs.into_iter().map(|o| (o, Health::Healthy)).collect(),
            collector,
            on_failure,
            first_error: None,
        };
        let writer = std::thread::spawn(move || fanout.run(rx));
        Pipeline { tx, writer }
    }

    /// A sender for the engine; the pipeline closes when every sender is gone.
    pub fn sender(&self) -> Sender<C::Item> {
        self.tx.clone()
    }

    /// Sends items already at hand (rows judged before the run), in order.
    pub async fn send_all(&self, items: impl IntoIterator<Item = C::Item>) {
        for item in items {
            if self.tx.send(item).await.is_err() {
                break;
            }
        }
    }

    /// Waits, off the runtime's workers, for the writer to finish every output.
    pub async fn close(self) -> Result<Closed<C::Summary>, WriterPanicked> {
        let Pipeline { tx, writer } = self;
        drop(tx);
        match tokio::task::spawn_blocking(move || writer.join()).await {
            Ok(Ok(closed)) => Ok(closed),
            _ => Err(WriterPanicked),
        }
    }

    /// [`Pipeline::close`] from a thread that is not a runtime's (tests, benches).
    #[cfg(test)]
    pub(crate) fn close_blocking(self) -> Result<Closed<C::Summary>, WriterPanicked> {
        let Pipeline { tx, writer } = self;
        drop(tx);
        writer.join().map_err(|_| WriterPanicked)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy,
    /// A failed output gets nothing more: its file is already incomplete.
    Failed,
}

struct Fanout<C: Collect, O> {
    outputs: Vec<(O, Health)>,
    collector: C,
    on_failure: OnOutputFailure,
    first_error: Option<OutputError>,
}

impl<C: Collect, O: Output<C::Row>> Fanout<C, O> {
    /// Takes items in batches: when the channel runs dry it waits [`GATHER`] for more before
    /// sleeping on the channel, so that a fast run wakes this thread (and writes) once per
    /// batch rather than once per item. Outputs are flushed whenever the channel stays empty,
    /// and at most [`FLUSH_EVERY`] apart while batches keep coming.
    fn run(mut self, mut rx: Receiver<C::Item>) -> Closed<C::Summary> {
        let mut flushed = Instant::now();
        loop {
            let item = match rx.try_recv() {
                Ok(item) => item,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    std::thread::sleep(GATHER);
                    let more = !rx.is_empty();
                    if !more || flushed.elapsed() >= FLUSH_EVERY {
                        self.each_output(&mut rx, |o| o.flush());
                        flushed = Instant::now();
                    }
                    if more {
                        continue;
                    }
                    match rx.blocking_recv() {
                        Some(item) => item,
                        None => break,
                    }
                }
            };
            let row = self.collector.row(item);
            if let Some(row) = self.collector.hold(row) {
                self.each_output(&mut rx, |o| o.write(&row));
                self.collector.count(&row);
            }
            self.collector_failed();
        }
        while let Some(row) = self.collector.release() {
            self.each_output(&mut rx, |o| o.write(&row));
            self.collector.count(&row);
        }
        self.collector_failed();
        self.each_output(&mut rx, |o| o.finish());
        Closed {
            summary: self.collector.finish(),
            failure: self.first_error,
        }
    }

    /// Keeps a failure of the collector's own as the run's failure when it is the first (the
    /// outputs are healthy and go on: nothing is retired, no stop is asked).
    fn collector_failed(&mut self) {
        let Some((what, source)) = self.collector.failure() else {
            return;
        };
        tracing::error!(error = %source, "{what} failed");
        if self.first_error.is_none() {
            self.first_error = Some(OutputError {
                position: self.outputs.len(),
                label: Some(what.to_owned()),
                source,
            });
        }
    }

    /// Runs `op` on every healthy output; a failure retires that output, is kept if first,
    /// and is told to the run as its policy says.
    fn each_output(
        &mut self,
        rx: &mut Receiver<C::Item>,
        mut op: impl FnMut(&mut O) -> io::Result<()>,
    ) {
        for (position, (output, health)) in self.outputs.iter_mut().enumerate() {
            if *health == Health::Failed {
                continue;
            }
            if let Err(source) = op(output) {
                *health = Health::Failed;
                tracing::debug!(output = output.label().unwrap_or("output"), error = %source, "an output failed");
                let error = OutputError {
                    position,
                    label: output.label().map(str::to_owned),
                    source,
                };
                if self.first_error.is_none() {
                    match &self.on_failure {
                        OnOutputFailure::Stop(trigger) => trigger.trigger(),
                        OnOutputFailure::CloseChannel => rx.close(),
                        OnOutputFailure::Continue => {}
                    }
                    self.first_error = Some(error);
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    /// Rows are the items; the summary is their sum.
    struct Sum(u64);

    impl Collect for Sum {
        type Item = u64;
        type Row = u64;
        type Summary = u64;
        fn row(&mut self, item: u64) -> u64 {
            item
        }
        fn count(&mut self, row: &u64) {
            self.0 += row;
        }
        fn finish(self) -> u64 {
            self.0
        }
    }

    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl Output<u64> for Lines {
        fn write(&mut self, row: &u64) -> io::Result<()> {
            self.0.lock().unwrap().push(row.to_string());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            self.0.lock().unwrap().push("end".into());
            Ok(())
        }
    }

    /// Fails its `n`th write with `kind`.
    struct FailsAt(usize, io::ErrorKind);

    impl Output<u64> for FailsAt {
        fn write(&mut self, _row: &u64) -> io::Result<()> {
            self.0 = self.0.saturating_sub(1);
            if self.0 == 0 {
                return Err(io::Error::from(self.1));
            }
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn outputs(failing: FailsAt, good: &Lines) -> Vec<Box<dyn Output<u64>>> {
        vec![
            Box::new(Named::new("stdout", failing)),
            Box::new(good.clone()),
        ]
    }

    #[test]
    fn every_item_reaches_every_output_in_order_and_is_counted() {
        let (a, b) = (Lines::default(), Lines::default());
        let pipe = Pipeline::with_capacity(
            Sum(0),
            vec![a.clone(), b.clone()],
            OnOutputFailure::Continue,
            2,
        );
        for n in 1..=10 {
            pipe.sender().blocking_send(n).unwrap();
        }
        let closed = pipe.close_blocking().unwrap();
        assert_eq!(closed.summary, 55);
        assert!(closed.failure.is_none());
        let expected: Vec<String> = (1..=10)
            .map(|n| n.to_string())
            .chain(["end".into()])
            .collect();
        assert_eq!(*a.0.lock().unwrap(), expected);
        assert_eq!(*b.0.lock().unwrap(), expected);
    }

    /// Sums, and its own store fails at the third item.
    struct FailsToHold(Sum, u64);

    impl Collect for FailsToHold {
        type Item = u64;
        type Row = u64;
        type Summary = u64;
        fn row(&mut self, item: u64) -> u64 {
            self.1 += 1;
            item
        }
        fn failure(&mut self) -> Option<(&'static str, io::Error)> {
            (self.1 == 3).then(|| ("the held rows", io::Error::other("disk full")))
        }
        fn count(&mut self, row: &u64) {
            self.0.count(row);
        }
        fn finish(self) -> u64 {
            self.0.finish()
        }
    }

    #[test]
    fn a_failure_of_the_collectors_own_is_the_runs_and_every_row_is_still_written() {
        let good = Lines::default();
        let pipe = Pipeline::with_capacity(
            FailsToHold(Sum(0), 0),
            vec![good.clone()],
            OnOutputFailure::Continue,
            2,
        );
        for _ in 0..5 {
            pipe.sender().blocking_send(1).unwrap();
        }
        let closed = pipe.close_blocking().unwrap();
        assert_eq!(closed.summary, 5);
        assert_eq!(good.0.lock().unwrap().len(), 6, "every row and the end");
        let failure = closed.failure.unwrap();
        assert_eq!(
            format!("{:#}", anyhow::Error::new(failure)),
            "cannot write the report to the held rows: disk full"
        );
    }

    #[test]
    fn a_failed_output_stops_the_run_once_and_the_others_get_every_row() {
        let good = Lines::default();
        let (trigger, shutdown) = sshfleet_core::shutdown::channel();
        let failing = FailsAt(3, io::ErrorKind::BrokenPipe);
        // More items than the channel holds: the sender would block if the writer stopped.
        let pipe = Pipeline::with_capacity(
            Sum(0),
            outputs(failing, &good),
            OnOutputFailure::Stop(trigger),
            2,
        );
        for _ in 0..50 {
            pipe.sender().blocking_send(1).unwrap();
        }
        let closed = pipe.close_blocking().unwrap();
        assert!(shutdown.is_triggered());
        assert_eq!(
            closed.summary, 50,
            "the summary counts what the healthy outputs hold"
        );
        assert_eq!(good.0.lock().unwrap().len(), 51);
        let failure = closed.failure.unwrap();
        assert!(failure.is_broken_pipe());
        assert_eq!(failure.position(), 0);
        assert_eq!(failure.to_string(), "cannot write the report to stdout");
    }

    #[test]
    fn closing_the_channel_ends_a_producer_that_stops_on_a_closed_channel() {
        let good = Lines::default();
        let failing = FailsAt(2, io::ErrorKind::Other);
        let pipe = Pipeline::with_capacity(
            Sum(0),
            outputs(failing, &good),
            OnOutputFailure::CloseChannel,
            1,
        );
        let tx = pipe.sender();
        let mut sent = 0;
        for _ in 0..1000 {
            if tx.blocking_send(1).is_err() {
                break;
            }
            sent += 1;
        }
        drop(tx);
        assert!(sent < 1000, "the producer was never told");
        let closed = pipe.close_blocking().unwrap();
        assert_eq!(
            closed.summary, sent,
            "what was sent before the close is still written"
        );
        let failure = closed.failure.unwrap();
        assert!(!failure.is_broken_pipe());
        assert_eq!(failure.to_string(), "cannot write the report to stdout");
    }

    #[test]
    fn an_unnamed_output_is_called_by_its_position() {
        let pipe = Pipeline::with_capacity(
            Sum(0),
            vec![FailsAt(1, io::ErrorKind::Other)],
            OnOutputFailure::Continue,
            1,
        );
        pipe.sender().blocking_send(1).unwrap();
        let failure = pipe.close_blocking().unwrap().failure.unwrap();
        assert_eq!(failure.to_string(), "cannot write the report to output 1");
    }
}
