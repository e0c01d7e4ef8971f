//! One device's work: its credentials and session, and one overall deadline that its read,
//! write and read-back all spend from. Scans and remediation both go through a
//! [`DeviceContext`]; what it saw (requests, TLS, realm serial, timing) goes into the record
//! through [`DeviceContext::record`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::waivers::Waivers;
use sshfleet_axis::probe::ProbeSettings;
use sshfleet_axis::vapix::{
    self, deviceinfo, CallError, Connection, DeviceSession, Failure, SessionPolicy, SshReading,
};
use sshfleet_core::model::SshState;
use sshfleet_core::secret::Secret;
use sshfleet_inventory::Device;
use sshfleet_net::auth::Credentials;
use sshfleet_net::breaker::{Account, BreakerMode, CredentialVerdict, PasswordOrigin};
use sshfleet_net::{HttpClient, HttpError};
use sshfleet_report::{DeviceRecord, Status};

/// Everything a scan needs besides the devices.
#[derive(Clone)]
pub struct ScanSettings {
    pub concurrency: usize,
    pub credentials: Credentials,
    /// Passwords of the inventory's `password_env` columns, resolved once at start.
    pub row_passwords: HashMap<String, Secret>,
    /// Where `credentials.password` came from, for messages: `the environment variable X`.
    pub password_from: String,
    /// Whether an account the first devices all rejected stops being tried.
    pub auth_breaker: BreakerMode,
    pub policy: SessionPolicy,
    /// The desired state where a row gives none.
    pub expect: Option<SshState>,
    /// How long in-flight devices may take to finish after a stop request.
    pub grace: Duration,
    /// Accountable exceptions (`--waivers`), applied to every judged record.
    pub waivers: Option<Arc<Waivers>>,
    /// Probe each device's SSH port too (`--probe-ssh`); `None`: no extra connection.
    pub probe: Option<ProbeSettings>,
    /// Read model, firmware and serial from `basicdeviceinfo.cgi` too (`--device-info`): one
    /// more request per device.
    pub device_info: bool,
    /// What each device's AXIS OS version is matched against (with `device_info`).
    pub advisories: Option<Arc<sshfleet_axis::advisories::Advisories>>,
}

/// The whole-device time: enough for every request and retry of a read and a write, then no
/// more. Waiting for a write permit (the run's rate limit) is not the device's time.
pub(crate) fn device_time(per_request: Duration, settings: &ScanSettings) -> Duration {
    let retries = settings.policy.retries;
    let backoff = settings.policy.throttle_backoff * 6 / 5;
    per_request * (4 + 2 * retries) + backoff * retries
}

/// One device, talked to one request at a time under one deadline.
pub struct DeviceContext<'a> {
    device: &'a Device,
    settings: &'a ScanSettings,
    session: DeviceSession<'a>,
    started: Instant,
    /// The device's whole time, for the timeout it ends with.
    time: Duration,
}

impl<'a> DeviceContext<'a> {
    /// Starts the device's clock now.
    pub fn new(http: &'a HttpClient, settings: &'a ScanSettings, device: &'a Device) -> Self {
        let time = device_time(http.timeout(), settings);
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(time).unwrap_or(now);
        let session = DeviceSession::new(
            http,
            &settings.policy,
            credentials(settings, device),
            device.target.base_url(),
            deadline,
        );
        DeviceContext {
            device,
            settings,
            session,
            started: Instant::now(),
            time,
        }
    }

    pub fn device(&self) -> &Device {
        self.device
    }

    /// The SSH state, through ssh.cgi or param.cgi.
    pub async fn read(&mut self, after: Connection) -> Result<SshReading, Failure> {
        let deadline = self.session.deadline();
        let read = vapix::read_ssh_state(&mut self.session, after);
        within(deadline, self.time, read).await
    }

    /// Model, firmware and serial from `basicdeviceinfo.cgi`.
    pub async fn facts(&mut self) -> Result<deviceinfo::DeviceFacts, Failure> {
        let deadline = self.session.deadline();
        let read = deviceinfo::read_device_facts(&mut self.session, Connection::Close);
        within(deadline, self.time, read).await
    }

    /// The state again, read the way `reading` was.
    pub async fn read_back(
        &mut self,
        reading: &SshReading,
        after: Connection,
    ) -> Result<bool, Failure> {
        let deadline = self.session.deadline();
        let read = vapix::read_back(&mut self.session, reading, after);
        within(deadline, self.time, read).await
    }

    /// Sets SSH on or off through the API `reading` came from; never sent twice.
    pub async fn write(&mut self, reading: &SshReading, enabled: bool) -> Result<(), Failure> {
        let deadline = self.session.deadline();
        let write = vapix::write_ssh_state(&mut self.session, reading, enabled);
        within(deadline, self.time, write).await
    }

    /// Gives back the time spent waiting for a write permit: the run's rate limit is not
    /// the device's time, so the write and its read-back keep what the read left.
    pub(crate) fn excuse(&mut self, waited: Duration) {
        let deadline = self.session.deadline();
        let later = deadline.checked_add(waited).unwrap_or(deadline);
        self.session.renew_deadline(later);
    }

    /// What the device made of the credentials it was sent.
    pub fn credential_verdict(&self) -> CredentialVerdict {
        self.session.credential_verdict()
    }

    /// A record of this device carrying what the session saw (requests, TLS, realm serial,
    /// timing) and the state expected of it; its status comes with its finding.
    pub fn record(&self) -> DeviceRecord {
        let session = &self.session;
        let mut record = DeviceRecord::for_device(self.device, Status::Ok);
        record.expect = self.device.expect.or(self.settings.expect);
        record.attempts = session.attempts;
        record.http_status = session.last_status;
        record.tls_fingerprint = session.fingerprint.map(|f| f.to_string());
        record.serial = session.serial.clone();
        record.elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        record
    }
}

/// The row's account, else the run's; the row's `password_env` password, else the run's.
fn credentials(settings: &ScanSettings, device: &Device) -> Credentials {
    let defaults = &settings.credentials;
    Credentials {
        username: device
            .username
            .clone()
            .unwrap_or_else(|| defaults.username.clone()),
        password: device
            .password_env
            .as_ref()
            .and_then(|var| settings.row_passwords.get(var))
            .cloned()
            .unwrap_or_else(|| defaults.password.clone()),
    }
}

/// The account a device is talked to with: its row's user name and `password_env`, else
/// the run's.
pub fn account(settings: &ScanSettings, device: &Device) -> Account {
    let row_variable = device
        .password_env
        .as_ref()
        .filter(|var| settings.row_passwords.contains_key(*var));
    Account {
        username: device
            .username
            .clone()
            .unwrap_or_else(|| settings.credentials.username.clone()),
        password: match row_variable {
            Some(var) => PasswordOrigin::RowVariable(var.clone()),
            None => PasswordOrigin::Run(settings.password_from.clone()),
        },
    }
}

/// Runs one step until the device's deadline; overrunning it is a `timeout` of the device's
/// whole `time`.
async fn within<T>(
    deadline: tokio::time::Instant,
    time: Duration,
    step: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    tokio::time::timeout_at(deadline, step)
        .await
        .unwrap_or(Err(Failure::Call(CallError::Http(HttpError::Timeout(
            time,
        )))))
}

#[cfg(test)]
mod tests {
    //! One device's context against in-process simulated cameras on loopback, in paused
    //! time; what a camera holds afterwards is asked of the simulator.

    use super::*;
    use crate::test_support::{client, fleet, scan_settings as settings, TestResult};
    use sshfleet_sim::{DeviceSpec, Fault};

    #[tokio::test(start_paused = true)]
    async fn a_read_write_and_read_back_leave_the_camera_as_written_once() -> TestResult {
        let (fleet, rows) = fleet(vec![DeviceSpec::clean(true)]).await?;
        let (http, settings) = (client()?, settings());
        let device = rows.devices().next().ok_or("no device")?;
        let mut ctx = DeviceContext::new(&http, &settings, &device);
        let reading = ctx.read(Connection::KeepAlive).await?;
        assert!(reading.enabled);
        ctx.write(&reading, false).await?;
        assert!(!ctx.read_back(&reading, Connection::Close).await?);
        let camera = &fleet.snapshot()[0];
        assert!(!camera.ssh_enabled, "the camera holds SSH off");
        assert_eq!(camera.writes.len(), 1, "one write, never sent twice");
        assert_eq!(ctx.record().status, Status::Ok);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_for_a_write_permit_is_given_back_to_the_device() -> TestResult {
        let (_fleet, rows) = fleet(vec![DeviceSpec::clean(true)]).await?;
        let (http, settings) = (client()?, settings());
        let device = rows.devices().next().ok_or("no device")?;
        let mut ctx = DeviceContext::new(&http, &settings, &device);
        let before = ctx.session.deadline();
        ctx.excuse(Duration::from_secs(120));
        assert_eq!(ctx.session.deadline() - before, Duration::from_secs(120));
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_camera_that_never_answers_times_out_within_the_device_time() -> TestResult {
        let hang = DeviceSpec {
            fault: Fault::Hang,
            ..DeviceSpec::clean(true)
        };
        let (_fleet, rows) = fleet(vec![hang]).await?;
        let (http, settings) = (client()?, settings());
        let device = rows.devices().next().ok_or("no device")?;
        let mut ctx = DeviceContext::new(&http, &settings, &device);
        let started = tokio::time::Instant::now();
        let failure = match ctx.read(Connection::Close).await {
            Ok(reading) => return Err(format!("read from a hung camera: {reading:?}").into()),
            Err(failure) => failure,
        };
        assert!(
            matches!(
                failure,
                Failure::Call(CallError::Http(HttpError::Timeout(_)))
            ),
            "{failure}"
        );
        let spent = started.elapsed();
        assert!(spent <= device_time(http.timeout(), &settings), "{spent:?}");
        Ok(())
    }
}
