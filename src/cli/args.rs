//! Command-line syntax only (clap types). Resolution into settings happens per command.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sshfleet_core::rate::Rate;
use sshfleet_inventory::Shard;
use sshfleet_report::Format;

/// The headings `--help` groups options under, so that `scan --help` and `remediate --help`
/// read by concern rather than as one list of forty flags.
mod heading {
    pub(super) const INVENTORY: &str = "Inventory";
    pub(super) const CONNECTION: &str = "Connection";
    pub(super) const CREDENTIALS: &str = "Credentials and trust";
    pub(super) const EVIDENCE: &str = "Evidence";
    pub(super) const LIMITS: &str = "Limits";
    pub(super) const CHANGE: &str = "Change control";
    pub(super) const WAVES: &str = "Waves and failure budget";
    pub(super) const FINDINGS: &str = "Findings";
    pub(super) const HISTORY: &str = "History and comparison";
    pub(super) const OUTPUT: &str = "Output";
}

/// Audit and remediate SSH exposure across fleets of Axis cameras and Equinix Network Edge
/// SSH users.
#[derive(Debug, Parser)]
#[command(name = "sshfleet", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit the SSH state of every camera in an inventory.
    Scan(ScanArgs),
    /// Plan (dry run) or apply an SSH state across an inventory, journaled and verified.
    Remediate(Box<RemediateArgs>),
    /// Serve a simulated camera fleet on loopback until SIGINT/SIGTERM.
    Sim(SimArgs),
    /// Run the simulator in-process and scan it: no network, credentials or setup needed.
    Demo(DemoArgs),
    /// Equinix Network Edge: audit and manage SSH users through the REST API.
    Equinix(EquinixArgs),
    /// The changes between two reports: new, regressed, fixed, lost, recovered, moved, gone.
    Diff(DiffArgs),
    /// The run history (`--history FILE`): list runs, show a device's timeline, prune.
    History(HistoryArgs),
    /// Work on reports sshfleet wrote: merge shard reports into one fleet view, or render
    /// the HTML page of a report or of a history run.
    Report(ReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// The history file (SQLite) or postgresql:// URL that `scan`/`remediate --history`
    /// wrote.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(subcommand)]
    pub command: HistoryCommand,
    /// JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum HistoryCommand {
    /// The latest runs, newest first.
    Runs {
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
    /// Every state period of one device, by address or serial.
    Device {
        #[arg(value_name = "ADDRESS|SERIAL")]
        device: String,
    },
    /// Remove old runs (and the state periods only they held).
    Prune {
        /// Keep the newest N runs.
        #[arg(long, value_name = "N")]
        keep_runs: Option<u64>,
        /// Remove runs started longer ago than this: `90d`, `12w`, `36h`.
        #[arg(long, value_parser = parse_age, value_name = "AGE")]
        older_than: Option<Duration>,
    },
    /// Upload the runs of this spool (a history kept while the central one could not be
    /// reached) to the central history, oldest first, each once, removing each from the
    /// spool once the central history has it: `history push SPOOL --to URL` (or `history
    /// SPOOL push --to URL`).
    Push {
        /// The central history: a postgresql:// URL.
        #[arg(long, value_name = "URL")]
        to: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The earlier report (JSONL, JSON or CSV that sshfleet wrote).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The later report.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Output options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Report destination; `-` is stdout.
    #[arg(help_heading = heading::OUTPUT, short, long, default_value = "-", value_name = "PATH")]
    pub output: PathBuf,
    /// Report format [default: from the output extension, else jsonl].
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// No progress bar, no summary; errors only.
    #[arg(help_heading = heading::OUTPUT, short, long)]
    pub quiet: bool,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(help_heading = heading::OUTPUT, short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How devices are reached and trusted.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Inventory CSV (header row; `address` column required). Required but with
    /// `remediate --plan` or `--revert`, whose file records it.
    #[arg(help_heading = heading::INVENTORY, long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// The inventory's address column, when it is not named `address`, `ip`, `ip address`,
    /// `host` or `hostname` (case-insensitive).
    #[arg(help_heading = heading::INVENTORY, long, value_name = "NAME")]
    pub address_column: Option<String>,
    /// Devices checked at once.
    #[arg(help_heading = heading::CONNECTION, long, default_value_t = 256, value_name = "N")]
    pub concurrency: usize,
    /// Deadline for each request: connect, TLS, response.
    #[arg(help_heading = heading::CONNECTION, long, default_value = "15s", value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Duration,
    /// Extra tries after a transient failure (reset connection, 403/429/503 after backoff).
    #[arg(help_heading = heading::CONNECTION, long, default_value_t = 1, value_name = "N")]
    pub retries: u32,
    /// Account used where the inventory row names none.
    #[arg(help_heading = heading::CREDENTIALS, long, default_value = "root", value_name = "USER")]
    pub username: String,
    /// Environment variable holding the password.
    #[arg(help_heading = heading::CREDENTIALS, long, default_value = "SSHFLEET_PASSWORD", value_name = "VAR")]
    pub password_env: String,
    /// File whose first line is the password (takes precedence over --password-env).
    #[arg(help_heading = heading::CREDENTIALS, long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    #[arg(help_heading = heading::CREDENTIALS, long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 certificate pins: `FINGERPRINT` or `ADDRESS FINGERPRINT` per line, or a
    /// previous scan report with a tls_fingerprint column.
    #[arg(help_heading = heading::CREDENTIALS, long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// Accept any TLS certificate (fingerprints are still recorded).
    #[arg(help_heading = heading::CREDENTIALS, long)]
    pub insecure: bool,
    /// Allow Basic authentication over plain HTTP (sends the password in clear).
    #[arg(help_heading = heading::CREDENTIALS, long)]
    pub allow_basic_http: bool,
    /// Desired SSH state where the inventory row gives none.
    #[arg(help_heading = heading::INVENTORY, long, value_enum, value_name = "STATE")]
    pub expect: Option<ExpectArg>,
    /// Scan only shard K of N (0-based), by a stable hash of the address
    /// [default: from JOB_COMPLETION_INDEX/JOB_COMPLETIONS].
    #[arg(help_heading = heading::INVENTORY, long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Only these devices of the inventory (and shard): `site=NAME`, `name=GLOB`, `tag=TAG`
    /// or an address; repeat or give a comma list (a device matching any is in).
    #[arg(help_heading = heading::INVENTORY, long, value_name = "SELECTOR")]
    pub limit: Vec<String>,
    /// Scheme for addresses that do not say.
    #[arg(help_heading = heading::CONNECTION, long, value_enum, default_value_t = SchemeArg::Http)]
    pub scheme: SchemeArg,
    /// Also connect to each device's SSH port (22, or the inventory's ssh_port column) and
    /// read its SSH evidence (identification line, algorithms, one key exchange, host key):
    /// one more TCP connection per device, never a login.
    #[arg(help_heading = heading::EVIDENCE, long)]
    pub probe_ssh: bool,
    /// Grade the algorithms `--probe-ssh` reads against this TOML policy instead of the
    /// built-in baseline (column `ssh_crypto`).
    #[arg(help_heading = heading::EVIDENCE, long, value_name = "FILE", requires = "probe_ssh")]
    pub ssh_policy: Option<PathBuf>,
    /// Also read model, firmware and serial from basicdeviceinfo.cgi (one more request per
    /// device): columns `model`, `firmware`, and SSH-enabled devices by firmware in the summary.
    #[arg(help_heading = heading::EVIDENCE, long)]
    pub device_info: bool,
    /// Vendor advisories (TOML) that extend the built-in Axis set, or replace it with
    /// `mode = "replace"`; matched against each device's AXIS OS version (column `advisories`).
    #[arg(help_heading = heading::EVIDENCE, long, value_name = "FILE", requires = "device_info")]
    pub advisories: Option<PathBuf>,
    /// Try every device even when the first 10 that answered all rejected the account
    /// (user name and password source) and none accepted it. By default the account is then
    /// no longer used: AXIS OS blocks clients that fail to log in too often.
    #[arg(help_heading = heading::CREDENTIALS, long)]
    pub no_auth_breaker: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Global request rate limit, e.g. `50/s` or `600/m`.
    #[arg(help_heading = heading::LIMITS, long, value_parser = parse_rate, value_name = "N/s")]
    pub rate: Option<Rate>,
    #[command(flatten)]
    pub compliance: ComplianceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// `--notify`: one POST of what changed after the run.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// After the run, POST what changed since the previous run (`--history` or
    /// `--baseline`) to this http(s) URL: new exposure, regressions, fixes, gone devices,
    /// waivers newly expiring; nothing when nothing changed. A failure only warns.
    #[arg(help_heading = heading::HISTORY, long, value_name = "URL")]
    pub notify: Option<String>,
    /// The notification's body: `json`, or `slack` (`{"text": …}`).
    #[arg(help_heading = heading::HISTORY, long, value_enum, default_value = "json", value_name = "FORMAT", requires = "notify")]
    pub notify_format: NotifyFormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifyFormatArg {
    Json,
    Slack,
}

/// Compliance over time: the previous run to compare with, and what fails the run.
#[derive(Debug, Clone, Args)]
pub struct ComplianceArgs {
    /// A previous report of the same scope (JSONL, JSON or CSV that sshfleet wrote): every
    /// record gets its change since then, and devices no longer present are listed as gone.
    #[arg(help_heading = heading::HISTORY, long, value_name = "REPORT")]
    pub baseline: Option<PathBuf>,
    /// What makes the run exit 1: any finding, only new exposure since the baseline, or
    /// nothing.
    #[arg(help_heading = heading::FINDINGS, long, value_enum, default_value = "findings", value_name = "WHAT")]
    pub fail_on: FailOn,
    /// Accountable exceptions (TOML): each allows matching devices an SSH state, with a
    /// reason, an owner and an expiry date. Waived devices are reported but not findings.
    #[arg(help_heading = heading::FINDINGS, long, value_name = "FILE")]
    pub waivers: Option<PathBuf>,
    /// Run history (SQLite, created when missing; or a PostgreSQL database, given as a
    /// postgresql:// URL): records this run, and compares every device with the previous
    /// completed run of the same inventory and shard.
    #[arg(help_heading = heading::HISTORY, long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Where the run is kept (an SQLite history) when the --history database cannot be
    /// reached, or is lost during the run; `sshfleet history push SPOOL --to URL` uploads it
    /// later [default: next to the output, REPORT.spool.sqlite, or sshfleet-spool.sqlite].
    #[arg(help_heading = heading::HISTORY, long, value_name = "FILE")]
    pub spool: Option<PathBuf>,
    /// Write the run's metrics in the Prometheus text format (for node_exporter's textfile
    /// collector), replacing the file atomically when the run ends.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FILE.prom")]
    pub metrics_out: Option<PathBuf>,
    /// Also write a self-contained HTML report (summary, per-site charts, trend with
    /// --history, drift, a filterable table of every device) when the run is over.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FILE")]
    pub html_out: Option<PathBuf>,
    /// Write the run's summary as JSON when the run is over: counts, the compliance figure
    /// (as on the HTML page and in the metrics), and whether the run covered its scope.
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FILE.json")]
    pub summary_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Merge shard reports into one report, summary and metrics (and, with --history, one
    /// recorded run), proving that they cover the inventory: every row exactly once.
    Merge(MergeArgs),
    /// One self-contained HTML file (charts, trend, drift, a filterable device table) from a
    /// report sshfleet wrote, or from a run of a history.
    Html(ReportHtmlArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ReportHtmlArgs {
    /// A report (JSONL, JSON or CSV that sshfleet wrote).
    #[arg(value_name = "REPORT", required_unless_present = "history")]
    pub report: Option<PathBuf>,
    /// Take the devices from this history instead (with the trend of their runs).
    #[arg(long, value_name = "FILE", conflicts_with = "report")]
    pub history: Option<PathBuf>,
    /// The history's run [default: the latest finished run].
    #[arg(long, value_name = "ID", requires = "history")]
    pub run: Option<i64>,
    /// The vendor advisories (TOML) the report was scanned with (`--advisories` of the scan:
    /// extends the built-in set, or replaces it with `mode = "replace"`): they tell which
    /// advisory ids of the records need SSH. An id they do not know is counted as needing
    /// SSH, with a warning. (A history keeps no advisories.)
    #[arg(long, value_name = "FILE", conflicts_with = "history")]
    pub advisories: Option<PathBuf>,
    /// Where the page goes.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// No message on success; errors only.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// The fleet view's options of `report html`.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Render the fleet view (the latest complete run of every scope, per site) even when
    /// the history holds a single scope. It is the default when it holds several and no
    /// --run is given.
    #[arg(long, requires = "history", conflicts_with = "run")]
    pub fleet: bool,
    /// Site coverage: every site in this inventory's `site` column must have a complete run
    /// within --reported-within (implies the fleet view).
    #[arg(long, value_name = "INVENTORY", requires = "history", conflicts_with_all = ["run", "sites_seen_within"])]
    pub expect_sites_from: Option<PathBuf>,
    /// Site coverage: every site a device was seen with within AGE (e.g. 30d) must have a
    /// complete run within --reported-within (implies the fleet view).
    #[arg(long, value_name = "AGE", value_parser = age, requires = "history", conflicts_with = "run")]
    pub sites_seen_within: Option<Age>,
    /// The period of site coverage: an expected site whose latest complete run finished
    /// longer ago than AGE (h, d, w) is missing; interrupted runs do not count.
    #[arg(long, value_name = "AGE", value_parser = age, default_value = "7d")]
    pub reported_within: Age,
    /// Write the summary of the page as JSON (the fleet view adds a `fleet` object).
    #[arg(long, value_name = "FILE.json")]
    pub summary_out: Option<PathBuf>,
    /// Write the metrics of the page in the Prometheus text format.
    #[arg(long, value_name = "FILE.prom")]
    pub metrics_out: Option<PathBuf>,
    /// Site coverage: POST the expected sites with no complete run within --reported-within
    /// to this http(s) URL (nothing when none is missing). The same missing sites give the
    /// same Idempotency-Key, so a receiver that honours it alerts once per situation. A
    /// failure only warns.
    #[arg(
        long = "notify",
        value_name = "URL",
        requires = "history",
        conflicts_with = "run"
    )]
    pub notify: Option<String>,
    /// The notification's body: `json`, or `slack` (`{"text": …}`).
    #[arg(
        long = "notify-format",
        value_enum,
        default_value = "json",
        value_name = "FORMAT",
        requires = "notify"
    )]
    pub notify_format: NotifyFormatArg,
}

/// An age as given (`7d`) and as a duration.
#[derive(Debug, Clone)]
pub struct Age {
    pub text: String,
    pub duration: Duration,
}

fn age(text: &str) -> Result<Age, String> {
    Ok(Age {
        text: text.trim().to_owned(),
        duration: parse_age(text)?,
    })
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The inventory the shards were scanned from (the whole fleet).
    #[arg(help_heading = heading::INVENTORY, long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The inventory's address column, as the scans were given it.
    #[arg(help_heading = heading::INVENTORY, long, value_name = "NAME")]
    pub address_column: Option<String>,
    /// Shard reports (JSONL, JSON or CSV that `scan` or `remediate` wrote), in any order; a
    /// directory stands for every `.jsonl`, `.json` and `.csv` file in it.
    #[arg(required = true, value_name = "SHARD")]
    pub shards: Vec<PathBuf>,
    /// A shard report last written longer ago than this is stale (a pod that did not run
    /// this time): the fleet is then not covered.
    #[arg(long, value_parser = parse_age, value_name = "AGE")]
    pub max_age: Option<Duration>,
    /// The vendor advisories (TOML) the shards were scanned with (`--advisories` of the
    /// scans: extends the built-in set, or replaces it with `mode = "replace"`): they tell
    /// which advisory ids of the records need SSH. An id they do not know is counted as
    /// needing SSH, with a warning.
    #[arg(long, value_name = "FILE")]
    pub advisories: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub compliance: ComplianceArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any device non-compliant or not checked.
    Findings,
    /// New exposure since the baseline only (regressed, or new and non-compliant).
    Regressions,
    /// Never for findings (errors, interruptions and failed outputs still count).
    Never,
}

#[derive(Debug, Clone, Args)]
pub struct RemediateArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The SSH state to bring every device to (a saved plan or reverted journal records it).
    #[arg(help_heading = heading::CHANGE, long, value_enum, value_name = "STATE", required_unless_present_any = ["plan", "revert"])]
    pub ssh: Option<ExpectArg>,
    /// Write for real; without it only the plan is printed (dry run).
    #[arg(help_heading = heading::CHANGE, long)]
    pub apply: bool,
    /// Do not ask for confirmation (required with --apply when not on a terminal).
    #[arg(help_heading = heading::CHANGE, long)]
    pub yes: bool,
    /// Refuse a plan that would change more than N devices.
    #[arg(help_heading = heading::LIMITS, long, value_name = "N")]
    pub max_changes: Option<usize>,
    /// Write rate limit across all devices.
    #[arg(help_heading = heading::LIMITS, long, default_value = "5/s", value_parser = parse_rate, value_name = "N/s")]
    pub rate: Rate,
    /// Writes allowed back to back before the rate applies.
    #[arg(help_heading = heading::LIMITS, long, default_value = "1", value_name = "N")]
    pub burst: NonZeroU32,
    /// Write rate limit per site (the inventory's `site` column), on top of --rate.
    #[arg(help_heading = heading::LIMITS, long, value_parser = parse_rate, value_name = "N/s")]
    pub site_rate: Option<Rate>,
    /// Journal for crash-safe resume [default: next to the output, or
    /// ./sshfleet-remediate.journal.jsonl when writing to stdout].
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Dry run only: write the plan (each device to change, as observed, with a checksum)
    /// for review; apply it later with --plan FILE --apply.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE", conflicts_with = "plan")]
    pub plan_out: Option<PathBuf>,
    /// Apply exactly this saved plan: devices not in it are never written, and a device no
    /// longer as planned is reported `stale` and not written.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Put back what this journal's last run changed: the devices it wrote and verified, each
    /// to its state before, if still as that run left it (its inventory, state and shard
    /// come from the journal).
    #[arg(help_heading = heading::CHANGE, long, value_name = "JOURNAL", conflicts_with_all = ["plan", "plan_out"])]
    pub revert: Option<PathBuf>,
    /// A saved plan older than this is refused.
    #[arg(help_heading = heading::CHANGE, long, default_value = "24h", value_parser = parse_age, value_name = "AGE")]
    pub plan_max_age: Duration,
    /// Apply a saved plan only when signed by one of these approvers: an OpenSSH
    /// `allowed_signers` file; the signature is PLAN.sig, made with
    /// `ssh-keygen -Y sign -f KEY -n sshfleet-plan PLAN`.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE", requires = "plan")]
    pub plan_signers: Option<PathBuf>,
    #[command(flatten)]
    pub staged: WaveArgs,
    /// On a terminal, ask before each wave after the first.
    #[arg(help_heading = heading::WAVES, long, requires = "waves")]
    pub confirm_waves: bool,
    /// Change window `HH:MM-HH:MM[,TZ]` (may cross midnight; TZ `UTC`, `+02:00` or `Europe/Oslo`): writes
    /// start only inside it; when it closes the writes in flight finish and verify, the
    /// devices left are `deferred` (exit 3).
    #[arg(help_heading = heading::CHANGE, long, value_parser = parse_window, value_name = "WINDOW")]
    pub window: Option<sshfleet_rollout::window::Window>,
    #[command(flatten)]
    pub compliance: ComplianceArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// How writes are staged, for cameras (`remediate`) and Equinix users alike.
#[derive(Debug, Clone, Args)]
pub struct WaveArgs {
    /// Write in waves, canary first: counts and shares of the plan (`1,10,5%,25%,100%`); the
    /// last wave takes the rest. Waves spread over sites (cameras) or devices (Equinix).
    #[arg(help_heading = heading::WAVES, long, value_parser = parse_waves, value_name = "LIST")]
    pub waves: Option<sshfleet_rollout::waves::Waves>,
    /// Failed writes or verifications (over the run) beyond which no further wave starts:
    /// a count or a share of the plan (`3`, `2%`). What is left is `deferred` (exit 3).
    #[arg(help_heading = heading::WAVES, long, value_parser = parse_budget, value_name = "N|P%")]
    pub max_failures: Option<sshfleet_rollout::waves::Budget>,
    /// Wait between waves.
    #[arg(help_heading = heading::WAVES, long, default_value = "0s", value_parser = parse_duration, value_name = "DUR")]
    pub wave_pause: Duration,
    /// Go on after a run of this journal was stopped by --max-failures (from the wave it
    /// stopped before).
    #[arg(help_heading = heading::WAVES, long)]
    pub continue_after_failures: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpectArg {
    Disabled,
    Enabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    Http,
    Https,
}

#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Number of simulated cameras.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub devices: usize,
    /// Seed of the fault mix and SSH states.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Host-key epoch: at each epoch after 0 one camera in twenty shows a new SSH host key,
    /// its serial unchanged (the truth file's `ssh_key_changed`); run the same fleet again
    /// with the next epoch to see keys change between runs.
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub key_epoch: u16,
    /// Delay added before every response.
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DUR")]
    pub latency: Duration,
    /// Fault profile: `realistic` or `none`.
    #[arg(long, default_value = "realistic", value_name = "PROFILE")]
    pub faults: String,
    /// Serve HTTPS with a self-signed fleet CA.
    #[arg(long)]
    pub https: bool,
    /// Authentication: `digest` (Digest on HTTP, Basic on HTTPS), `basic` or `none`.
    #[arg(long, default_value = "digest", value_name = "SCHEME")]
    pub auth: String,
    #[arg(long, default_value = "root", value_name = "USER")]
    pub username: String,
    /// The simulated cameras' password (not a real secret).
    #[arg(long, default_value = "pass", value_name = "PASS")]
    pub password: String,
    /// Digest nonce lifetime before it goes stale.
    #[arg(long, default_value = "300s", value_parser = parse_duration, value_name = "DUR")]
    pub nonce_lifetime: Duration,
    /// Write an inventory CSV of the fleet.
    #[arg(long, value_name = "FILE")]
    pub inventory_out: Option<PathBuf>,
    /// Write the expected result per device (JSONL).
    #[arg(long, value_name = "FILE")]
    pub truth_out: Option<PathBuf>,
    /// Write the fleet CA certificate (PEM) when --https.
    #[arg(long, value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
    /// Serve the control API (JSON device state, request counts, writes) here.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Serve part K of N of a fleet assigned on stdin, for a supervising `sshfleet sim`.
    #[arg(long, hide = true, value_name = "K/N")]
    pub worker: Option<String>,
    #[command(flatten)]
    pub equinix: SimEquinixArgs,
}

/// The mock Equinix Network Edge API of `sshfleet sim`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Mock Equinix API")]
pub struct SimEquinixArgs {
    /// Serve a mock Network Edge API with M SSH users on its own port (`equinix=URL` in the
    /// ready line; client id `sim-client`, secret `sim-secret`).
    #[arg(long, value_name = "M")]
    pub equinix_users: Option<usize>,
    /// Answer every N-th API call with 429.
    #[arg(long, value_name = "N")]
    pub equinix_throttle_every: Option<u64>,
    /// `Retry-After` seconds sent with those 429s [default: none sent].
    #[arg(long, value_name = "S")]
    pub equinix_retry_after: Option<u64>,
    /// Expire the caller's token on every N-th API call (401).
    #[arg(long, value_name = "N")]
    pub equinix_expire_every: Option<u64>,
    /// Fail every N-th API call with 500.
    #[arg(long, value_name = "N")]
    pub equinix_error_every: Option<u64>,
    /// Lifetime of issued tokens.
    #[arg(long, default_value = "3599s", value_parser = parse_duration, value_name = "DUR")]
    pub equinix_token_lifetime: Duration,
    /// Users added (or, negative, removed) at the front of the list after every listing
    /// page beyond the first: the total drifts while a client pages.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        allow_hyphen_values = true
    )]
    pub equinix_drift: i64,
    /// Report N more users in `pagination.total` than exist (empty trailing pages).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub equinix_overstate_total: u64,
    /// Refuse association calls (attach/detach) without a `{}` body, as the live API is
    /// reported to.
    #[arg(long)]
    pub equinix_association_needs_body: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Where the reports go.
    #[arg(long, default_value = "sshfleet-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Simulated cameras.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub devices: usize,
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EquinixArgs {
    #[command(subcommand)]
    pub command: EquinixCommand,
}

#[derive(Debug, Subcommand)]
pub enum EquinixCommand {
    /// SSH users of Network Edge virtual devices. Credentials from EQUINIX_API_CLIENTID and
    /// EQUINIX_API_CLIENTSECRET, or a ready token from EQUINIX_API_TOKEN.
    #[command(subcommand)]
    SshUsers(SshUsersCommand),
}

#[derive(Debug, Subcommand)]
pub enum SshUsersCommand {
    /// List every SSH user (pages fetched concurrently) with audit flags; exit 1 on flags.
    List(ListArgs),
    /// Show one SSH user by uuid.
    Get(GetArgs),
    /// Check whether a username is free (exit 0) or taken/restricted (exit 1).
    Available(AvailableArgs),
    /// Create an SSH user on a device (needs --apply).
    Create(CreateArgs),
    /// Change an SSH user's password (needs --apply).
    SetPassword(SetPasswordArgs),
    /// Give an SSH user access to a device (needs --apply).
    Attach(AttachArgs),
    /// Remove an SSH user from a device, or with --username U --all-devices from every
    /// device it is on (needs --apply). A user is deleted with its last device.
    Detach(DetachArgs),
    /// Detach every SSH user from the devices a policy (TOML) does not allow it on: a plan
    /// by default; with --apply in waves under the write rate limit, journaled and verified
    /// by reading each user back. Exit 1 while detaches remain, 3 when stopped early.
    Remediate(PolicyRemediateArgs),
}

/// How the API is reached, and where the report goes.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// API base URL [default: EQUINIX_API_ENDPOINT, else `https://api.equinix.com`].
    #[arg(help_heading = heading::CONNECTION, long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Deadline for each request: connect, TLS, response.
    #[arg(help_heading = heading::CONNECTION, long, default_value = "30s", value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Duration,
    /// Extra tries after a 429 (or, for idempotent calls, a 5xx or a dropped connection).
    #[arg(help_heading = heading::CONNECTION, long, default_value_t = 4, value_name = "N")]
    pub retries: u32,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    #[arg(help_heading = heading::CONNECTION, long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Report destination; `-` is stdout.
    #[arg(help_heading = heading::OUTPUT, short, long, default_value = "-", value_name = "PATH")]
    pub output: PathBuf,
    /// Report format [default: from the output extension, else jsonl].
    #[arg(help_heading = heading::OUTPUT, long, value_name = "FORMAT", value_parser = parse_format)]
    pub format: Option<Format>,
    /// No summary; errors only.
    #[arg(help_heading = heading::OUTPUT, short, long)]
    pub quiet: bool,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides. (`--verbose` is
    /// the API's filter of `list`.)
    #[arg(help_heading = heading::OUTPUT, short = 'v', action = clap::ArgAction::Count)]
    pub log_level: u8,
}

/// The guard and pace of changes.
#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Make the change; without it the planned change is only reported.
    #[arg(help_heading = heading::CHANGE, long)]
    pub apply: bool,
    /// Write rate limit, e.g. `5/s` or `60/m`.
    #[arg(help_heading = heading::LIMITS, long, default_value = "5/s", value_parser = parse_rate, value_name = "N/s")]
    pub rate: Rate,
    /// Writes allowed at once before the rate applies.
    #[arg(help_heading = heading::LIMITS, long, default_value_t = NonZeroU32::MIN, value_name = "N")]
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this SSH username.
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Only users of this virtual device (uuid).
    #[arg(long, value_name = "UUID")]
    pub device: Option<String>,
    /// Ask for devices and pod statuses (needed for the device and status flags);
    /// `--verbose=false` lists uuid and username only.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub verbose: bool,
    /// A customer's account (accountUcmId), for resellers.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// Users per page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "N")]
    pub page_size: u64,
    /// Pages fetched at once after the first (1 = one page at a time).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64), value_name = "N")]
    pub page_concurrency: u64,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// The SSH user's uuid.
    pub uuid: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AvailableArgs {
    /// The SSH username to check.
    pub username: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    #[arg(long, value_name = "USER")]
    pub username: String,
    /// Environment variable holding the new password [default: ask on the terminal].
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// The virtual device (uuid) the user is created on.
    #[arg(long, value_name = "UUID")]
    pub device: String,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SetPasswordArgs {
    /// The SSH user's uuid.
    pub uuid: String,
    /// Environment variable holding the new password [default: ask on the terminal].
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The SSH user's uuid.
    pub user_uuid: String,
    /// The virtual device's uuid.
    pub device_uuid: String,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DetachArgs {
    /// The SSH user's uuid (with DEVICE_UUID).
    #[arg(required_unless_present = "all_devices", requires = "device_uuid")]
    pub user_uuid: Option<String>,
    /// The virtual device's uuid.
    pub device_uuid: Option<String>,
    /// With --all-devices: the user to remove from every device it is on.
    #[arg(
        long,
        value_name = "USER",
        requires = "all_devices",
        conflicts_with = "user_uuid"
    )]
    pub username: Option<String>,
    /// Remove --username from every device (lists first, then rate-limited detaches).
    #[arg(long, requires = "username")]
    pub all_devices: bool,
    /// Let the detach delete the account: the API deletes a user with its last device
    /// (always so with --all-devices), and no revert can bring it or its password back.
    #[arg(long)]
    pub allow_user_deletion: bool,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyRemediateArgs {
    /// The policy: `[[allow]]` rules of username globs and the device uuids or metros they
    /// may stay on (required unless --plan names one).
    #[arg(long, value_name = "FILE", required_unless_present = "plan")]
    pub policy: Option<PathBuf>,
    /// Also report the users attached to no device (status `orphan`; never changed: the
    /// API cannot delete them); a survey option, not with --plan.
    #[arg(long, conflicts_with = "plan")]
    pub orphans: bool,
    /// Dry run only: write the plan (every detach, with a checksum) for review; apply it
    /// later with --plan FILE --apply.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE", conflicts_with_all = ["plan", "apply"])]
    pub plan_out: Option<PathBuf>,
    /// Apply exactly this saved plan: an association no longer there is `stale`.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// A saved plan older than this is refused.
    #[arg(help_heading = heading::CHANGE, long, default_value = "24h", value_parser = parse_age, value_name = "AGE")]
    pub plan_max_age: Duration,
    /// Apply a saved plan only when signed by one of these approvers: an OpenSSH
    /// `allowed_signers` file; the signature is PLAN.sig, made with
    /// `ssh-keygen -Y sign -f KEY -n sshfleet-plan PLAN`.
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE", requires = "plan")]
    pub plan_signers: Option<PathBuf>,
    /// Journal for crash-safe resume [default: next to the output, or
    /// ./sshfleet-equinix-remediate.journal.jsonl when writing to stdout].
    #[arg(help_heading = heading::CHANGE, long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    #[command(flatten)]
    pub staged: WaveArgs,
    /// Do not ask for confirmation (required with --apply when not on a terminal).
    #[arg(help_heading = heading::CHANGE, long)]
    pub yes: bool,
    /// Let a detach remove a user's last device: the API then deletes the user, and no
    /// revert can bring it (or its password) back. Without it such detaches are `held`.
    #[arg(help_heading = heading::CHANGE, long)]
    pub allow_user_deletion: bool,
    /// Users per listing page.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000), value_name = "N")]
    pub page_size: u64,
    /// Listing pages fetched at once after the first.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64), value_name = "N")]
    pub page_concurrency: u64,
    #[command(flatten)]
    pub write: WriteArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `15s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (try 15s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s, m, h)")),
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// An age in whole hours, days or weeks (`36h`, `90d`, `12w`), at most 100 years.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid age {text:?} (try 90d, 12w, 36h)"))?;
    let unit_secs: u64 = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => return Err(format!("unknown age unit {other:?} (use h, d, w)")),
    };
    let secs = value
        .checked_mul(unit_secs)
        .filter(|s| *s <= 100 * 366 * 86_400)
        .ok_or_else(|| format!("age {text:?} out of range"))?;
    Ok(Duration::from_secs(secs))
}

fn parse_window(text: &str) -> Result<sshfleet_rollout::window::Window, String> {
    text.parse()
}

fn parse_waves(text: &str) -> Result<sshfleet_rollout::waves::Waves, String> {
    text.parse()
}

fn parse_budget(text: &str) -> Result<sshfleet_rollout::waves::Budget, String> {
    text.parse()
}

/// `50/s`, `600/m`, `90/m`, or a plain number per second; not zero.
fn parse_rate(text: &str) -> Result<Rate, String> {
    text.parse()
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse::<Format>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("1e9").is_err());
    }

    #[test]
    fn rates() {
        let rate = |text: &str| parse_rate(text).map(|r| r.to_string());
        assert_eq!(rate("5/s").as_deref(), Ok("5/s"));
        assert_eq!(rate("600/m").as_deref(), Ok("600/m"));
        assert_eq!(rate("7").as_deref(), Ok("7/s"));
        assert_eq!(rate("30/m").as_deref(), Ok("30/m"));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/h").is_err());
    }
}
