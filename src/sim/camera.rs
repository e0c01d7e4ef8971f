//! One virtual camera: its SSH state, counters and write log, and how it answers a request
//! (brute-force block, authentication gate, routing to the CGIs, payload faults).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{Authority, Guard, Scheme, Verdict};
use super::digest::Clock;
use super::http::{Request, Response};
use super::paramcgi::{self, ParamStyle};
use super::spec::{DeviceSpec, Fault};
use super::sshcgi;
use super::{DeviceSnapshot, WriteEvent};
use crate::secret::Secret;

/// Fleet-wide settings every camera answers with.
#[derive(Debug)]
pub struct Settings {
    pub username: String,
    pub nonce_secret: [u8; 16],
    pub nonce_lifetime: Duration,
    pub clock: Clock,
}

/// When a request arrived. Credentials are judged at this moment (Apache's auth phase runs
/// before any slow processing); challenge nonces are stamped when the answer is made.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub at: Instant,
    pub at_us: u64,
}

impl Arrival {
    pub fn now(clock: &Clock) -> Arrival {
        Arrival {
            at: Instant::now(),
            at_us: clock.now_us(),
        }
    }
}

/// Size of the body an `Oversized` camera sends.
const OVERSIZED_BYTES: usize = 4 * 1024 * 1024;

/// Arrival times kept per camera (the latest ones), for tests that measure a client's pauses.
const ARRIVALS_KEPT: usize = 16;

#[derive(Debug)]
pub struct Camera {
    pub address: String,
    pub spec: DeviceSpec,
    pub scheme: Scheme,
    pub realm: String,
    /// What `basicdeviceinfo.cgi` answers; `None`: it has none (404).
    pub facts: Option<super::roster::Facts>,
    /// The password this camera accepts (not the fleet's for `WrongPassword`).
    password: Secret,
    pub param_style: ParamStyle,
    /// Extra delay before every response of a `Slow` camera.
    pub slow_delay: Duration,
    /// What its SSH server offers and the host key it shows, when it answers.
    pub ssh_server: super::sshkex::SshServer,
    /// The SSH state; its SSH port follows it through [`Camera::watch_ssh`].
    ssh_enabled: watch::Sender<bool>,
    requests: AtomicU64,
    /// When the latest requests arrived, oldest first; at most [`ARRIVALS_KEPT`].
    arrivals: Mutex<VecDeque<Instant>>,
    ssh_connections: AtomicU64,
    /// Requests whose credentials were wrong (what the camera's log would show).
    failed_logins: AtomicU64,
    writes: Mutex<Vec<WriteEvent>>,
    guard: Guard,
}

/// The per-camera choices that are not part of [`DeviceSpec`].
pub struct Identity {
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
    pub fn new(spec: DeviceSpec, id: Identity) -> Camera {
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
            ssh_server: id.ssh_server,
            requests: AtomicU64::new(0),
            arrivals: Mutex::new(VecDeque::new()),
            ssh_connections: AtomicU64::new(0),
            failed_logins: AtomicU64::new(0),
            writes: Mutex::new(Vec::new()),
            guard: Guard::default(),
        }
    }

    pub fn ssh_enabled(&self) -> bool {
        *self.ssh_enabled.borrow()
    }

    /// The SSH state, to wait for its changes.
    pub fn watch_ssh(&self) -> watch::Receiver<bool> {
        self.ssh_enabled.subscribe()
    }

    /// Changes the state without recording a write (a test hook).
    pub fn set_ssh_enabled(&self, enabled: bool) {
        self.ssh_enabled
            .send_if_modified(|now| std::mem::replace(now, enabled) != enabled);
    }

    /// A successful write through ssh.cgi or param.cgi: change the state and log it (a
    /// camera that ignores writes only logs it).
    pub fn write_ssh(&self, enabled: bool) {
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

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        if arrivals.len() == ARRIVALS_KEPT {
            arrivals.pop_front();
        }
        arrivals.push_back(Instant::now());
    }

    /// When the latest requests (up to 16) arrived, oldest first.
    pub fn arrivals(&self) -> Vec<Instant> {
        let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        arrivals.iter().copied().collect()
    }

    pub fn count_ssh_connection(&self) {
        self.ssh_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DeviceSnapshot {
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

    /// The answer to one request, made after the latency pause; transport faults come later.
    pub fn respond(&self, settings: &Settings, req: &Request, arrival: Arrival) -> Response {
        if self.spec.fault == Fault::Throttled || self.guard.is_blocked(arrival.at) {
            return Response::plain_status(403);
        }
        if self.spec.fault == Fault::ThrottledLong {
            return Response::plain_status(429).with_header("Retry-After", "999999");
        }
        let path = req.path();
        if path == "/axis-cgi/apidiscovery.cgi" {
            return self.inject_fault(sshcgi::discovery(self, req));
        }
        if !path.starts_with("/axis-cgi/") {
            return Response::plain_status(404);
        }
        if let Some(denied) = self.authenticate(settings, req, arrival) {
            return denied;
        }
        let response = match path {
            "/axis-cgi/ssh.cgi" if self.spec.firmware.has_ssh_cgi() => {
                only(req, "POST", || sshcgi::handle(self, req))
            }
            "/axis-cgi/param.cgi" => only(req, "GET", || paramcgi::handle(self, req)),
            "/axis-cgi/basicdeviceinfo.cgi" => {
                only(req, "POST", || super::deviceinfo::handle(self, req))
            }
            _ => Response::plain_status(404),
        };
        self.inject_fault(response)
    }

    /// `None` when the request may proceed, else the 401/400 to send.
    fn authenticate(
        &self,
        settings: &Settings,
        req: &Request,
        arrival: Arrival,
    ) -> Option<Response> {
        let authority = Authority {
            scheme: self.scheme,
            realm: &self.realm,
            username: &settings.username,
            password: self.password.expose(),
            secret: &settings.nonce_secret,
            nonce_lifetime: settings.nonce_lifetime,
            now_us: arrival.at_us,
        };
        let header = req.header("authorization");
        let stale = match authority.verify(&req.method, &req.target, header, &self.guard) {
            Verdict::Pass => return None,
            Verdict::BadRequest => return Some(Response::plain_status(400)),
            Verdict::Challenge { stale } => stale,
            Verdict::Failed => {
                self.failed_logins.fetch_add(1, Ordering::Relaxed);
                self.guard.record_failure(arrival.at);
                false
            }
        };
        let issued_us = settings.clock.now_us();
        let challenge = authority
            .challenge(stale, issued_us, &self.guard)
            .unwrap_or_default();
        let body = "<HTML><HEAD><TITLE>401 Unauthorized</TITLE></HEAD>\
                    <BODY><H1>401 Unauthorized.</H1></BODY></HTML>\n";
        Some(Response::new(401, "text/html", body).with_header("WWW-Authenticate", challenge))
    }

    /// Payload faults hit every CGI answer with status 200.
    fn inject_fault(&self, mut response: Response) -> Response {
        if response.status != 200 {
            return response;
        }
        let is_json = response
            .headers
            .iter()
            .any(|(n, v)| *n == "Content-Type" && v.starts_with("application/json"));
        match self.spec.fault {
            Fault::Reset => response.reset_midway = true,
            Fault::Oversized => response.body = oversized_body(),
            Fault::MalformedJson if is_json => {
                let cut = response.body.len() * 2 / 3;
                response.body = response.body.slice(..cut);
            }
            Fault::ForeignAnswers => response.body = foreign(&response.body, is_json),
            _ => {}
        }
        response
    }
}

/// The answer to someone else's request: another `context` in JSON, and a second, opposite
/// `Network.SSH.Enabled` line in a param.cgi listing.
fn foreign(body: &Bytes, is_json: bool) -> Bytes {
    let text = String::from_utf8_lossy(body);
    if is_json {
        return Bytes::from(text.replace(r#""context":"sshfleet""#, r#""context":"someone-else""#));
    }
    let opposite = if text.contains("Enabled=yes") {
        "no"
    } else {
        "yes"
    };
    match text.lines().find(|l| l.contains("Network.SSH.Enabled=")) {
        Some(line) => {
            let (key, _) = line.split_once('=').unwrap_or((line, ""));
            Bytes::from(format!("{text}{key}={opposite}\r\n"))
        }
        None => body.clone(),
    }
}

/// 405 unless the request uses `method`.
fn only(req: &Request, method: &str, answer: impl FnOnce() -> Response) -> Response {
    if req.method == method {
        answer()
    } else {
        Response::plain_status(405).with_header("Allow", method)
    }
}

/// Valid-looking JSON of [`OVERSIZED_BYTES`], built once and shared.
fn oversized_body() -> Bytes {
    static BODY: OnceLock<Bytes> = OnceLock::new();
    BODY.get_or_init(|| {
        let head =
            r#"{"apiVersion":"1.0","method":"getSshInfo","data":{"enabled":false,"padding":""#;
        let tail = r#""}}"#;
        let mut body = String::with_capacity(OVERSIZED_BYTES);
        body.push_str(head);
        body.push_str(&"A".repeat(OVERSIZED_BYTES - head.len() - tail.len()));
        body.push_str(tail);
        Bytes::from(body)
    })
    .clone()
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
        password: crate::secret::Secret::new("pass"),
        param_style: super::paramcgi::ParamStyle::default(),
        slow_delay: Duration::ZERO,
        ssh_server: super::sshkex::SshServer::for_camera(0, 0),
    };
    Camera::new(spec, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::Firmware;

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
        cam.respond(&s, req, Arrival::now(&s.clock))
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
