//! The worker side: read the assignment from stdin, serve that part of the fleet, announce
//! it on stdout, and stop when stdin ends — the supervisor closed it or died — or on a signal.

use std::io::{self, BufRead, BufReader, Read};

use tokio::sync::oneshot;

use super::super::fleet::Fleet;
use super::wire::{Announcement, Assignment};
use sshfleet_core::shutdown::{Shutdown, ShutdownTrigger};

/// Serves the part of a fleet that `input` assigns, calls `announce` with the announcement
/// line once it listens, and serves until `input` ends or `shutdown` fires.
pub async fn serve_worker(
    input: impl Read + Send + 'static,
    stop: ShutdownTrigger,
    mut shutdown: Shutdown,
    announce: impl FnOnce(&str),
) -> io::Result<()> {
    let (cfg, part) = read_assignment(input, stop).await?.into_parts()?;
    let fleet = Fleet::start_part(cfg, part).await?;
    let announcement = Announcement {
        ports: fleet.ports().to_vec(),
        ssh_ports: fleet.ssh_ports().to_vec(),
        control: fleet.control_url(),
    };
    announce(&serde_json::to_string(&announcement)?);
    shutdown.wait().await;
    fleet.shutdown().await;
    Ok(())
}

/// The first line of `input`. A thread keeps reading after it and triggers `stop` at the end
/// of the input: a blocking read is the one portable way to notice the supervisor is gone.
async fn read_assignment(
    input: impl Read + Send + 'static,
    stop: ShutdownTrigger,
) -> io::Result<Assignment> {
    let (first_line, line_read) = oneshot::channel();
    std::thread::Builder::new()
        .name("sim-worker-stdin".into())
        .spawn(move || {
            let mut input = BufReader::new(input);
            let mut line = String::new();
            let _ = first_line.send(input.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut input, &mut io::sink());
            stop.trigger();
        })?;
    let line = line_read
        .await
        .map_err(|_| io::Error::other("the stdin reader of the worker stopped"))??;
    if line.trim().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no assignment on stdin: `sim --worker` is started by `sshfleet sim` itself",
        ));
    }
    serde_json::from_str(&line).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad worker assignment: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Part;
    use crate::ports;
    use crate::SimConfig;
    use sshfleet_core::shutdown;

    #[tokio::test]
    async fn a_worker_serves_its_part_and_stops_at_the_end_of_its_input(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let cfg = SimConfig {
            devices: 10,
            ..SimConfig::default()
        };
        let part = Part {
            devices: 4..7,
            ports: ports::PortPlan::for_fleet(10)?,
            tls: None,
        };
        let mut input = serde_json::to_vec(&Assignment::new(&cfg, part))?;
        input.push(b'\n');
        let (trigger, shutdown) = shutdown::channel();
        let mut announced = String::new();
        let served = serve_worker(io::Cursor::new(input), trigger, shutdown, |line| {
            announced = line.to_owned();
        });
        tokio::time::timeout(std::time::Duration::from_secs(20), served).await??;
        let announcement: Announcement = serde_json::from_str(&announced)?;
        assert_eq!(announcement.ports.len(), 3);
        assert_eq!(announcement.control, None);
        Ok(())
    }

    #[tokio::test]
    async fn a_worker_without_an_assignment_refuses_to_start() {
        let (trigger, shutdown) = shutdown::channel();
        let served = serve_worker(io::empty(), trigger, shutdown, |_| {}).await;
        assert_eq!(
            served.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::InvalidInput)
        );
    }
}
