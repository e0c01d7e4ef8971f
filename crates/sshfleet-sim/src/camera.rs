//! One virtual camera: its SSH state, counters and write log, and how it answers a request
//! (brute-force block, authentication gate, routing to the CGIs, payload faults).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{Guard, Scheme};
use super::digest::Clock;
use super::spec::ParamStyle;
use super::spec::{DeviceSpec, Fault};
use super::{DeviceSnapshot, WriteEvent};
use sshfleet_core::secret::Secret;

/// Fleet-wide settings every camera answers with.
#[derive(Debug)]
pub(crate) struct Settings {
    pub username: String,
    pub nonce_secret: [u8; 16],
    pub nonce_lifetime: Duration,
    pub clock: Clock,
}

/// When a request arrived. Credentials are judged at this moment (Apache's auth phase runs
/// before any slow processing); challenge nonces are stamped when the answer is made.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    pub at: Instant,
    pub at_us: u64,
}

impl Arrival {
    pub(crate) fn now(clock: &Clock) -> Arrival {
        Arrival {
            at: Instant::now(),
            at_us: clock.now_us(),
        }
    }
}

/// Size of the body an `Oversized` camera sends.
pub(super) const OVERSIZED_BYTES: usize = 4 * 1024 * 1024;

/// Arrival times kept per camera (the latest ones), for tests that measure a client's pauses.
const ARRIVALS_KEPT: usize = 16;

#[derive(Debug)]
pub(crate) struct Camera {
    pub address: String,
    pub spec: DeviceSpec,
    pub scheme: Scheme,
    pub realm: String,
    /// What `basicdeviceinfo.cgi` answers; `None`: it has none (404).
    pub facts: Option<super::roster::Facts>,
    /// The password this camera accepts (not the fleet's for `WrongPassword`).
    pub(super) password: Secret,
    pub param_style: ParamStyle,
    /// Extra delay before every response of a `Slow` camera.
    pub slow_delay: Duration,
    /// What its SSH server offers and the host key it shows, when it answers; its key
    /// changes with the key epoch ([`Camera::set_key_epoch`]).
    ssh_server: Mutex<super::sshkex::SshServer>,
    /// The SSH state; its SSH port follows it through [`Camera::watch_ssh`].
    pub(super) ssh_enabled: watch::Sender<bool>,
    requests: AtomicU64,
    /// When the latest requests arrived, oldest first; at most [`ARRIVALS_KEPT`].
    arrivals: Mutex<VecDeque<Instant>>,
    ssh_connections: AtomicU64,
    /// Requests whose credentials were wrong (what the camera's log would show).
    pub(super) failed_logins: AtomicU64,
    writes: Mutex<Vec<WriteEvent>>,
    pub(super) guard: Guard,
}

/// The per-camera choices that are not part of [`DeviceSpec`].
pub(crate) struct Identity {
    pub address: String,
    pub realm: String,
    pub facts: Option<super::roster::Facts>,
    pub scheme: Scheme,
    pub password: Secret,
    pub param_style: ParamStyle,
    pub slow_delay: Duration,
    pub ssh_server: super::sshkex::SshServer,
}

impl Camera {
    pub(crate) fn new(spec: DeviceSpec, id: Identity) -> Camera {
        Camera {
            address: id.address,
            ssh_enabled: watch::Sender::new(spec.ssh_enabled),
            spec,
            scheme: id.scheme,
            realm: id.realm,
            facts: id.facts,
            password: id.password,
            param_style: id.param_style,
            slow_delay: id.slow_delay,
            ssh_server: Mutex::new(id.ssh_server),
            requests: AtomicU64::new(0),
            arrivals: Mutex::new(VecDeque::new()),
            ssh_connections: AtomicU64::new(0),
            failed_logins: AtomicU64::new(0),
            writes: Mutex::new(Vec::new()),
            guard: Guard::default(),
        }
    }

    pub(crate) fn ssh_enabled(&self) -> bool {
        *self.ssh_enabled.borrow()
    }

    /// The SSH state, to wait for its changes.
    pub(crate) fn watch_ssh(&self) -> watch::Receiver<bool> {
        self.ssh_enabled.subscribe()
    }

    /// Changes the state without recording a write (a test hook).
    /// Its SSH server as it is now.
    pub(crate) fn ssh_server(&self) -> super::sshkex::SshServer {
        *self
            .ssh_server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves its SSH server to key epoch `epoch` (a re-flashed camera shows a new key).
    pub(crate) fn set_key_epoch(&self, epoch: u16) {
        let mut server = self
            .ssh_server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *server = server.at_epoch(epoch);
    }

    pub(crate) fn set_ssh_enabled(&self, enabled: bool) {
        self.ssh_enabled
            .send_if_modified(|now| std::mem::replace(now, enabled) != enabled);
    }

    /// A successful write through ssh.cgi or param.cgi: change the state and log it (a
    /// camera that ignores writes only logs it).
    pub(crate) fn write_ssh(&self, enabled: bool) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        if self.spec.fault != Fault::IgnoresWrites {
            self.set_ssh_enabled(enabled);
        }
        writes.push(WriteEvent { at_ms, enabled });
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        if arrivals.len() == ARRIVALS_KEPT {
            arrivals.pop_front();
        }
        arrivals.push_back(Instant::now());
    }

    /// When the latest requests (up to 16) arrived, oldest first.
    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        arrivals.iter().copied().collect()
    }

    pub(crate) fn count_ssh_connection(&self) {
        self.ssh_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DeviceSnapshot {
        let writes = self
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        DeviceSnapshot {
            address: self.address.clone(),
            ssh_enabled: self.ssh_enabled(),
            requests: self.requests.load(Ordering::Relaxed),
            ssh_connections: self.ssh_connections.load(Ordering::Relaxed),
            failed_logins: self.failed_logins.load(Ordering::Relaxed),
            writes,
        }
    }
}

/// A camera without authentication for unit tests: `fault` and `firmware` on a clean spec.
#[cfg(test)]
pub(super) fn test_camera(
    fault: Fault,
    firmware: super::spec::Firmware,
    ssh_enabled: bool,
) -> Camera {
    let spec = DeviceSpec {
        fault,
        firmware,
        ..DeviceSpec::clean(ssh_enabled)
    };
    let id = Identity {
        address: "127.0.0.1:1".to_owned(),
        realm: "AXIS_ACCC8E000001".to_owned(),
        facts: super::roster::facts(0, firmware),
        scheme: super::auth::Scheme::None,
        password: sshfleet_core::secret::Secret::new("pass"),
        param_style: ParamStyle::default(),
        slow_delay: Duration::ZERO,
        ssh_server: super::sshkex::SshServer::for_camera(0, 0),
    };
    Camera::new(spec, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Request, Response};
    use crate::spec::Firmware;
    use bytes::Bytes;

    fn camera(fault: Fault, firmware: Firmware) -> Camera {
        test_camera(fault, firmware, true)
    }

    fn settings() -> Settings {
        Settings {
            username: "root".to_owned(),
            nonce_secret: [7; 16],
            nonce_lifetime: Duration::from_secs(300),
            clock: Clock::start(),
        }
    }

    fn request(method: &str, target: &str, body: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: super::super::http::Body::Full(Bytes::copy_from_slice(body.as_bytes())),
            keep_alive: true,
        }
    }

    fn answer(cam: &Camera, req: &Request) -> Response {
        let s = settings();
        super::super::router::respond(cam, &s, req, Arrival::now(&s.clock))
    }

    const INFO: &str = r#"{"apiVersion":"1.0","method":"getSshInfo"}"#;

    #[tokio::test]
    async fn routes_by_path_and_method() {
        let cam = camera(Fault::None, Firmware::Modern);
        assert_eq!(
            answer(&cam, &request("POST", "/axis-cgi/ssh.cgi", INFO)).status,
            200
        );
        assert_eq!(
            answer(&cam, &request("GET", "/axis-cgi/ssh.cgi", "")).status,
            405
        );
        assert_eq!(answer(&cam, &request("GET", "/index.html", "")).status, 404);
        assert_eq!(
            answer(&cam, &request("GET", "/axis-cgi/nope.cgi", "")).status,
            404
        );
        let old = camera(Fault::None, Firmware::ParamOnly);
        assert_eq!(
            answer(&old, &request("POST", "/axis-cgi/ssh.cgi", INFO)).status,
            404
        );
    }

    #[tokio::test]
    async fn payload_faults_spoil_only_successful_answers() {
        let req = request("POST", "/axis-cgi/ssh.cgi", INFO);
        let malformed = answer(&camera(Fault::MalformedJson, Firmware::Modern), &req);
        assert!(serde_json::from_slice::<serde_json::Value>(&malformed.body).is_err());
        let big = answer(&camera(Fault::Oversized, Firmware::Modern), &req);
        assert_eq!(big.body.len(), OVERSIZED_BYTES);
        assert!(serde_json::from_slice::<serde_json::Value>(&big.body).is_ok());
        assert!(answer(&camera(Fault::Reset, Firmware::Modern), &req).reset_midway);
        let throttled = answer(&camera(Fault::Throttled, Firmware::Modern), &req);
        assert_eq!(throttled.status, 403);
    }

    #[test]
    fn writes_are_logged_but_test_hook_changes_are_not() {
        let cam = camera(Fault::None, Firmware::Modern);
        cam.set_ssh_enabled(false);
        cam.write_ssh(true);
        let snap = cam.snapshot();
        assert!(snap.ssh_enabled);
        assert_eq!(snap.writes.len(), 1);
        assert!(snap.writes[0].enabled && snap.writes[0].at_ms > 1_600_000_000_000);
    }
}
