//! The fleet simulator: virtual Axis cameras on loopback, each its own listener with its own
//! SSH state, firmware, authentication and fault. It implements the device side from the
//! specs on its own and shares no protocol or auth code with `net` or `vapix`.
//!
//! # The realistic fault mix
//!
//! With [`FaultProfile::Realistic`] the seed fixes exact counts (rounded per mille of the
//! fleet) at shuffled positions. Faults, 15 % in total, each with the status a correct scan
//! (`--timeout 5s`, correct trust options) reports:
//!
//! | fault            | share | status           |
//! |------------------|-------|------------------|
//! | `slow` (0.5–2 s per response, [`SimConfig::slow_delays`]) | 3.5 % | `ok` |
//! | `hang`           | 1.0 % | `timeout`        |
//! | `closed`         | 2.0 % | `unreachable`    |
//! | `reset`          | 1.0 % | `protocol_error` |
//! | `malformed_json` | 1.0 % | `protocol_error` |
//! | `oversized`      | 0.5 % | `protocol_error` |
//! | `wrong_password` | 2.5 % | `auth_failed`    |
//! | `throttled`      | 1.0 % | `forbidden`      |
//! | `internal_error` | 1.0 % | `api_error`      |
//! | `no_admin`       | 1.5 % | `not_authorized` |
//!
//! In addition, on otherwise clean cameras: firmware variety 6 % (`param_only` 4 % → `ok`
//! through param.cgi, `ancient` 1 % → `unsupported`, `v2_only` 1 % → `unsupported`) and,
//! under [`AuthPolicy::Digest`] only, authentication variety 4 % (`digest_no_qop` 2 %,
//! `digest_sha256` 1 %, `digest_md5_sess` 1 %, all `ok`). Under [`AuthPolicy::None`] the
//! `wrong_password` cameras are clean too. 30 % of all cameras start with SSH enabled.
//!
//! # SSH ports
//!
//! Every camera has a second loopback port, its SSH port (the inventory's `ssh_port`). It
//! follows the camera's SSH state — listening with `SSH-2.0-OpenSSH_8.9` when enabled,
//! refusing connections when disabled, rebound whenever the state changes — except on the
//! cameras with an SSH port fault, 4 % of the realistic mix, again on otherwise clean
//! cameras ([`SshFault`]): `ssh_firewalled` 2 % (accepts and holds every connection without a
//! byte, whatever the state: the probe sees `filtered`, a loopback stand-in for a dropping
//! firewall that is deterministic), `ssh_stray_listener` 1 % (answers whatever the
//! configuration says), `ssh_trickle` 0.5 % (the line one byte every 500 ms) and
//! `ssh_endless_line` 0.5 % (a line that never ends). The truth file's `ssh_port` and
//! `exposure` say what a scan with `--probe-ssh` reports.
//!
//! # Fleets larger than one process
//!
//! Every camera holds a listening socket, so one process serves at most what its open-file
//! limit allows. [`run`] with a [`WorkerPlan`] splits a larger fleet across worker processes
//! (the `split` module): the same seeded fleet, camera for camera, behind one ready line,
//! one inventory, one truth file and one control API.

mod advisories;
mod auth;
mod camera;
mod control;
mod deviceinfo;
mod digest;
mod equinix;
mod faults;
mod fleet;
mod http;
mod paramcgi;
mod ports;
mod roster;
mod router;
mod server;
mod spec;
mod split;
mod sshcgi;
mod sshd;
mod sshkex;
mod tls;

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use equinix::{
    EquinixFaults, EquinixMock, EquinixSimConfig, LoggedRequest, MockStats, MockUser,
    CLIENT_ID as EQUINIX_CLIENT_ID, CLIENT_SECRET as EQUINIX_CLIENT_SECRET,
};
pub use fleet::Fleet;
pub use ports::camera_budget;
pub use roster::Truth;
pub use spec::{DeviceAuth, DeviceSpec, Fault, Firmware, SshFault};
pub use split::{serve_worker, WorkerPlan};

/// The response delay of the realistic mix's `slow` cameras.
pub(crate) const DEFAULT_SLOW_DELAYS: RangeInclusive<Duration> =
    Duration::from_millis(500)..=Duration::from_millis(2000);

/// Everything a simulated fleet is made of.
#[derive(Clone)]
pub struct SimConfig {
    /// Number of cameras (ignored when `specs` is given).
    pub devices: usize,
    pub seed: u64,
    /// Added before every response.
    pub latency: Duration,
    pub faults: FaultProfile,
    /// How long a `slow` camera delays each response (fixed per camera, seeded, within this
    /// range): 0.5–2 s by default.
    pub slow_delays: RangeInclusive<Duration>,
    /// TLS on every camera with a certificate from a per-fleet CA.
    pub https: bool,
    pub auth: AuthPolicy,
    pub username: String,
    pub password: String,
    pub nonce_lifetime: Duration,
    /// Serve the control API here (port 0 allowed).
    pub control: Option<SocketAddr>,
    /// Explicit per-camera specs, overriding `devices` and `faults`.
    pub specs: Option<Vec<DeviceSpec>>,
    /// Give every camera its SSH port (the default). Off for measurements of the HTTP side
    /// alone, where a second listener per camera would only halve the fleet that fits.
    pub ssh_ports: bool,
    /// Serve a mock Equinix Network Edge API with this many SSH users (on its own port).
    pub equinix_users: Option<usize>,
    pub equinix_faults: EquinixFaults,
    /// The cameras' host-key epoch (`--key-epoch`): at each epoch after 0, one camera in
    /// twenty shows a new host key, its serial unchanged (the truth's `ssh_key_changed`).
    pub key_epoch: u16,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            devices: 1000,
            seed: 1,
            latency: Duration::ZERO,
            faults: FaultProfile::Realistic,
            slow_delays: DEFAULT_SLOW_DELAYS,
            https: false,
            auth: AuthPolicy::Digest,
            username: "root".to_owned(),
            password: "pass".to_owned(),
            nonce_lifetime: Duration::from_secs(300),
            control: None,
            specs: None,
            ssh_ports: true,
            equinix_users: None,
            equinix_faults: EquinixFaults::default(),
            key_epoch: 0,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("devices", &self.devices)
            .field("seed", &self.seed)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("slow_delays", &self.slow_delays)
            .field("https", &self.https)
            .field("auth", &self.auth)
            .field("username", &self.username)
            .field("password", &"(redacted)")
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("control", &self.control)
            .field("specs", &self.specs.as_ref().map(Vec::len))
            .field("ssh_ports", &self.ssh_ports)
            .field("equinix_users", &self.equinix_users)
            .field("equinix_faults", &self.equinix_faults)
            .finish()
    }
}

/// Which faults the generated fleet has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultProfile {
    /// Every camera clean and modern; only the SSH state varies.
    None,
    /// The mix documented in the module docs.
    Realistic,
}

/// How cameras that follow the fleet policy authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthPolicy {
    /// AXIS OS default: Digest (MD5, qop=auth) on HTTP, Basic on HTTPS.
    Digest,
    /// Basic everywhere.
    Basic,
    /// No authentication.
    None,
}

/// A name that is not one of the accepted choices.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected {expected})")]
pub struct ParseChoiceError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl FaultProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Realistic => "realistic",
        }
    }
}

impl FromStr for FaultProfile {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<FaultProfile, ParseChoiceError> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(FaultProfile::None),
            "realistic" => Ok(FaultProfile::Realistic),
            _ => Err(ParseChoiceError {
                what: "fault profile",
                value: s.to_owned(),
                expected: "none or realistic",
            }),
        }
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AuthPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthPolicy::Digest => "digest",
            AuthPolicy::Basic => "basic",
            AuthPolicy::None => "none",
        }
    }
}

impl FromStr for AuthPolicy {
    type Err = ParseChoiceError;

    fn from_str(s: &str) -> Result<AuthPolicy, ParseChoiceError> {
        match s.to_ascii_lowercase().as_str() {
            "digest" => Ok(AuthPolicy::Digest),
            "basic" => Ok(AuthPolicy::Basic),
            "none" => Ok(AuthPolicy::None),
            _ => Err(ParseChoiceError {
                what: "auth policy",
                value: s.to_owned(),
                expected: "digest, basic or none",
            }),
        }
    }
}

impl fmt::Display for AuthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One camera's observable state, as the control API serves it.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DeviceSnapshot {
    pub address: String,
    pub ssh_enabled: bool,
    /// Every HTTP request received, challenged and refused ones included.
    pub requests: u64,
    /// Every connection accepted on its SSH port.
    pub ssh_connections: u64,
    /// Every request whose credentials were wrong: the failed logins in its log.
    pub failed_logins: u64,
    /// Every successful SSH write (ssh.cgi or param.cgi), oldest first.
    pub writes: Vec<WriteEvent>,
}

/// One successful write of the SSH state.
#[derive(serde::Serialize, Clone, Debug, PartialEq, Eq)]
pub struct WriteEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The state written (a write of the current state is logged too).
    pub enabled: bool,
}

/// The files [`run`] writes once every camera listens.
#[derive(Clone, Debug, Default)]
pub struct OutputFiles {
    /// An inventory CSV any `scan` accepts.
    pub inventory: Option<PathBuf>,
    /// What a correct scan reports per camera (JSONL).
    pub truth: Option<PathBuf>,
    /// The fleet CA (PEM); an error unless the fleet serves HTTPS.
    pub ca: Option<PathBuf>,
}

/// Starts a fleet — in this process, or across worker processes when `workers` says it does
/// not fit one — writes the requested files, calls `ready` with the ready line once everything
/// listens, and serves until `shutdown` fires.
pub async fn run(
    cfg: SimConfig,
    files: OutputFiles,
    workers: Option<WorkerPlan>,
    shutdown: sshfleet_core::shutdown::Shutdown,
    ready: impl FnOnce(&str),
) -> io::Result<()> {
    match workers {
        Some(plan) if plan.splits(fleet::fleet_len(&cfg)) => {
            split::run(cfg, plan, files, shutdown, ready).await
        }
        _ => run_in_process(cfg, files, shutdown, ready).await,
    }
}

async fn run_in_process(
    cfg: SimConfig,
    files: OutputFiles,
    mut shutdown: sshfleet_core::shutdown::Shutdown,
    ready: impl FnOnce(&str),
) -> io::Result<()> {
    let fleet = Fleet::start(cfg).await?;
    if let Some(path) = &files.inventory {
        write_file(path, |w| fleet.write_inventory(w))?;
    }
    if let Some(path) = &files.truth {
        write_file(path, |w| fleet.write_truth(w))?;
    }
    write_ca(files.ca.as_deref(), fleet.ca_pem().as_deref())?;
    ready(&fleet.ready_line());
    shutdown.wait().await;
    fleet.shutdown().await;
    Ok(())
}

/// `ready devices=N[ control=URL][ equinix=URL]`: the one line `sshfleet sim` prints once
/// every listener is up.
fn ready_line(devices: usize, control: Option<&str>, equinix: Option<&str>) -> String {
    let mut line = format!("ready devices={devices}");
    if let Some(url) = control {
        line.push_str(&format!(" control={url}"));
    }
    if let Some(url) = equinix {
        line.push_str(&format!(" equinix={url}"));
    }
    line
}

/// Writes the CA to `path` when asked for; asking without HTTPS is an error.
fn write_ca(path: Option<&Path>, ca_pem: Option<&str>) -> io::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let pem = ca_pem.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "no CA certificate to write: the simulated fleet is not serving HTTPS",
        )
    })?;
    write_file(path, |w| w.write_all(pem.as_bytes()))
}

/// Writes a file whole: a temporary beside it, renamed into place when complete.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<sshfleet_core::files::Staged>) -> io::Result<()>,
) -> io::Result<()> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut w = BufWriter::new(sshfleet_core::files::Staged::beside(path).map_err(with_path)?);
    write(&mut w).map_err(with_path)?;
    let staged = w.into_inner().map_err(|e| with_path(e.into_error()))?;
    staged.commit().map_err(with_path)
}

#[cfg(test)]
mod tests;
