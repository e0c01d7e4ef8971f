//! A running fleet, or one process's part of it: the cameras with their seeded identities and
//! listener tasks, the inventory and truth files, snapshots, and an orderly stop.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::auth::{DigestKind, Scheme};
use super::camera::{Camera, Identity, Settings};
use super::digest::Clock;
use super::equinix::{EquinixMock, EquinixSimConfig};
use super::ports::{self, Port, PortPlan};
use super::roster::{self, Truth};
use super::server::{self, DoneToken, Shared};
use super::spec::ParamStyle;
use super::spec::{DeviceAuth, DeviceSpec, Fault};
use super::sshkex::SshServer;
use super::tls::{self, TlsIdentity};
use super::{control, faults, sshd, AuthPolicy, DeviceSnapshot, FaultProfile, SimConfig};
use sshfleet_core::secret::Secret;

/// A simulated fleet serving on loopback. Dropping it stops the tasks without waiting.
pub struct Fleet {
    /// Fleet-wide index of the first camera (non-zero in a worker's part).
    first: usize,
    cameras: Arc<[Arc<Camera>]>,
    ports: Vec<u16>,
    /// Every camera's SSH port, in camera order; empty without [`SimConfig::ssh_ports`].
    ssh_ports: Vec<u16>,
    /// The closed cameras' ports, held until the fleet is gone.
    _closed: Vec<socket2::Socket>,
    control_url: Option<String>,
    equinix: Option<EquinixMock>,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    done: Option<mpsc::Receiver<()>>,
}

/// The part of a fleet one process serves: which cameras, from which ports, with which TLS
/// identity (shared by every part).
#[derive(Debug)]
pub(super) struct Part {
    pub devices: Range<usize>,
    pub ports: PortPlan,
    pub tls: Option<TlsIdentity>,
}

impl Fleet {
    /// Binds every listener and starts serving; all cameras answer once this returns.
    ///
    /// The whole fleet runs in this process, so it must fit this process's open-file limit
    /// (an error says so otherwise); `sshfleet sim` splits larger fleets across processes.
    pub async fn start(cfg: SimConfig) -> io::Result<Fleet> {
        let devices = fleet_len(&cfg);
        let part = Part {
            devices: 0..devices,
            ports: PortPlan::for_fleet(devices)?,
            tls: cfg.https.then(tls::generate_identity).transpose()?,
        };
        Fleet::start_part(cfg, part).await
    }

    /// Starts cameras `part.devices` of the fleet `cfg` describes, with the specs and
    /// identities they have in the whole fleet.
    pub(super) async fn start_part(cfg: SimConfig, part: Part) -> io::Result<Fleet> {
        let specs = part_specs(&cfg, &part.devices)?;
        // The HTTP ports, then the SSH ports, each refusing or listening as it starts.
        let mut refuse: Vec<bool> = specs.iter().map(|s| s.fault == Fault::Closed).collect();
        if cfg.ssh_ports {
            refuse.extend(specs.iter().map(|s| !s.ssh.listens(s.ssh_enabled)));
        }
        ports::reserve_file_descriptors(refuse.len() as u64)?;
        let tls = part.tls.as_ref().map(tls::serve).transpose()?;
        let mut ports = ports::bind_all(&refuse, part.ports)?;
        let ssh = ports.split_off(specs.len());
        let first = part.devices.start;
        let cameras = build_cameras(specs, first, &ports, &cfg);
        let numbers = ports.iter().map(Port::number).collect();
        let ssh_numbers = ssh.iter().map(Port::number).collect();
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            settings: settings(&cfg),
            latency: cfg.latency,
            tls: tls.as_ref().map(|t| t.acceptor.clone()),
            stop: stop_rx,
        });
        let held = serve_cameras(&cameras, ports, &shared, &done_tx)?;
        for (cam, port) in cameras.iter().zip(ssh) {
            let serving = sshd::serve(port, cam.clone(), shared.stop.clone(), done_tx.clone());
            tokio::spawn(serving);
        }
        let equinix = match cfg.equinix_users {
            Some(users) => Some(serve_equinix(&cfg, users, &shared, done_tx.clone()).await?),
            None => None,
        };
        let control_url = match cfg.control {
            Some(addr) => Some(serve_control(addr, &cameras, &shared, done_tx).await?),
            None => None,
        };
        Ok(Fleet {
            first,
            cameras,
            ports: numbers,
            ssh_ports: ssh_numbers,
            _closed: held,
            control_url,
            equinix,
            ca_pem: tls.map(|t| t.ca_pem),
            stop,
            done: Some(done),
        })
    }

    pub fn len(&self) -> usize {
        self.cameras.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cameras.is_empty()
    }

    /// Camera `i`'s address as the inventory writes it. Panics if `i >= len()`.
    pub fn address(&self, i: usize) -> &str {
        &self.cameras[i].address
    }

    /// Camera `i`'s SSH port (the inventory's `ssh_port`); `None` when the fleet serves
    /// none (or there is no camera `i`).
    pub fn ssh_port(&self, i: usize) -> Option<u16> {
        self.ssh_ports.get(i).copied()
    }

    /// Camera `i`'s spec. Panics if `i >= len()`.
    pub fn spec(&self, i: usize) -> &DeviceSpec {
        &self.cameras[i].spec
    }

    /// What a correct scan reports for camera `i` now. Panics if `i >= len()`.
    pub fn truth(&self, i: usize) -> Truth {
        let cam = &self.cameras[i];
        let authenticates = cam.scheme != Scheme::None;
        let ssh_served = self.ssh_port(i).is_some();
        let mut truth = roster::truth(
            self.first + i,
            &cam.spec,
            &cam.address,
            cam.ssh_enabled(),
            authenticates,
            ssh_served,
        );
        truth.ssh_evidence = roster::ssh_truth(&cam.ssh_server(), cam.spec.ssh, truth.ssh_port);
        truth
    }

    /// CSV with `address,name,site,expect,ssh_port`; every camera is expected `disabled`.
    pub fn write_inventory(&self, mut w: impl Write) -> io::Result<()> {
        writeln!(w, "{}", roster::INVENTORY_HEADER)?;
        for (i, cam) in self.cameras.iter().enumerate() {
            let ssh_port = self.ssh_port(i);
            roster::write_inventory_row(&mut w, self.first + i, &cam.address, ssh_port)?;
        }
        w.flush()
    }

    /// JSON Lines, one [`Truth`] per camera.
    pub fn write_truth(&self, mut w: impl Write) -> io::Result<()> {
        for i in 0..self.len() {
            roster::write_truth_line(&mut w, &self.truth(i))?;
        }
        w.flush()
    }

    /// Every camera's port, in camera order (closed cameras' ports included).
    pub(super) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Every camera's SSH port, in camera order.
    pub(super) fn ssh_ports(&self) -> &[u16] {
        &self.ssh_ports
    }

    pub fn snapshot(&self) -> Vec<DeviceSnapshot> {
        self.cameras.iter().map(|c| c.snapshot()).collect()
    }

    /// When camera `i`'s latest requests (up to 16) arrived, oldest first, on the tokio
    /// clock: for tests that measure a client's pauses between requests. In-process only
    /// (not part of the control API); empty if there is no camera `i`.
    pub fn arrivals(&self, i: usize) -> Vec<tokio::time::Instant> {
        self.cameras
            .get(i)
            .map(|c| c.arrivals())
            .unwrap_or_default()
    }

    pub(crate) fn control_url(&self) -> Option<String> {
        self.control_url.clone()
    }

    /// The mock Equinix API, when `equinix_users` was set.
    pub fn equinix(&self) -> Option<&EquinixMock> {
        self.equinix.as_ref()
    }

    /// The mock Equinix API's base URL (`http://127.0.0.1:PORT`).
    pub fn equinix_url(&self) -> Option<String> {
        self.equinix.as_ref().map(|m| m.url().to_owned())
    }

    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// `ready devices=N[ control=URL][ equinix=URL]`, printed once everything listens.
    pub fn ready_line(&self) -> String {
        super::ready_line(
            self.len(),
            self.control_url.as_deref(),
            self.equinix.as_ref().map(EquinixMock::url),
        )
    }

    /// Sets camera `i`'s SSH state without recording a write. Ignores unknown indexes.
    pub fn set_ssh_enabled(&self, i: usize, enabled: bool) {
        if let Some(cam) = self.cameras.get(i) {
            cam.set_ssh_enabled(enabled);
        }
    }

    /// Moves every camera to key epoch `epoch` (`SimConfig::key_epoch`): one camera in
    /// twenty gets a new host key at each epoch, its serial unchanged; the truth says which.
    pub fn set_key_epoch(&self, epoch: u16) {
        for cam in self.cameras.iter() {
            cam.set_key_epoch(epoch);
        }
    }

    /// Stops every listener and connection and waits until their tasks are gone.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(mut done) = self.done.take() {
            let _ = done.recv().await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.len())
            .field("control_url", &self.control_url)
            .field("equinix", &self.equinix_url())
            .finish_non_exhaustive()
    }
}

fn build_cameras(
    specs: Vec<DeviceSpec>,
    first: usize,
    ports: &[Port],
    cfg: &SimConfig,
) -> Arc<[Arc<Camera>]> {
    specs
        .into_iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (spec, port))| {
            let scheme = resolve_scheme(spec.auth, cfg.auth, cfg.https);
            let id = identity(first + i, &spec, port.number(), cfg, scheme);
            Arc::new(Camera::new(spec, id))
        })
        .collect()
}

/// Number of cameras in the whole fleet.
pub(super) fn fleet_len(cfg: &SimConfig) -> usize {
    cfg.specs.as_ref().map_or(cfg.devices, Vec::len)
}

/// The specs of cameras `devices`, computed over the whole fleet so that a part's cameras
/// are exactly the ones the whole fleet has at those positions.
fn part_specs(cfg: &SimConfig, devices: &Range<usize>) -> io::Result<Vec<DeviceSpec>> {
    let mut specs = fleet_specs(cfg);
    if devices.start > devices.end || devices.end > specs.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "cameras {devices:?} are not part of a fleet of {}",
                specs.len()
            ),
        ));
    }
    specs.truncate(devices.end);
    Ok(specs.split_off(devices.start))
}

/// Every camera's spec, in fleet order; seeded, so equal configs give equal fleets.
pub(super) fn fleet_specs(cfg: &SimConfig) -> Vec<DeviceSpec> {
    match (&cfg.specs, cfg.faults) {
        (Some(specs), _) => specs.clone(),
        (None, FaultProfile::None) => faults::clean(cfg.devices, cfg.seed),
        (None, FaultProfile::Realistic) => faults::realistic(cfg.devices, cfg.seed, cfg.auth),
    }
}

/// Spawns every listening camera; returns the closed cameras' sockets, to be held.
fn serve_cameras(
    cameras: &[Arc<Camera>],
    ports: Vec<Port>,
    shared: &Arc<Shared>,
    done: &DoneToken,
) -> io::Result<Vec<socket2::Socket>> {
    let mut held = Vec::new();
    for (cam, port) in cameras.iter().zip(ports) {
        let listener = match port {
            Port::Listening(listener, _) => listener,
            Port::Closed(socket, _) => {
                held.push(socket);
                continue;
            }
        };
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        server::spawn_camera(listener, cam.clone(), shared.clone(), done.clone());
    }
    Ok(held)
}

async fn serve_control(
    addr: SocketAddr,
    cameras: &Arc<[Arc<Camera>]>,
    shared: &Shared,
    done: DoneToken,
) -> io::Result<String> {
    let source = Arc::new(control::Cameras(cameras.clone()));
    control::serve(addr, source, shared.stop.clone(), done).await
}

async fn serve_equinix(
    cfg: &SimConfig,
    users: usize,
    shared: &Arc<Shared>,
    done: DoneToken,
) -> io::Result<EquinixMock> {
    serve_equinix_with(cfg, users, shared.stop.clone(), done).await
}

/// Starts the mock Equinix API for `cfg`, stopping when `stop` fires.
pub(super) async fn serve_equinix_with(
    cfg: &SimConfig,
    users: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    done: DoneToken,
) -> io::Result<EquinixMock> {
    let mock_cfg = EquinixSimConfig {
        users,
        seed: cfg.seed,
        latency: cfg.latency,
        faults: cfg.equinix_faults.clone(),
    };
    EquinixMock::start(mock_cfg, 0, stop, done)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("binding the mock Equinix API: {e}")))
}

fn settings(cfg: &SimConfig) -> Settings {
    let mut rng = fastrand::Rng::new();
    let mut nonce_secret = [0u8; 16];
    rng.fill(&mut nonce_secret);
    Settings {
        username: cfg.username.clone(),
        nonce_secret,
        nonce_lifetime: cfg.nonce_lifetime,
        clock: Clock::start(),
    }
}

/// The seeded per-camera details: address, realm, password, param spelling, slowness.
fn identity(i: usize, spec: &DeviceSpec, port: u16, cfg: &SimConfig, scheme: Scheme) -> Identity {
    let address = roster::address(port, cfg.https);
    let mut rng =
        fastrand::Rng::with_seed(cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let password = match spec.fault {
        Fault::WrongPassword => Secret::new(format!("{}-rotated", cfg.password)),
        _ => Secret::new(cfg.password.as_str()),
    };
    Identity {
        address,
        realm: roster::realm(i),
        facts: roster::facts(i, spec.firmware),
        scheme,
        password,
        param_style: ParamStyle::pick(&mut rng),
        slow_delay: slow_delay(&mut rng, &cfg.slow_delays),
        ssh_server: SshServer::for_camera(cfg.seed, i).at_epoch(cfg.key_epoch),
    }
}

/// A `slow` camera's delay, drawn from `range` (to the millisecond).
fn slow_delay(rng: &mut fastrand::Rng, range: &std::ops::RangeInclusive<Duration>) -> Duration {
    let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (low, high) = (ms(range.start()), ms(range.end()));
    Duration::from_millis(rng.u64(low.min(high)..=high))
}

/// AXIS OS default policy: Digest on HTTP, Basic on HTTPS, unless the camera says otherwise.
pub(super) fn resolve_scheme(auth: DeviceAuth, policy: AuthPolicy, https: bool) -> Scheme {
    match (auth, policy) {
        (DeviceAuth::Policy, AuthPolicy::Digest) if https => Scheme::Basic,
        (DeviceAuth::Policy, AuthPolicy::Digest) | (DeviceAuth::DigestMd5, _) => {
            Scheme::Digest(DigestKind::Md5)
        }
        (DeviceAuth::Policy, AuthPolicy::Basic) | (DeviceAuth::Basic, _) => Scheme::Basic,
        (DeviceAuth::Policy, AuthPolicy::None) | (DeviceAuth::None, _) => Scheme::None,
        (DeviceAuth::DigestMd5Sess, _) => Scheme::Digest(DigestKind::Md5Sess),
        (DeviceAuth::DigestNoQop, _) => Scheme::Digest(DigestKind::NoQop),
        (DeviceAuth::DigestSha256, _) => Scheme::Digest(DigestKind::Sha256),
    }
}
