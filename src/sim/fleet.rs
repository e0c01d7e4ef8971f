//! A running fleet: the cameras with their seeded identities and listener tasks, the
//! inventory and truth files, snapshots, and an orderly stop.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::auth::{DigestKind, Scheme};
use super::camera::{Camera, Identity, Settings};
use super::digest::Clock;
use super::equinix::{EquinixMock, EquinixSimConfig};
use super::paramcgi::ParamStyle;
use super::ports::{self, Port};
use super::server::{self, DoneToken, Shared};
use super::spec::{DeviceAuth, DeviceSpec, Fault};
use super::{control, faults, tls, AuthPolicy, DeviceSnapshot, FaultProfile, SimConfig};
use crate::report::record::Status;
use crate::secret::Secret;

const SITES: [&str; 5] = ["site-a", "site-b", "site-c", "site-d", "site-e"];

/// A simulated fleet serving on loopback. Dropping it stops the tasks without waiting.
pub struct Fleet {
    cameras: Arc<[Arc<Camera>]>,
    control_url: Option<String>,
    equinix: Option<EquinixMock>,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
    done: Option<mpsc::Receiver<()>>,
}

/// What a correct scan reports for one camera (a line of the truth file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    pub address: String,
    /// Known only when `expect_status` is `ok`.
    pub ssh_enabled: Option<bool>,
    pub expect_status: Status,
    /// The fault/firmware/auth label, `none` for a clean camera.
    pub fault: String,
}

#[derive(Serialize)]
struct TruthLine<'a> {
    address: &'a str,
    ssh_enabled: Option<bool>,
    expect_status: &'a str,
    fault: &'a str,
}

impl Fleet {
    /// Binds every listener and starts serving; all cameras answer once this returns.
    pub async fn start(cfg: SimConfig) -> io::Result<Fleet> {
        let specs = fleet_specs(&cfg);
        let closed: Vec<bool> = specs.iter().map(|s| s.fault == Fault::Closed).collect();
        ports::reserve_file_descriptors(closed.iter().filter(|c| !**c).count() as u64)?;
        let tls = cfg.https.then(tls::generate).transpose()?;
        let ports = ports::bind_all(&closed)?;
        let cameras = build_cameras(specs, &ports, &cfg);
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            settings: settings(&cfg),
            latency: cfg.latency,
            tls: tls.as_ref().map(|t| t.acceptor.clone()),
            stop: stop_rx,
        });
        serve_cameras(&cameras, ports, &shared, &done_tx)?;
        let equinix = match cfg.equinix_users {
            Some(users) => Some(serve_equinix(&cfg, users, &shared, done_tx.clone()).await?),
            None => None,
        };
        let control_url = match cfg.control {
            Some(addr) => Some(serve_control(addr, &cameras, &shared, done_tx).await?),
            None => None,
        };
        Ok(Fleet {
            cameras,
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

    /// Camera `i`'s spec. Panics if `i >= len()`.
    pub fn spec(&self, i: usize) -> &DeviceSpec {
        &self.cameras[i].spec
    }

    /// What a correct scan reports for camera `i` now. Panics if `i >= len()`.
    pub fn truth(&self, i: usize) -> Truth {
        let cam = &self.cameras[i];
        let expect_status = cam.spec.expect_status(cam.scheme != Scheme::None);
        Truth {
            address: cam.address.clone(),
            ssh_enabled: (expect_status == Status::Ok).then(|| cam.ssh_enabled()),
            expect_status,
            fault: cam.spec.label(),
        }
    }

    /// CSV with `address,name,site,expect`; every camera is expected `disabled`.
    pub fn write_inventory(&self, mut w: impl Write) -> io::Result<()> {
        writeln!(w, "address,name,site,expect")?;
        for (i, cam) in self.cameras.iter().enumerate() {
            let site = SITES[i % SITES.len()];
            writeln!(w, "{},cam-{:04},{site},disabled", cam.address, i + 1)?;
        }
        w.flush()
    }

    /// JSON Lines, one [`Truth`] per camera.
    pub fn write_truth(&self, mut w: impl Write) -> io::Result<()> {
        for i in 0..self.len() {
            let t = self.truth(i);
            let line = TruthLine {
                address: &t.address,
                ssh_enabled: t.ssh_enabled,
                expect_status: t.expect_status.as_str(),
                fault: &t.fault,
            };
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    pub fn snapshot(&self) -> Vec<DeviceSnapshot> {
        self.cameras.iter().map(|c| c.snapshot()).collect()
    }

    pub fn control_url(&self) -> Option<String> {
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
        let mut line = format!("ready devices={}", self.len());
        if let Some(url) = &self.control_url {
            line.push_str(&format!(" control={url}"));
        }
        if let Some(mock) = &self.equinix {
            line.push_str(&format!(" equinix={}", mock.url()));
        }
        line
    }

    /// Sets camera `i`'s SSH state without recording a write. Ignores unknown indexes.
    pub fn set_ssh_enabled(&self, i: usize, enabled: bool) {
        if let Some(cam) = self.cameras.get(i) {
            cam.set_ssh_enabled(enabled);
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

fn build_cameras(specs: Vec<DeviceSpec>, ports: &[Port], cfg: &SimConfig) -> Arc<[Arc<Camera>]> {
    specs
        .into_iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (spec, port))| {
            let scheme = resolve_scheme(spec.auth, cfg.auth, cfg.https);
            let id = identity(i, &spec, port.number(), cfg, scheme);
            Arc::new(Camera::new(spec, id))
        })
        .collect()
}

fn fleet_specs(cfg: &SimConfig) -> Vec<DeviceSpec> {
    match (&cfg.specs, cfg.faults) {
        (Some(specs), _) => specs.clone(),
        (None, FaultProfile::None) => faults::clean(cfg.devices, cfg.seed),
        (None, FaultProfile::Realistic) => faults::realistic(cfg.devices, cfg.seed, cfg.auth),
    }
}

fn serve_cameras(
    cameras: &[Arc<Camera>],
    ports: Vec<Port>,
    shared: &Arc<Shared>,
    done: &DoneToken,
) -> io::Result<()> {
    for (cam, port) in cameras.iter().zip(ports) {
        let Port::Listening(listener, _) = port else {
            continue;
        };
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        server::spawn_camera(listener, cam.clone(), shared.clone(), done.clone());
    }
    Ok(())
}

async fn serve_control(
    addr: SocketAddr,
    cameras: &Arc<[Arc<Camera>]>,
    shared: &Arc<Shared>,
    done: DoneToken,
) -> io::Result<String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("binding the control API on {addr}: {e}")))?;
    let url = format!("http://{}", listener.local_addr()?);
    control::spawn(listener, cameras.clone(), shared.clone(), done);
    Ok(url)
}

async fn serve_equinix(
    cfg: &SimConfig,
    users: usize,
    shared: &Arc<Shared>,
    done: DoneToken,
) -> io::Result<EquinixMock> {
    let mock_cfg = EquinixSimConfig {
        users,
        seed: cfg.seed,
        latency: cfg.latency,
        faults: cfg.equinix_faults.clone(),
    };
    EquinixMock::start(mock_cfg, 0, shared.stop.clone(), done)
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
    let address = match cfg.https {
        true => format!("https://127.0.0.1:{port}"),
        false => format!("127.0.0.1:{port}"),
    };
    let mut rng =
        fastrand::Rng::with_seed(cfg.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let password = match spec.fault {
        Fault::WrongPassword => Secret::new(format!("{}-rotated", cfg.password)),
        _ => Secret::new(cfg.password.as_str()),
    };
    Identity {
        address,
        realm: format!("AXIS_ACCC8E{:06X}", (0x01_2345 + i) & 0xFF_FFFF),
        scheme,
        password,
        param_style: ParamStyle::pick(&mut rng),
        slow_delay: Duration::from_millis(rng.u64(500..=2000)),
    }
}

/// AXIS OS default policy: Digest on HTTP, Basic on HTTPS, unless the camera says otherwise.
fn resolve_scheme(auth: DeviceAuth, policy: AuthPolicy, https: bool) -> Scheme {
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
