//! The worker processes: started from this executable in their own process group, each fed
//! its assignment on stdin, watched until it exits, and stopped by closing its stdin.

use std::io;
use std::ops::Range;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, watch};

use super::super::server::stopped;
use super::wire::{Announcement, Assignment};
use super::WorkerPlan;

/// How long a worker may take to stop after its stdin closes before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest announcement read (about seven bytes per camera).
const MAX_ANNOUNCEMENT: u64 = 4 * 1024 * 1024;

/// The running workers, as seen by their monitor tasks.
pub(super) struct Crew {
    count: usize,
    received: usize,
    stop: watch::Sender<bool>,
    exits: mpsc::Receiver<WorkerExit>,
}

/// A started worker whose announcement is still to be read.
pub(super) struct Pending {
    label: String,
    stdout: BufReader<ChildStdout>,
}

/// How a worker ended.
#[derive(Debug)]
pub(super) struct WorkerExit {
    /// `simulator worker K/N (pid P, cameras A-B)`.
    pub label: String,
    pub status: io::Result<ExitStatus>,
    /// Whether the supervisor asked it to stop.
    pub requested: bool,
}

impl Crew {
    /// Starts one worker per assignment, all at once so that they bind in parallel.
    pub(super) async fn spawn(
        plan: &WorkerPlan,
        assignments: &[Assignment],
    ) -> io::Result<(Crew, Vec<Pending>)> {
        let (stop, stop_rx) = watch::channel(false);
        let (exit_tx, exits) = mpsc::channel(assignments.len().max(1));
        let mut pending = Vec::with_capacity(assignments.len());
        for (k, assignment) in assignments.iter().enumerate() {
            let id = format!("{}/{}", k + 1, assignments.len());
            let worker = start(plan, &id, assignment).await?;
            pending.push(worker.watch(stop_rx.clone(), exit_tx.clone()));
        }
        let crew = Crew {
            count: assignments.len(),
            received: 0,
            stop,
            exits,
        };
        Ok((crew, pending))
    }

    /// The next worker exit; with none asked for yet, that is a worker that died.
    pub(super) async fn next_exit(&mut self) -> Option<WorkerExit> {
        let exit = self.exits.recv().await;
        self.received += usize::from(exit.is_some());
        exit
    }

    /// Stops every worker still running and waits until all have exited.
    pub(super) async fn stop(mut self) -> Vec<WorkerExit> {
        self.stop.send_replace(true);
        let mut exits = Vec::with_capacity(self.count - self.received);
        while self.received < self.count {
            match self.next_exit().await {
                Some(exit) => exits.push(exit),
                None => break,
            }
        }
        exits
    }
}

/// Every worker's announcement, in part order.
pub(super) async fn announcements(pending: Vec<Pending>) -> io::Result<Vec<Announcement>> {
    let mut all = Vec::with_capacity(pending.len());
    for mut worker in pending {
        all.push(worker.announcement().await?);
    }
    Ok(all)
}

impl Pending {
    async fn announcement(&mut self) -> io::Result<Announcement> {
        let mut line = String::new();
        let reader = (&mut self.stdout).take(MAX_ANNOUNCEMENT);
        tokio::pin!(reader);
        reader.read_line(&mut line).await?;
        if !line.ends_with('\n') {
            let msg = format!("{} ended before it was ready", self.label);
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
        }
        serde_json::from_str(&line).map_err(|e| {
            let msg = format!("{} announced itself unreadably: {e}", self.label);
            io::Error::new(io::ErrorKind::InvalidData, msg)
        })
    }
}

/// A spawned worker that has received its assignment.
struct Started {
    label: String,
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Started {
    /// Hands the process to a monitor task and keeps its stdout for the announcement.
    fn watch(self, stop: watch::Receiver<bool>, exits: mpsc::Sender<WorkerExit>) -> Pending {
        let label = self.label.clone();
        tokio::spawn(monitor(self.child, self.stdin, self.label, stop, exits));
        Pending {
            label,
            stdout: BufReader::new(self.stdout),
        }
    }
}

async fn start(plan: &WorkerPlan, id: &str, assignment: &Assignment) -> io::Result<Started> {
    let mut child = command(plan, id).spawn().map_err(|e| {
        let msg = format!(
            "cannot start {} as a simulator worker: {e}",
            plan.program.display()
        );
        io::Error::new(e.kind(), msg)
    })?;
    let label = label(id, child.id(), &assignment.devices);
    tracing::info!("started {label}");
    let missing = |what: &str| io::Error::other(format!("{label}: no {what} pipe"));
    let mut stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
    let mut line = serde_json::to_vec(assignment)?;
    line.push(b'\n');
    stdin.write_all(&line).await?;
    stdin.flush().await?;
    Ok(Started {
        label,
        child,
        stdin,
        stdout,
    })
}

/// `PROGRAM sim --worker K/N [-v…]`, with piped stdin/stdout and the supervisor's stderr.
fn command(plan: &WorkerPlan, id: &str) -> Command {
    let mut cmd = Command::new(&plan.program);
    cmd.args(["sim", "--worker", id])
        .args((0..plan.verbose).map(|_| "-v"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A panicking or failing supervisor still takes its workers down.
        .kill_on_drop(true);
    // Its own process group: a terminal's Ctrl-C reaches the supervisor alone, which then
    // stops the workers in order instead of racing them.
    #[cfg(unix)]
    cmd.process_group(0);
    cmd
}

fn label(id: &str, pid: Option<u32>, devices: &Range<usize>) -> String {
    let pid = pid.map_or_else(|| "?".to_owned(), |p| p.to_string());
    let last = devices.end.saturating_sub(1);
    format!(
        "simulator worker {id} (pid {pid}, cameras {}-{last})",
        devices.start
    )
}

/// Reports the worker's exit: on its own, or once the supervisor asks it to stop.
async fn monitor(
    mut child: Child,
    stdin: ChildStdin,
    label: String,
    mut stop: watch::Receiver<bool>,
    exits: mpsc::Sender<WorkerExit>,
) {
    let (status, requested) = tokio::select! {
        biased;
        _ = stopped(&mut stop) => (halt(&mut child, stdin, &label).await, true),
        status = child.wait() => (status, false),
    };
    let exit = WorkerExit {
        label,
        status,
        requested,
    };
    let _ = exits.send(exit).await;
}

/// Closing stdin is the stop request; a worker that has not stopped in time is killed.
async fn halt(child: &mut Child, stdin: ChildStdin, label: &str) -> io::Result<ExitStatus> {
    drop(stdin);
    if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
        return status;
    }
    tracing::warn!("{label} did not stop within {STOP_GRACE:?}; killing it");
    child.kill().await?;
    child.wait().await
}
