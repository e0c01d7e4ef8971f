//! Resolved settings: what a command was asked to do, as plain values (no clap types), and
//! the one step that does the effects of starting a device run — reading the password and
//! the inventory, taking the shard, raising the open-file limit, building the client — and
//! hands out the engine objects. The CLI resolves flags into these (`cli::resolve`); the demo
//! and the benches build them directly.

use std::collections::HashMap;
use std::ffi::OsString;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::remediate::WriteLimits;
use crate::scan::{ScanSettings, Scanner};
use sshfleet_axis::probe::{ProbeSettings, SshPolicy};
use sshfleet_axis::vapix::{session, SessionPolicy};
use sshfleet_core::rate::Rate;
use sshfleet_core::secret::Secret;
use sshfleet_inventory as inventory;
use sshfleet_inventory::{InventoryOptions, Limit, RowError, Rows, Scheme, Shard};
use sshfleet_net::auth::{BasicOverHttp, Credentials};
use sshfleet_net::breaker::BreakerMode;
use sshfleet_net::tls::{Pins, TrustSettings};
use sshfleet_net::{ClientSettings, HttpClient};
use sshfleet_report::{DeviceRecord, Schema, SshState};
use sshfleet_rollout::waves::{Budget, Waves};
use sshfleet_rollout::window::Window;

/// Defaults shared by the flags and by settings built in code.
pub const DEFAULT_CONCURRENCY: usize = 256;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub(crate) const DEFAULT_USERNAME: &str = "root";

/// The process environment, injected so that resolution can be tested without touching it.
pub trait Env {
    fn var_os(&self, name: &str) -> Option<OsString>;

    /// Whether a person is there to answer (stdin and stderr are terminals).
    fn interactive(&self) -> bool {
        false
    }
}

/// The real environment of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var_os(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    /// A person can be asked: stdin is a terminal and the controlling terminal opens (the
    /// question is asked there, so `2>&1 | tee log` still asks).
    fn interactive(&self) -> bool {
        use std::io::IsTerminal as _;
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty");
        std::io::stdin().is_terminal() && tty.is_ok()
    }
}

/// A fixed environment (tests, the demo).
impl Env for HashMap<String, String> {
    fn var_os(&self, name: &str) -> Option<OsString> {
        self.get(name).map(OsString::from)
    }
}

/// A fixed environment of these variables (tests of this crate and of the command line).
pub fn test_env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Where the default password comes from. It never comes from argv (it would show in `ps`
/// and in shell history).
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// The first line of this file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// Known already (the demo's simulator).
    Given(Secret),
}

impl PasswordSource {
    /// Where the password comes from, for messages (never the password).
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::File(path) => format!("the file {} (--password-file)", path.display()),
            PasswordSource::Env(var) => format!("the environment variable {var}"),
            PasswordSource::Given(_) => "the password given".to_owned(),
        }
    }
}

/// How devices are reached, trusted and judged: everything a device run needs.
#[derive(Clone, Debug)]
pub struct DeviceSettings {
    pub inventory: PathBuf,
    /// The inventory's address column, when not `address` or a usual other name.
    pub address_column: Option<String>,
    /// Scheme for addresses that do not say.
    pub scheme: Scheme,
    /// Deadline of each request.
    pub timeout: Duration,
    pub concurrency: usize,
    /// Extra tries after a transient failure.
    pub retries: u32,
    /// Account used where a row names none.
    pub username: String,
    pub password: PasswordSource,
    pub ca_file: Option<PathBuf>,
    pub pin_file: Option<PathBuf>,
    pub insecure: bool,
    pub allow_basic_http: bool,
    /// Desired state where a row gives none.
    pub expect: Option<SshState>,
    /// This run's part of the inventory.
    pub shard: Option<Shard>,
    /// `--limit`: the devices of the shard this run covers (none: all of them).
    pub limit: Option<Limit>,
    pub probe_ssh: bool,
    /// `--ssh-policy`: what grades the SSH evidence `--probe-ssh` reads (none: the built-in
    /// baseline).
    pub ssh_policy: Option<PathBuf>,
    pub device_info: bool,
    /// `--advisories`: a file that extends or replaces the built-in advisories (with
    /// `device_info`).
    pub advisories: Option<PathBuf>,
    /// Stop using an account that the first devices reached all rejected.
    pub auth_breaker: BreakerMode,
}

impl DeviceSettings {
    /// The defaults of the flags, for `inventory` and `password`.
    pub fn new(inventory: PathBuf, password: PasswordSource) -> DeviceSettings {
        DeviceSettings {
            inventory,
            address_column: None,
            scheme: Scheme::Http,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            retries: 1,
            username: DEFAULT_USERNAME.to_owned(),
            password,
            ca_file: None,
            pin_file: None,
            insecure: false,
            allow_basic_http: false,
            expect: None,
            shard: None,
            limit: None,
            probe_ssh: false,
            ssh_policy: None,
            device_info: false,
            advisories: None,
            auth_breaker: BreakerMode::default(),
        }
    }

    /// Does the effects of starting a run: reads the password and the inventory, keeps this
    /// shard's rows, resolves the rows' `password_env` variables, fits the concurrency to the
    /// open-file limit and builds the client. Any error here is an input error: nothing was
    /// sent yet.
    pub fn build(&self, env: &dyn Env) -> anyhow::Result<PreparedScan> {
        if self.timeout.is_zero() {
            bail!("--timeout must be greater than zero");
        }
        let password = read_password(&self.password, env)?;
        let options = InventoryOptions {
            default_scheme: self.scheme,
            address_column: self.address_column.clone(),
        };
        let mut inventory = inventory::load(&self.inventory, &options)?;
        if let Some(shard) = self.shard {
            inventory.retain_shard(shard);
        }
        let mut warnings = std::mem::take(&mut inventory.warnings);
        let row_passwords = resolve_row_passwords(&mut inventory.rows, env);
        let invalid = inventory.rows.take_invalid();
        let invalid: Vec<DeviceRecord> = invalid.iter().map(DeviceRecord::from_invalid).collect();
        let full_fingerprint = self.narrow(&mut inventory);
        let (concurrency, warning) = fit_concurrency(self.concurrency);
        warnings.extend(warning);
        tracing::info!(
            devices = inventory.rows.len(),
            invalid = invalid.len(),
            concurrency,
            "inventory loaded"
        );
        let http = HttpClient::new(&self.client_settings()?)?;
        let credentials = Credentials {
            username: self.username.clone(),
            password,
        };
        let mut scan = self.scan_settings(concurrency, credentials, row_passwords, env);
        if let Some(probe) = scan.probe.take() {
            let policy = load_ssh_policy(self.ssh_policy.as_deref())?;
            scan.probe = Some(probe.with_evidence(Arc::new(policy)));
        }
        if self.device_info {
            let advisories = crate::advisories::load(self.advisories.as_deref())?;
            scan.advisories = Some(Arc::new(advisories));
        }
        Ok(PreparedScan {
            scanner: Scanner::new(Arc::new(http), scan),
            devices: inventory.rows,
            invalid,
            extra_columns: inventory.extra_columns,
            shard: self.shard,
            full_fingerprint,
            limit: self.limit.clone(),
            warnings,
            desired_state_given: self.expect.is_some() || inventory.any_expect,
        })
    }

    /// What the scanner is told (the probe's evidence policy is added by `build`):
    /// concurrency, credentials, session policy, probes.
    fn scan_settings(
        &self,
        concurrency: usize,
        credentials: Credentials,
        row_passwords: HashMap<String, Secret>,
        env: &dyn Env,
    ) -> ScanSettings {
        ScanSettings {
            concurrency,
            credentials,
            row_passwords,
            password_from: self.password.describe(),
            auth_breaker: self.auth_breaker,
            policy: SessionPolicy {
                retries: self.retries,
                basic_over_http: BasicOverHttp::from_flag(self.allow_basic_http),
                throttle_backoff: test_throttle_backoff(env),
                ..SessionPolicy::default()
            },
            expect: self.expect,
            grace: Duration::from_secs(10).min(self.timeout + Duration::from_secs(1)),
            waivers: None,
            probe: self
                .probe_ssh
                .then(|| ProbeSettings::for_timeout(self.timeout)),
            device_info: self.device_info,
            advisories: None,
        }
    }

    /// Keeps the devices `--limit` selects; returns the fingerprint of the devices before,
    /// to which plans and journals are bound whatever part a run covers.
    fn narrow(&self, inventory: &mut inventory::Inventory) -> Option<String> {
        let limit = self.limit.as_ref()?;
        let fingerprint = crate::remediate::inventory_fingerprint(inventory.rows.devices());
        inventory.retain_limit(limit);
        Some(fingerprint)
    }

    fn client_settings(&self) -> anyhow::Result<ClientSettings> {
        let pins = match &self.pin_file {
            Some(path) => Pins::load(path)?,
            None => Pins::default(),
        };
        Ok(ClientSettings {
            timeout: self.timeout,
            trust: TrustSettings {
                ca_file: self.ca_file.clone(),
                pins,
                insecure: self.insecure,
            },
            ..ClientSettings::default()
        })
    }
}

/// Compliance over time: what the run compares with, what it also writes, what fails it.
#[derive(Clone, Debug, Default)]
pub struct ComplianceSettings {
    /// A previous report of the same scope.
    pub baseline: Option<PathBuf>,
    /// The run history (SQLite file or PostgreSQL URL): records this run, compares with
    /// the previous one.
    pub history: Option<PathBuf>,
    /// Accountable exceptions (TOML).
    pub waivers: Option<PathBuf>,
    pub metrics_out: Option<PathBuf>,
    pub html_out: Option<PathBuf>,
    /// `--summary-out`: the JSON summary.
    pub summary_out: Option<PathBuf>,
    pub fail_on: FailOn,
    /// `--spool`: where a run goes (an SQLite history) when the central `--history` database
    /// cannot be reached.
    pub spool: Option<PathBuf>,
}

impl ComplianceSettings {
    /// Only `--history FILE`.
    pub fn with_history(history: PathBuf) -> ComplianceSettings {
        ComplianceSettings {
            history: Some(history),
            ..ComplianceSettings::default()
        }
    }
}

/// What makes a run exit 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailOn {
    /// Any device non-compliant or not checked.
    #[default]
    Findings,
    /// New exposure since the previous run only.
    Regressions,
    /// Never for findings (errors, interruptions and failed outputs still count).
    Never,
}

/// `remediate`: the device run, the state to bring it to, and how writes are made.
#[derive(Clone, Debug)]
pub struct RemediateSettings {
    pub device: DeviceSettings,
    pub compliance: ComplianceSettings,
    pub target: SshState,
    /// Write for real; else a dry run.
    pub apply: bool,
    /// Confirmation given ahead (`--yes`): no question is asked.
    pub assume_yes: bool,
    /// Refuse a plan that changes more devices.
    pub max_changes: Option<usize>,
    pub limits: WriteLimits,
    /// The journal of the writes (used with `apply`).
    pub journal: PathBuf,
    /// Write the plan of this dry run here.
    pub plan_out: Option<PathBuf>,
    /// Apply exactly this saved plan.
    pub plan: Option<PathBuf>,
    pub plan_max_age: Duration,
    /// An OpenSSH `allowed_signers` file: the saved plan must be signed by one of them.
    pub plan_signers: Option<PathBuf>,
    /// Put back what this journal's run changed.
    pub revert: Option<PathBuf>,
    pub waves: Waves,
    pub max_failures: Option<Budget>,
    pub wave_pause: Duration,
    pub continue_after_failures: bool,
    /// Ask before each wave after the first.
    pub confirm_waves: bool,
    pub window: Option<Window>,
}

impl RemediateSettings {
    /// A dry run to `target` with the flags' defaults.
    pub fn dry_run(device: DeviceSettings, target: SshState) -> RemediateSettings {
        RemediateSettings {
            device,
            compliance: ComplianceSettings::default(),
            target,
            apply: false,
            assume_yes: false,
            max_changes: None,
            limits: WriteLimits {
                rate: Rate::per_second(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)),
                burst: NonZeroU32::MIN,
                site_rate: None,
                jitter: Duration::from_millis(50),
            },
            journal: PathBuf::from("sshfleet-remediate.journal.jsonl"),
            plan_out: None,
            plan: None,
            plan_max_age: Duration::from_secs(24 * 3600),
            plan_signers: None,
            revert: None,
            waves: Waves::default(),
            max_failures: None,
            wave_pause: Duration::ZERO,
            continue_after_failures: false,
            confirm_waves: false,
            window: None,
        }
    }

    /// Whether the planned writes are kept for a later phase (applying them, or writing the
    /// plan file) rather than reported as planned straight away.
    pub fn holds_writes(&self) -> bool {
        self.apply || self.plan_out.is_some()
    }

    /// What planning does with the devices to write (see [`RemediateSettings::holds_writes`]).
    pub fn planning(&self) -> crate::remediate::Planning {
        if self.holds_writes() {
            crate::remediate::Planning::HoldWrites
        } else {
            crate::remediate::Planning::ReportWrites
        }
    }
}

/// A device run ready to go: the scanner, this shard's devices and the rows already judged.
pub struct PreparedScan {
    pub scanner: Scanner,
    /// The devices, parsed one at a time as they are dispatched.
    pub devices: Rows,
    /// Rows judged before the run (invalid, or naming an unset password variable).
    pub invalid: Vec<DeviceRecord>,
    pub extra_columns: Vec<String>,
    pub shard: Option<Shard>,
    /// With `--limit`: the fingerprint of the shard's devices before the limit.
    pub full_fingerprint: Option<String>,
    /// The `--limit` that narrowed `devices`.
    pub limit: Option<Limit>,
    /// Said to the user before the run (unless quiet): inventory warnings, a lowered
    /// concurrency.
    pub warnings: Vec<String>,
    /// `--expect`, or an `expect` value in at least one row: devices can be judged.
    pub desired_state_given: bool,
}

impl PreparedScan {
    /// What plans and journals are bound to: the fingerprint of the shard's devices (all
    /// of them, whatever `--limit` left to this run).
    pub fn fingerprint(&self) -> String {
        match &self.full_fingerprint {
            Some(fingerprint) => fingerprint.clone(),
            None => crate::remediate::inventory_fingerprint(self.devices.devices()),
        }
    }

    /// The report columns of a scan of these devices.
    pub fn schema(&self) -> Schema {
        Schema {
            remediation: false,
            extra_columns: self.extra_columns.clone(),
        }
    }
}

/// The password file's first line, else the environment variable's value.
fn read_password(source: &PasswordSource, env: &dyn Env) -> anyhow::Result<Secret> {
    match source {
        PasswordSource::Given(secret) => Ok(secret.clone()),
        PasswordSource::File(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read password file {}", path.display()))?;
            let line = text.lines().next().unwrap_or_default();
            Ok(Secret::new(line.trim_end_matches('\r')))
        }
        PasswordSource::Env(var) => match env.var_os(var).map(OsString::into_string) {
            Some(Ok(value)) => Ok(Secret::new(value)),
            None => {
                bail!("no password: set the environment variable {var} or pass --password-file")
            }
            Some(Err(_)) => bail!("the environment variable {var} is not valid UTF-8"),
        },
    }
}

/// Reads each `password_env` variable once; rows naming an unset variable become invalid.
fn resolve_row_passwords(rows: &mut Rows, env: &dyn Env) -> HashMap<String, Secret> {
    let mut passwords: HashMap<String, Option<Secret>> = HashMap::new();
    rows.reject(|device| {
        let var = device.password_env.as_ref()?;
        let found = passwords.entry(var.clone()).or_insert_with(|| {
            let value = env.var_os(var)?.into_string().ok()?;
            Some(Secret::new(value))
        });
        found
            .is_none()
            .then(|| RowError::PasswordEnvUnset { var: var.clone() })
    });
    passwords
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

/// The backoff after throttling: the device's, unless a test asks for a shorter one.
fn test_throttle_backoff(env: &dyn Env) -> Duration {
    let value = env.var_os(session::TEST_THROTTLE_BACKOFF_ENV);
    session::throttle_backoff_from(value.as_ref().and_then(|v| v.to_str()))
}

/// Raises the open-file limit and lowers concurrency to what fits, with a warning.
fn fit_concurrency(wanted: usize) -> (usize, Option<String>) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    // Keep room for the runtime, outputs and the simulator when it runs in-process.
    let fits = usize::try_from(limit.saturating_sub(128).max(1)).unwrap_or(usize::MAX);
    if wanted > fits {
        let warning = format!(
            "concurrency {wanted} needs more open files than the limit allows ({limit}); using {fits}"
        );
        return (fits, Some(warning));
    }
    (wanted.max(1), None)
}

/// API pages are far larger than camera answers: 10,000 verbose users fit.
const EQUINIX_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How the Equinix Network Edge API is reached: the endpoint, the credentials, the request
/// deadline and retries, the extra CA, and for writes the rate every change waits for.
#[derive(Clone, Debug)]
pub struct EquinixSettings {
    /// `scheme://host[:port]`, without a path.
    pub endpoint: String,
    pub credentials: sshfleet_equinix::Credentials,
    /// Deadline of each request.
    pub timeout: Duration,
    /// Extra tries after a 429 (or, for idempotent calls, a 5xx or a dropped connection).
    pub retries: u32,
    pub ca_file: Option<PathBuf>,
    /// The write rate limit, for a command that changes users.
    pub writes: Option<WriteRate>,
}

/// Changes allowed: `rate`, after `burst` at once.
#[derive(Clone, Copy, Debug)]
pub struct WriteRate {
    pub rate: Rate,
    pub burst: NonZeroU32,
}

impl EquinixSettings {
    /// Settings for `endpoint` with `credentials` and the flags' defaults (the demo's mock).
    pub fn new(endpoint: String, credentials: sshfleet_equinix::Credentials) -> EquinixSettings {
        EquinixSettings {
            endpoint,
            credentials,
            timeout: ClientSettings::default().timeout,
            retries: sshfleet_net::retry::Backoff::default().retries,
            ca_file: None,
            writes: None,
        }
    }

    /// Whether the endpoint is plain HTTP to a host other than this one: credentials and
    /// tokens would travel in clear.
    pub fn plain_http_to_remote(&self) -> bool {
        let Some(rest) = self.endpoint.strip_prefix("http://") else {
            return false;
        };
        let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        !loopback
    }

    /// The client: `parallel` requests share its pool, and `stop` ends every wait between
    /// retries (API calls and token requests alike).
    pub fn client(
        &self,
        parallel: usize,
        stop: sshfleet_core::shutdown::Shutdown,
    ) -> anyhow::Result<Arc<sshfleet_equinix::EquinixClient>> {
        use sshfleet_equinix::{ClientPolicy, EquinixClient, TokenSource};
        let settings = ClientSettings {
            timeout: self.timeout,
            body_limit: EQUINIX_BODY_LIMIT,
            trust: TrustSettings {
                ca_file: self.ca_file.clone(),
                ..TrustSettings::default()
            },
            max_idle_per_host: parallel.max(1),
        };
        let backoff = sshfleet_net::retry::Backoff {
            retries: self.retries,
            ..sshfleet_net::retry::Backoff::default()
        };
        let http = Arc::new(HttpClient::new(&settings)?);
        let endpoint = self.endpoint.clone();
        let tokens = TokenSource::new(
            http.clone(),
            &endpoint,
            self.credentials.clone(),
            backoff.clone(),
        )
        .with_stop(stop.clone());
        let policy = ClientPolicy {
            backoff,
            write_limiter: self.writes.map(|w| {
                let quota = w.rate.quota().allow_burst(w.burst);
                Arc::new(governor::RateLimiter::direct(quota))
            }),
            stop,
        };
        Ok(Arc::new(EquinixClient::new(
            http,
            endpoint,
            Arc::new(tokens),
            policy,
        )))
    }
}

/// The largest `--ssh-policy` file read.
const MAX_SSH_POLICY_BYTES: u64 = 256 * 1024;

/// Reads `--ssh-policy` (TOML: `matching`, `fail`, `weak`, `allow`, `rsa_fail_below`,
/// `rsa_weak_below`); none gives the built-in baseline. A bad file refuses the run.
fn load_ssh_policy(path: Option<&std::path::Path>) -> anyhow::Result<SshPolicy> {
    let Some(path) = path else {
        return Ok(SshPolicy::baseline());
    };
    let text = match sshfleet_core::files::read_capped(path, MAX_SSH_POLICY_BYTES) {
        Ok(text) => text,
        Err(sshfleet_core::files::CappedError::Io(e)) => {
            bail!("--ssh-policy {}: {e}", path.display())
        }
        Err(sshfleet_core::files::CappedError::TooBig(size)) => bail!(
            "--ssh-policy {}: {size} bytes, more than {MAX_SSH_POLICY_BYTES}",
            path.display()
        ),
    };
    toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "--ssh-policy {}: {}",
            path.display(),
            sshfleet_core::inert::message(&e.to_string())
        )
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    use super::test_env as env;

    #[test]
    fn the_password_comes_from_its_file_first_line_or_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\r\nignored\n").unwrap();
        let none = env(&[]);
        let from_file = read_password(&PasswordSource::File(file), &none).unwrap();
        assert_eq!(from_file.expose(), "s3cret");
        let vars = env(&[("PW", "from-env")]);
        let from_env = read_password(&PasswordSource::Env("PW".into()), &vars).unwrap();
        assert_eq!(from_env.expose(), "from-env");
        let missing = read_password(&PasswordSource::Env("PW".into()), &none).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "no password: set the environment variable PW or pass --password-file"
        );
    }

    #[test]
    fn rows_naming_an_unset_variable_become_invalid_records_and_the_rest_get_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.csv");
        std::fs::write(
            &path,
            "address,password_env\n10.0.0.1,CAM_A\n10.0.0.2,CAM_B\n10.0.0.3,\n",
        )
        .unwrap();
        let mut settings = DeviceSettings::new(path, PasswordSource::Given(Secret::new("p")));
        settings.concurrency = 4;
        let prepared = settings.build(&env(&[("CAM_A", "a-pass")])).unwrap();
        assert_eq!(prepared.devices.len(), 2);
        assert_eq!(prepared.invalid.len(), 1);
        let rejected = &prepared.invalid[0];
        assert_eq!(rejected.address, "10.0.0.2");
        assert_eq!(rejected.status, sshfleet_core::model::Status::Invalid);
        assert_eq!(
            rejected.error.as_deref(),
            Some("line 3: password_env CAM_B is not set in the environment")
        );
    }

    #[test]
    fn a_zero_timeout_is_refused_before_anything_is_read() {
        let mut settings = DeviceSettings::new(
            PathBuf::from("/no/such/inventory.csv"),
            PasswordSource::Env("UNSET".into()),
        );
        settings.timeout = Duration::ZERO;
        let err = settings.build(&env(&[])).err().unwrap();
        assert_eq!(err.to_string(), "--timeout must be greater than zero");
    }
}
