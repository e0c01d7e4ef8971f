//! Fleets larger than one process's open-file budget: a supervisor starts worker processes
//! (this executable as `sim --worker K/N`), each serving a contiguous part of the same fleet,
//! and speaks for them all — one ready line, the whole fleet's files, one control API.

mod crew;
mod relay;
mod wire;
mod worker;

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::crew::{Crew, Pending, WorkerExit};
use self::relay::Relay;
use self::wire::{Announcement, Assignment};
use super::auth::Scheme;
use super::fleet::{fleet_specs, resolve_scheme, Part};
use super::sshkex::SshServer;
use super::tls::{self, TlsIdentity};
use super::{control, ports, roster, OutputFiles, SimConfig};
use sshfleet_core::shutdown::Shutdown;

pub use self::worker::serve_worker;

/// More workers than this means a mistaken budget, not a real need.
const MAX_WORKERS: usize = 64;
/// How long the workers together may take to announce themselves.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);

/// How `sshfleet sim` splits a fleet that does not fit one process.
#[derive(Clone, Debug)]
pub struct WorkerPlan {
    /// This executable; each worker runs as `PROGRAM sim --worker K/N`.
    pub program: PathBuf,
    /// At most this many cameras per process.
    pub devices_per_process: usize,
    /// The `-v` count passed on to the workers.
    pub verbose: u8,
}

impl WorkerPlan {
    /// Whether a fleet of `devices` needs more than one process.
    pub fn splits(&self, devices: usize) -> bool {
        devices > self.devices_per_process
    }

    /// Contiguous parts of near-equal size, none above the per-process budget.
    fn parts(&self, devices: usize) -> io::Result<Vec<Range<usize>>> {
        let count = devices.div_ceil(self.devices_per_process.max(1)).max(1);
        if count > MAX_WORKERS {
            let msg = format!(
                "{devices} cameras at {} per process would need {count} worker processes \
                 (at most {MAX_WORKERS})",
                self.devices_per_process
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        let (base, extra) = (devices / count, devices % count);
        let mut start = 0;
        let parts = (0..count).map(|k| {
            let end = start + base + usize::from(k < extra);
            let part = start..end;
            start = end;
            part
        });
        Ok(parts.collect())
    }
}

/// Serves the fleet through workers until `shutdown` fires (then stops them all) or a worker
/// dies (then stops the others and fails).
pub(crate) async fn run(
    cfg: SimConfig,
    plan: WorkerPlan,
    files: OutputFiles,
    mut shutdown: Shutdown,
    ready: impl FnOnce(&str),
) -> io::Result<()> {
    let tls = cfg.https.then(tls::generate_identity).transpose()?;
    let assignments = assign(&cfg, &plan, tls.as_ref())?;
    let parts: Vec<_> = assignments.iter().map(|a| a.devices.clone()).collect();
    let (mut crew, pending) = Crew::spawn(&plan, &assignments).await?;
    let served = match wait_ready(&mut crew, pending, &mut shutdown).await {
        Ok(Some(announced)) => {
            let fleet = Announced {
                cfg: &cfg,
                parts: &parts,
                workers: &announced,
                tls: tls.as_ref(),
            };
            serve(fleet, &files, &mut crew, shutdown, ready).await
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    };
    match served {
        Ok(died) => finish(crew, died).await,
        Err(e) => {
            crew.stop().await;
            Err(e)
        }
    }
}

/// A split fleet whose workers all listen.
struct Announced<'a> {
    cfg: &'a SimConfig,
    parts: &'a [Range<usize>],
    workers: &'a [Announcement],
    tls: Option<&'a TlsIdentity>,
}

/// Publishes the files and the control API, announces the fleet, and serves until
/// `shutdown` fires (`None`) or a worker exits on its own (its exit).
async fn serve(
    fleet: Announced<'_>,
    files: &OutputFiles,
    crew: &mut Crew,
    mut shutdown: Shutdown,
    ready: impl FnOnce(&str),
) -> io::Result<Option<WorkerExit>> {
    publish(&fleet, files)?;
    let relay = match fleet.cfg.control {
        Some(addr) => Some(RelayServer::start(addr, fleet.parts, fleet.workers).await?),
        None => None,
    };
    // Workers serve cameras only; the mock Equinix API, when asked for, lives here.
    let (stop_mock, mock_stop) = watch::channel(false);
    let (mock_done, mut mock_gone) = mpsc::channel(1);
    let mock = match fleet.cfg.equinix_users {
        Some(users) => {
            Some(super::fleet::serve_equinix_with(fleet.cfg, users, mock_stop, mock_done).await?)
        }
        None => {
            drop(mock_done);
            None
        }
    };
    let control = relay.as_ref().map(|r| r.url.as_str());
    let equinix = mock.as_ref().map(super::EquinixMock::url);
    ready(&super::ready_line(fleet.cfg.devices, control, equinix));
    let died = tokio::select! {
        _ = shutdown.wait() => None,
        exit = crew.next_exit() => exit,
    };
    if let Some(relay) = relay {
        relay.stop().await;
    }
    stop_mock.send_replace(true);
    drop(mock);
    let _ = mock_gone.recv().await;
    Ok(died)
}

/// The supervisor's control API while it runs.
struct RelayServer {
    url: String,
    stop: watch::Sender<bool>,
    gone: mpsc::Receiver<()>,
}

impl RelayServer {
    async fn start(
        addr: SocketAddr,
        parts: &[Range<usize>],
        announced: &[Announcement],
    ) -> io::Result<RelayServer> {
        let relay = Arc::new(Relay::new(parts, announced)?);
        let (stop, stop_rx) = watch::channel(false);
        let (done, gone) = mpsc::channel(1);
        let url = control::serve(addr, relay, stop_rx, done).await?;
        Ok(RelayServer { url, stop, gone })
    }

    /// Stops accepting and waits until every connection task is gone.
    async fn stop(mut self) {
        self.stop.send_replace(true);
        let _ = self.gone.recv().await;
    }
}

/// One assignment per part: the whole fleet's description, the part's cameras and ports.
fn assign(
    cfg: &SimConfig,
    plan: &WorkerPlan,
    tls: Option<&TlsIdentity>,
) -> io::Result<Vec<Assignment>> {
    if cfg.specs.is_some() {
        let msg = "a fleet of explicit device specs runs in one process only";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    }
    let parts = plan.parts(cfg.devices)?;
    let sizes: Vec<usize> = parts.iter().map(Range::len).collect();
    let port_ranges = ports::PortPlan::for_fleet(cfg.devices)?.split(&sizes);
    let assignments = parts.into_iter().zip(port_ranges).map(|(devices, ports)| {
        let tls = tls.cloned();
        Assignment::new(
            cfg,
            Part {
                devices,
                ports,
                tls,
            },
        )
    });
    Ok(assignments.collect())
}

/// Every worker's announcement; `None` if `shutdown` fired first.
async fn wait_ready(
    crew: &mut Crew,
    pending: Vec<Pending>,
    shutdown: &mut Shutdown,
) -> io::Result<Option<Vec<Announcement>>> {
    let announced = tokio::time::timeout(STARTUP_LIMIT, crew::announcements(pending));
    tokio::select! {
        _ = shutdown.wait() => Ok(None),
        exit = crew.next_exit() => Err(died(exit)),
        announced = announced => match announced {
            Ok(Ok(all)) => Ok(Some(all)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the simulator workers were not ready within {STARTUP_LIMIT:?}"),
            )),
        },
    }
}

/// Writes the inventory, truth and CA files exactly as one process serving the whole fleet
/// would: the specs are recomputed here, the ports come from the workers.
fn publish(fleet: &Announced<'_>, files: &OutputFiles) -> io::Result<()> {
    let cfg = fleet.cfg;
    let specs = fleet_specs(cfg);
    let ports = fleet.workers.iter().flat_map(|a| a.ports.iter().copied());
    let addresses: Vec<String> = ports.map(|p| roster::address(p, cfg.https)).collect();
    let ssh_ports: Vec<u16> = fleet
        .workers
        .iter()
        .flat_map(|a| a.ssh_ports.iter().copied())
        .collect();
    let ssh_served = cfg.ssh_ports;
    if addresses.len() != specs.len() || (ssh_served && ssh_ports.len() != specs.len()) {
        let msg = format!(
            "the workers announced {} ports and {} SSH ports for {} cameras",
            addresses.len(),
            ssh_ports.len(),
            specs.len()
        );
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    if let Some(path) = &files.inventory {
        super::write_file(path, |w| {
            writeln!(w, "{}", roster::INVENTORY_HEADER)?;
            for (i, address) in addresses.iter().enumerate() {
                let ssh_port = ssh_ports.get(i).copied();
                roster::write_inventory_row(&mut *w, i, address, ssh_port)?;
            }
            Ok(())
        })?;
    }
    if let Some(path) = &files.truth {
        super::write_file(path, |w| {
            for (index, (spec, address)) in specs.iter().zip(&addresses).enumerate() {
                let authenticates = resolve_scheme(spec.auth, cfg.auth, cfg.https) != Scheme::None;
                let mut truth = roster::truth(
                    index,
                    spec,
                    address,
                    spec.ssh_enabled,
                    authenticates,
                    ssh_served,
                );
                let server = SshServer::for_camera(cfg.seed, index).at_epoch(cfg.key_epoch);
                truth.ssh_evidence = roster::ssh_truth(&server, spec.ssh, truth.ssh_port);
                roster::write_truth_line(&mut *w, &truth)?;
            }
            Ok(())
        })?;
    }
    super::write_ca(files.ca.as_deref(), fleet.tls.map(|t| t.ca_pem.as_str()))
}

/// Stops the workers still running; fails if one had died on its own, even while the
/// others were being stopped.
async fn finish(crew: Crew, mut unasked: Option<WorkerExit>) -> io::Result<()> {
    for exit in crew.stop().await {
        match &exit.status {
            _ if !exit.requested => {
                unasked.get_or_insert(exit);
            }
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!("{} stopped with {status}", exit.label),
            Err(e) => tracing::warn!("{}: cannot learn how it stopped: {e}", exit.label),
        }
    }
    match unasked {
        Some(exit) => Err(died(Some(exit))),
        None => Ok(()),
    }
}

/// The error for a worker that exited without being asked to.
fn died(exit: Option<WorkerExit>) -> io::Error {
    let Some(exit) = exit else {
        return io::Error::other("the simulator workers vanished");
    };
    let how = match exit.status {
        Ok(status) => status.to_string(),
        Err(e) => format!("status unknown: {e}"),
    };
    io::Error::other(format!("{} exited unexpectedly ({how})", exit.label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::DeviceSource as _;
    use crate::Fleet;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn plan(devices_per_process: usize) -> WorkerPlan {
        WorkerPlan {
            program: PathBuf::from("sshfleet"),
            devices_per_process,
            verbose: 0,
        }
    }

    #[test]
    fn parts_are_contiguous_near_equal_and_within_the_budget() -> io::Result<()> {
        assert_eq!(plan(50).parts(130)?, [0..44, 44..87, 87..130]);
        assert_eq!(plan(15_000).parts(20_000)?, [0..10_000, 10_000..20_000]);
        assert_eq!(plan(50).parts(50)?.len(), 1);
        assert!(!plan(50).splits(50) && plan(50).splits(51));
        assert!(plan(1).parts(1000).is_err());
        Ok(())
    }

    fn two_parts_of_ten() -> io::Result<(SimConfig, Vec<Part>)> {
        let cfg = SimConfig {
            devices: 10,
            seed: 4,
            control: Some(([127, 0, 0, 1], 0).into()),
            ..SimConfig::default()
        };
        let ports = ports::PortPlan::for_fleet(10)?.split(&[6, 4]);
        let parts = [0..6, 6..10].into_iter().zip(ports);
        let parts = parts.map(|(devices, ports)| Part {
            devices,
            ports,
            tls: None,
        });
        Ok((cfg, parts.collect()))
    }

    fn rows(fleet: &Fleet) -> io::Result<Vec<String>> {
        let mut csv = Vec::new();
        fleet.write_inventory(&mut csv)?;
        let text = String::from_utf8_lossy(&csv);
        // Name, site and expect: the address and SSH port differ from fleet to fleet.
        let rows = text
            .lines()
            .skip(1)
            .map(|row| row.split_once(',').and_then(|r| r.1.rsplit_once(',')))
            .map(|r| r.map(|r| r.0));
        Ok(rows.map(|r| r.unwrap_or_default().to_owned()).collect())
    }

    #[tokio::test]
    async fn a_part_has_the_cameras_the_whole_fleet_has_there() -> TestResult {
        let (cfg, mut parts) = two_parts_of_ten()?;
        let whole = Fleet::start(cfg.clone()).await?;
        let second = Fleet::start_part(cfg, parts.remove(1)).await?;
        for i in 0..second.len() {
            assert_eq!(second.spec(i), whole.spec(6 + i));
            let (a, b) = (second.truth(i), whole.truth(6 + i));
            assert_eq!(
                (
                    a.ssh_enabled,
                    a.expect_status,
                    a.fault,
                    a.ssh_port,
                    a.exposure
                ),
                (
                    b.ssh_enabled,
                    b.expect_status,
                    b.fault,
                    b.ssh_port,
                    b.exposure
                )
            );
        }
        assert_eq!(rows(&second)?, rows(&whole)?[6..]);
        Ok(())
    }

    #[tokio::test]
    async fn the_relay_answers_for_every_part_in_fleet_order() -> TestResult {
        let (cfg, parts) = two_parts_of_ten()?;
        let ranges: Vec<_> = parts.iter().map(|p| p.devices.clone()).collect();
        let mut fleets = Vec::new();
        for part in parts {
            fleets.push(Fleet::start_part(cfg.clone(), part).await?);
        }
        let announced: Vec<_> = fleets
            .iter()
            .map(|f| Announcement {
                ports: f.ports().to_vec(),
                ssh_ports: f.ssh_ports().to_vec(),
                control: f.control_url(),
            })
            .collect();
        let relay = Relay::new(&ranges, &announced)?;
        let all: serde_json::Value = serde_json::from_slice(&relay.all().await.body)?;
        let addresses: Vec<_> = all
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| &d["address"])
            .collect();
        let expected: Vec<_> = fleets
            .iter()
            .flat_map(|f| (0..f.len()).map(|i| f.address(i)))
            .collect();
        assert_eq!(addresses, expected);
        let seventh: serde_json::Value = serde_json::from_slice(&relay.one(7).await.body)?;
        assert_eq!(seventh["address"], fleets[1].address(1));
        assert_eq!(relay.one(10).await.status, 404);
        Ok(())
    }
}
