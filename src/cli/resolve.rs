//! Flags into settings: pure functions from the clap types (syntax only) and the injected
//! environment to [`sshfleet_engine::settings`] values. Nothing here reads a file or opens a socket;
//! the settings' `build` steps do the effects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

use super::args::{
    ApiArgs, ComplianceArgs, DeviceArgs, ExpectArg, FailOn as FailOnArg, RemediateArgs, SchemeArg,
    WriteArgs,
};
use sshfleet_core::secret::Secret;
use sshfleet_engine::remediate::WriteLimits;
use sshfleet_engine::settings::{
    ComplianceSettings, DeviceSettings, Env, EquinixSettings, FailOn, PasswordSource,
    RemediateSettings, WriteRate,
};
use sshfleet_equinix::{Credentials, DEFAULT_ENDPOINT};
use sshfleet_inventory::{Limit, Scheme, Shard};
use sshfleet_net::breaker::BreakerMode;
use sshfleet_report::SshState;

/// What a saved plan (`--plan`) or a reverted journal (`--revert`) records of the run that
/// applies it: a run needs nothing more, and a flag that disagrees is refused.
#[derive(Clone, Debug)]
pub(super) struct Recorded {
    /// `the plan p.json`, `the journal j.jsonl`: what the file is, in messages.
    pub source: String,
    pub inventory: Option<PathBuf>,
    /// The state the run sets: the plan's target, or the state before the reverted run.
    pub target: SshState,
    pub shard: Option<String>,
    pub limit: Option<String>,
}

/// `--inventory`, `--timeout`, credentials, trust, shard and the device options.
pub(super) fn device(args: &DeviceArgs, env: &dyn Env) -> anyhow::Result<DeviceSettings> {
    device_from(args, None, env)
}

/// [`device`], taking what `--inventory`, `--shard` and `--limit` leave open from
/// `recorded`; refuses a shard other than the recorded one.
fn device_from(
    args: &DeviceArgs,
    recorded: Option<&Recorded>,
    env: &dyn Env,
) -> anyhow::Result<DeviceSettings> {
    let inventory = match (&args.inventory, recorded.and_then(|r| r.inventory.as_ref())) {
        (Some(given), _) => given.clone(),
        (None, Some(recorded)) => recorded.clone(),
        (None, None) => bail!("--inventory FILE is required"),
    };
    if args.timeout.is_zero() {
        bail!("--timeout must be greater than zero");
    }
    check_username(&args.username)?;
    let password = match &args.password_file {
        Some(path) => PasswordSource::File(path.clone()),
        None => PasswordSource::Env(args.password_env.clone()),
    };
    Ok(DeviceSettings {
        inventory,
        address_column: args.address_column.clone(),
        scheme: match args.scheme {
            SchemeArg::Http => Scheme::Http,
            SchemeArg::Https => Scheme::Https,
        },
        timeout: args.timeout,
        concurrency: args.concurrency,
        retries: args.retries,
        username: args.username.clone(),
        password,
        ca_file: args.ca_file.clone(),
        pin_file: args.pin_file.clone(),
        insecure: args.insecure,
        allow_basic_http: args.allow_basic_http,
        expect: args.expect.map(ssh_state),
        shard: recorded_shard(shard(args.shard, env)?, recorded)?,
        limit: limit(&args.limit, recorded)?,
        probe_ssh: args.probe_ssh,
        ssh_policy: args.ssh_policy.clone(),
        device_info: args.device_info,
        advisories: args.advisories.clone(),
        auth_breaker: match args.no_auth_breaker {
            true => BreakerMode::Off,
            false => BreakerMode::default(),
        },
    })
}

/// The SSH state a flag names.
pub(super) fn ssh_state(arg: ExpectArg) -> SshState {
    match arg {
        ExpectArg::Disabled => SshState::Disabled,
        ExpectArg::Enabled => SshState::Enabled,
    }
}

/// The previous run to compare with, the waivers, the extra outputs and what fails the run.
pub(super) fn compliance(args: &ComplianceArgs) -> anyhow::Result<ComplianceSettings> {
    if args.baseline.is_some() && args.history.is_some() {
        bail!("--baseline and --history both name the previous run: give one");
    }
    let fail_on = match args.fail_on {
        FailOnArg::Findings => FailOn::Findings,
        FailOnArg::Regressions => FailOn::Regressions,
        FailOnArg::Never => FailOn::Never,
    };
    if fail_on == FailOn::Regressions && args.baseline.is_none() && args.history.is_none() {
        bail!(
            "--fail-on regressions needs a previous run to compare with: add --baseline REPORT or --history FILE"
        );
    }
    Ok(ComplianceSettings {
        baseline: args.baseline.clone(),
        history: args.history.clone(),
        waivers: args.waivers.clone(),
        metrics_out: args.metrics_out.clone(),
        html_out: args.html_out.clone(),
        summary_out: args.summary_out.clone(),
        fail_on,
        spool: args.spool.clone(),
    })
}

/// With a `--history` database and no `--spool`: the spool next to the report
/// (`report.jsonl` → `report.jsonl.spool.sqlite`), or in the working directory.
pub(super) fn with_default_spool(
    mut compliance: ComplianceSettings,
    output: &Path,
) -> ComplianceSettings {
    let central = compliance
        .history
        .as_deref()
        .is_some_and(sshfleet_history::is_database);
    if central && compliance.spool.is_none() {
        compliance.spool = Some(if output.as_os_str() == "-" {
            PathBuf::from("sshfleet-spool.sqlite")
        } else {
            let mut name = output.as_os_str().to_owned();
            name.push(".spool.sqlite");
            PathBuf::from(name)
        });
    }
    compliance
}

/// `remediate`: the device run, the target, the write limits and the staging. Refuses
/// what cannot go well before anything is read: `--apply` off a terminal without `--yes`,
/// `--confirm-waves` off a terminal, a plan written by a run that writes.
/// `recorded` is what `--plan` or `--revert` names, read by the caller.
pub(super) fn remediate(
    args: &RemediateArgs,
    recorded: Option<&Recorded>,
    env: &dyn Env,
) -> anyhow::Result<RemediateSettings> {
    if args.apply && !args.yes && !env.interactive() {
        bail!("--apply needs --yes when not run from a terminal; nothing was changed");
    }
    if args.confirm_waves && !env.interactive() {
        bail!("--confirm-waves asks on a terminal, and this is not one; nothing was changed");
    }
    if args.plan_out.is_some() && args.apply {
        bail!("--plan-out writes the plan of a dry run for review; leave out --apply (then apply it with --plan FILE --apply)");
    }
    Ok(RemediateSettings {
        device: device_from(&args.device, recorded, env)?,
        compliance: with_default_spool(compliance(&args.compliance)?, &args.output.output),
        target: target(args.ssh, recorded)?,
        apply: args.apply,
        assume_yes: args.yes,
        max_changes: args.max_changes,
        limits: WriteLimits {
            rate: args.rate,
            burst: args.burst,
            site_rate: args.site_rate,
            jitter: Duration::from_millis(50),
        },
        journal: match (&args.journal, &args.revert) {
            (Some(journal), _) => journal.clone(),
            (None, Some(reverted)) => reverted.with_extension("revert.jsonl"),
            (None, None) => default_journal(&args.output.output),
        },
        plan_out: args.plan_out.clone(),
        plan: args.plan.clone(),
        plan_max_age: args.plan_max_age,
        plan_signers: args.plan_signers.clone(),
        revert: args.revert.clone(),
        waves: args.staged.waves.clone().unwrap_or_default(),
        max_failures: args.staged.max_failures,
        wave_pause: args.staged.wave_pause,
        continue_after_failures: args.staged.continue_after_failures,
        confirm_waves: args.confirm_waves,
        window: args.window.clone(),
    })
}

/// The recorded shard, which a shard given (by flag or job index) must be; else `given`.
fn recorded_shard(
    given: Option<Shard>,
    recorded: Option<&Recorded>,
) -> anyhow::Result<Option<Shard>> {
    let Some(recorded) = recorded else {
        return Ok(given);
    };
    let wanted = match &recorded.shard {
        Some(text) => match text.parse::<Shard>() {
            Ok(shard) => Some(shard),
            Err(e) => bail!("{} records shard {text:?}: {e}", recorded.source),
        },
        None => None,
    };
    match given {
        Some(shard) if Some(shard) != wanted => bail!(
            "{} was made for shard {}, this run is shard {shard} (--shard or the job index): leave the shard out",
            recorded.source,
            wanted.map_or("(none)".to_owned(), |s| s.to_string()),
        ),
        _ => Ok(wanted),
    }
}

/// `--limit` flags, within the recorded limit if there is one.
fn limit(flags: &[String], recorded: Option<&Recorded>) -> anyhow::Result<Option<Limit>> {
    let given = Limit::from_flags(flags).map_err(anyhow::Error::msg)?;
    let recorded = match recorded.and_then(|r| r.limit.as_deref()) {
        Some(text) => Some(text.parse::<Limit>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    Ok(match (recorded, given) {
        (Some(recorded), Some(given)) => Some(recorded.and(given)),
        (recorded, given) => recorded.or(given),
    })
}

/// `--ssh`, else the recorded target; a `--ssh` other than the recorded one is refused.
fn target(given: Option<ExpectArg>, recorded: Option<&Recorded>) -> anyhow::Result<SshState> {
    let given = given.map(ssh_state);
    match (given, recorded) {
        (Some(given), Some(recorded)) if given != recorded.target => bail!(
            "{} sets SSH {}, not {given}: leave out --ssh",
            recorded.source,
            recorded.target
        ),
        (_, Some(recorded)) => Ok(recorded.target),
        (Some(given), None) => Ok(given),
        (None, None) => bail!("--ssh STATE is required"),
    }
}

/// `--shard K/N`, else Kubernetes' `JOB_COMPLETION_INDEX`/`JOB_COMPLETIONS`.
fn shard(explicit: Option<Shard>, env: &dyn Env) -> anyhow::Result<Option<Shard>> {
    if explicit.is_some() {
        return Ok(explicit);
    }
    match Shard::from_env(|name| env.var_os(name)) {
        Some(Ok(shard)) => Ok(Some(shard)),
        Some(Err(e)) => bail!("JOB_COMPLETION_INDEX/JOB_COMPLETIONS: {e}"),
        None => Ok(None),
    }
}

/// `--username` follows the inventory's rule for its `username` column: Basic
/// authentication cannot carry a `:` in the user name, and control characters have no place
/// in a header.
fn check_username(username: &str) -> anyhow::Result<()> {
    if username.chars().any(char::is_control) {
        bail!("--username contains a control character");
    }
    if username.contains(':') {
        bail!("--username must not contain ':'");
    }
    Ok(())
}

/// Next to the report (`report.csv` → `report.journal.jsonl`), or in the working directory.
pub(super) fn default_journal(output: &Path) -> PathBuf {
    if output.as_os_str() == "-" {
        return PathBuf::from("sshfleet-remediate.journal.jsonl");
    }
    output.with_extension("journal.jsonl")
}

/// `equinix ssh-users`: the endpoint and credentials (flags, else the environment), the
/// request deadline and retries, and with `write` the rate every change waits for.
pub(super) fn equinix(
    api: &ApiArgs,
    write: Option<&WriteArgs>,
    env: &dyn Env,
) -> anyhow::Result<EquinixSettings> {
    if api.timeout.is_zero() {
        bail!("--timeout must be greater than zero");
    }
    Ok(EquinixSettings {
        endpoint: equinix_endpoint(api.endpoint.as_deref(), env)?,
        credentials: equinix_credentials(env)?,
        timeout: api.timeout,
        retries: api.retries,
        ca_file: api.ca_file.clone(),
        writes: write.map(|w| WriteRate {
            rate: w.rate,
            burst: w.burst,
        }),
    })
}

/// A variable's value when it is set, valid UTF-8 and not blank.
fn env_text(env: &dyn Env, name: &str) -> Option<String> {
    let value = env.var_os(name)?.into_string().ok()?;
    Some(value).filter(|v| !v.trim().is_empty())
}

/// `--endpoint`, else `EQUINIX_API_ENDPOINT`, else the public API: `scheme://host[:port]`
/// (a trailing `/` is dropped; paths, queries and credentials in the URL are refused).
pub(super) fn equinix_endpoint(flag: Option<&str>, env: &dyn Env) -> anyhow::Result<String> {
    let raw = flag
        .map(str::to_owned)
        .or_else(|| env_text(env, "EQUINIX_API_ENDPOINT"))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .with_context(|| format!("invalid endpoint {trimmed:?}"))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("https" | "http"));
    let Some(authority) = uri.authority().filter(|_| scheme_ok) else {
        bail!("invalid endpoint {trimmed:?}: expected https://host[:port]");
    };
    if authority.as_str().contains('@') {
        bail!("invalid endpoint: credentials in the URL are not accepted (use the environment variables)");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        bail!("invalid endpoint {trimmed:?}: give the API base only, without a path");
    }
    Ok(trimmed.to_owned())
}

/// `EQUINIX_API_TOKEN` when set (used as is), else the client id and secret.
fn equinix_credentials(env: &dyn Env) -> anyhow::Result<Credentials> {
    if let Some(token) = env_text(env, "EQUINIX_API_TOKEN") {
        return Ok(Credentials::Token(Secret::new(token)));
    }
    let id = env_text(env, "EQUINIX_API_CLIENTID");
    match (id, env_text(env, "EQUINIX_API_CLIENTSECRET")) {
        (Some(id), Some(secret)) => Ok(Credentials::Client {
            id,
            secret: Secret::new(secret),
        }),
        _ => bail!(
            "no Equinix credentials: set EQUINIX_API_CLIENTID and EQUINIX_API_CLIENTSECRET, \
             or EQUINIX_API_TOKEN"
        ),
    }
}

/// A new SSH user's password from `--password-env VAR`; `None` when no variable is named
/// (the CLI then asks on the terminal). Never from argv.
pub(super) fn new_password(var: Option<&str>, env: &dyn Env) -> anyhow::Result<Option<Secret>> {
    let Some(var) = var else {
        return Ok(None);
    };
    match env.var_os(var).map(std::ffi::OsString::into_string) {
        Some(Ok(value)) if !value.is_empty() => Ok(Some(Secret::new(value))),
        Some(Ok(_)) | None => {
            bail!("no password: the environment variable {var} is not set or empty")
        }
        Some(Err(_)) => bail!("the environment variable {var} is not valid UTF-8"),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use clap::Parser as _;

    use super::super::args::{Cli, Command};
    use super::*;

    use sshfleet_engine::settings::test_env as env;

    fn scan_args(extra: &[&str]) -> super::super::args::ScanArgs {
        let argv = ["sshfleet", "scan", "--inventory", "inv.csv"];
        let cli = Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
        match cli.command {
            Command::Scan(args) => args,
            _ => unreachable!("parsed a scan"),
        }
    }

    #[test]
    fn flags_resolve_to_settings_with_the_documented_defaults() {
        let args = scan_args(&["--expect", "disabled", "--scheme", "https"]);
        let settings = device(&args.device, &env(&[])).unwrap();
        assert_eq!(
            settings.concurrency,
            sshfleet_engine::settings::DEFAULT_CONCURRENCY
        );
        assert_eq!(settings.timeout, sshfleet_engine::settings::DEFAULT_TIMEOUT);
        assert_eq!(settings.username, "root");
        assert_eq!(settings.expect, Some(SshState::Disabled));
        assert_eq!(settings.scheme, Scheme::Https);
        assert_eq!(settings.shard, None);
        assert!(
            matches!(&settings.password, PasswordSource::Env(var) if var == "SSHFLEET_PASSWORD")
        );
        let with_file = scan_args(&["--password-file", "pw.txt", "--password-env", "X"]);
        let settings = device(&with_file.device, &env(&[])).unwrap();
        assert!(
            matches!(&settings.password, PasswordSource::File(p) if p == Path::new("pw.txt")),
            "the file takes precedence over the variable"
        );
    }

    #[test]
    fn the_shard_comes_from_the_flag_else_from_the_job_index() {
        let job = env(&[("JOB_COMPLETION_INDEX", "2"), ("JOB_COMPLETIONS", "4")]);
        let from_job = device(&scan_args(&[]).device, &job).unwrap();
        assert_eq!(from_job.shard, Some(Shard::new(2, 4).unwrap()));
        let explicit = device(&scan_args(&["--shard", "1/3"]).device, &job).unwrap();
        assert_eq!(explicit.shard, Some(Shard::new(1, 3).unwrap()));
        let bad = env(&[("JOB_COMPLETION_INDEX", "5"), ("JOB_COMPLETIONS", "4")]);
        let err = device(&scan_args(&[]).device, &bad).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("JOB_COMPLETION_INDEX/JOB_COMPLETIONS: "),
            "{err}"
        );
    }

    #[test]
    fn a_username_basic_auth_cannot_carry_is_refused() {
        let err = device(&scan_args(&["--username", "a:b"]).device, &env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "--username must not contain ':'");
        let err = device(&scan_args(&["--username", "a\u{7}"]).device, &env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "--username contains a control character");
        let err = device(&scan_args(&["--timeout", "0s"]).device, &env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "--timeout must be greater than zero");
    }

    #[test]
    fn compliance_needs_one_previous_run_for_regressions() {
        let both = scan_args(&["--baseline", "a.jsonl", "--history", "h.sqlite"]);
        let err = compliance(&both.compliance).unwrap_err();
        assert!(err.to_string().contains("give one"), "{err}");
        let alone = scan_args(&["--fail-on", "regressions"]);
        let err = compliance(&alone.compliance).unwrap_err();
        assert!(err.to_string().contains("needs a previous run"), "{err}");
        let with_history = scan_args(&["--fail-on", "regressions", "--history", "h.sqlite"]);
        let settings = compliance(&with_history.compliance).unwrap();
        assert_eq!(settings.fail_on, FailOn::Regressions);
        assert_eq!(settings.history.as_deref(), Some(Path::new("h.sqlite")));
    }

    fn remediate_args(extra: &[&str]) -> RemediateArgs {
        let argv = [
            "sshfleet",
            "remediate",
            "--inventory",
            "inv.csv",
            "--ssh",
            "disabled",
        ];
        let cli = Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
        match cli.command {
            Command::Remediate(args) => *args,
            _ => unreachable!("parsed a remediate"),
        }
    }

    fn remediate_alone(args: &RemediateArgs, env: &dyn Env) -> anyhow::Result<RemediateSettings> {
        remediate(args, None, env)
    }

    /// A person at a terminal.
    struct Terminal;

    impl Env for Terminal {
        fn var_os(&self, _name: &str) -> Option<std::ffi::OsString> {
            None
        }

        fn interactive(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_write_off_a_terminal_needs_yes_and_a_saved_plan_is_a_dry_runs() {
        let batch = env(&[]);
        let err = remediate_alone(&remediate_args(&["--apply"]), &batch).unwrap_err();
        assert!(err.to_string().starts_with("--apply needs --yes"), "{err}");
        assert!(remediate_alone(&remediate_args(&["--apply"]), &Terminal).is_ok());
        let yes = remediate_alone(&remediate_args(&["--apply", "--yes"]), &batch).unwrap();
        assert!(yes.apply && yes.assume_yes && yes.holds_writes());
        let waves = remediate_args(&["--waves", "1,50%", "--confirm-waves"]);
        let err = remediate_alone(&waves, &batch).unwrap_err();
        assert!(err.to_string().contains("asks on a terminal"), "{err}");
        let both = remediate_args(&["--plan-out", "p.json", "--apply", "--yes"]);
        assert!(remediate_alone(&both, &batch).is_err());
        let dry = remediate_alone(&remediate_args(&["--plan-out", "p.json"]), &batch).unwrap();
        assert!(!dry.apply && dry.holds_writes());
    }

    #[test]
    fn rate_per_minute_reaches_the_write_limits() {
        let args = remediate_args(&["--rate", "90/m", "--site-rate", "30/m"]);
        let settings = remediate_alone(&args, &env(&[])).unwrap();
        let global = settings.limits.rate.quota();
        assert_eq!(
            global.replenish_interval(),
            Duration::from_nanos(666_666_666)
        );
        let site = settings.limits.site_rate.unwrap().quota();
        assert_eq!(site.replenish_interval(), Duration::from_secs(2));
    }

    fn parse_remediate(argv: &[&str]) -> RemediateArgs {
        let cli = Cli::try_parse_from(["sshfleet", "remediate"].iter().chain(argv)).unwrap();
        match cli.command {
            Command::Remediate(args) => *args,
            _ => unreachable!("parsed a remediate"),
        }
    }

    #[test]
    fn a_plan_or_journal_supplies_what_it_records_and_refuses_what_disagrees() {
        let recorded = Recorded {
            source: "the plan p.json".into(),
            inventory: Some("/srv/cams.csv".into()),
            target: SshState::Disabled,
            shard: Some("1/3".into()),
            limit: Some("site=oslo".into()),
        };
        let alone = parse_remediate(&["--plan", "p.json", "--apply", "--yes"]);
        let settings = remediate(&alone, Some(&recorded), &env(&[])).unwrap();
        assert_eq!(settings.device.inventory, Path::new("/srv/cams.csv"));
        assert_eq!(settings.target, SshState::Disabled);
        assert_eq!(settings.device.shard, Some(Shard::new(1, 3).unwrap()));
        let narrowed = parse_remediate(&["--plan", "p.json", "--limit", "name=door-*"]);
        let settings = remediate(&narrowed, Some(&recorded), &env(&[])).unwrap();
        let limit = settings.device.limit.unwrap().to_string();
        assert_eq!(
            limit, "site=oslo;name=door-*",
            "the plan's limit, then the flag's"
        );
        let other_state = parse_remediate(&["--plan", "p.json", "--ssh", "enabled"]);
        let err = remediate(&other_state, Some(&recorded), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("leave out --ssh"), "{err}");
        let other_shard = parse_remediate(&["--plan", "p.json", "--shard", "0/3"]);
        let err = remediate(&other_shard, Some(&recorded), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("made for shard 1/3"), "{err}");
        let job = env(&[("JOB_COMPLETION_INDEX", "2"), ("JOB_COMPLETIONS", "3")]);
        assert!(remediate(&alone, Some(&recorded), &job).is_err());
        let revert = parse_remediate(&["--revert", "fix.journal.jsonl"]);
        let settings = remediate(&revert, Some(&recorded), &env(&[])).unwrap();
        assert_eq!(settings.journal, Path::new("fix.journal.revert.jsonl"));
        assert!(Cli::try_parse_from(["sshfleet", "remediate", "--apply"]).is_err());
    }

    #[test]
    fn remediation_defaults_are_the_documented_ones() {
        let settings = remediate_alone(&remediate_args(&["-o", "out/r.csv"]), &env(&[])).unwrap();
        assert_eq!(settings.target, SshState::Disabled);
        assert_eq!(settings.limits.rate.to_string(), "5/s");
        assert_eq!(settings.limits.burst.get(), 1);
        assert_eq!(settings.plan_max_age, Duration::from_secs(24 * 3600));
        assert_eq!(settings.journal, Path::new("out/r.journal.jsonl"));
        assert!(!settings.holds_writes());
    }

    #[test]
    fn the_journal_sits_next_to_the_report() {
        assert_eq!(
            default_journal(Path::new("out/report.csv")),
            Path::new("out/report.journal.jsonl")
        );
        assert_eq!(
            default_journal(Path::new("-")),
            Path::new("sshfleet-remediate.journal.jsonl")
        );
    }

    fn equinix_args(extra: &[&str]) -> (ApiArgs, WriteArgs) {
        use super::super::args::{EquinixCommand, SshUsersCommand};
        let argv = ["sshfleet", "equinix", "ssh-users", "attach", "u", "d"];
        let cli = Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
        match cli.command {
            Command::Equinix(args) => match args.command {
                EquinixCommand::SshUsers(SshUsersCommand::Attach(a)) => (a.api, a.write),
                _ => unreachable!("parsed an attach"),
            },
            _ => unreachable!("parsed an equinix command"),
        }
    }

    const CLIENT: [(&str, &str); 2] = [
        ("EQUINIX_API_CLIENTID", "i"),
        ("EQUINIX_API_CLIENTSECRET", "s"),
    ];

    #[test]
    fn equinix_flags_and_environment_resolve_to_settings() {
        let (api, write) = equinix_args(&["--timeout", "5s", "--retries", "1", "--rate", "2/s"]);
        let settings = equinix(&api, Some(&write), &env(&CLIENT)).unwrap();
        assert_eq!(settings.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(settings.timeout, Duration::from_secs(5));
        assert_eq!(settings.retries, 1);
        assert_eq!(settings.writes.unwrap().rate.to_string(), "2/s");
        assert!(equinix(&api, None, &env(&CLIENT)).unwrap().writes.is_none());
        let vars = env(&[
            ("EQUINIX_API_ENDPOINT", "http://10.0.0.1:80/"),
            CLIENT[0],
            CLIENT[1],
        ]);
        let remote = equinix(&api, None, &vars).unwrap();
        assert_eq!(remote.endpoint, "http://10.0.0.1:80");
        assert!(remote.plain_http_to_remote());
        let (flagged, _) = equinix_args(&["--endpoint", "http://127.0.0.1:4010"]);
        let local = equinix(&flagged, None, &vars).unwrap();
        assert_eq!(local.endpoint, "http://127.0.0.1:4010", "the flag wins");
        assert!(!local.plain_http_to_remote());
        let (zero, _) = equinix_args(&["--timeout", "0s"]);
        let err = equinix(&zero, None, &env(&CLIENT)).unwrap_err();
        assert_eq!(err.to_string(), "--timeout must be greater than zero");
    }

    #[test]
    fn endpoints_are_bases_without_credentials() {
        let none = env(&[]);
        let ok = |flag: &str| equinix_endpoint(Some(flag), &none).unwrap();
        assert_eq!(equinix_endpoint(None, &none).unwrap(), DEFAULT_ENDPOINT);
        let sandbox = env(&[("EQUINIX_API_ENDPOINT", "https://sandboxapi.equinix.com/")]);
        assert_eq!(
            equinix_endpoint(None, &sandbox).unwrap(),
            "https://sandboxapi.equinix.com"
        );
        let blank = env(&[("EQUINIX_API_ENDPOINT", "  ")]);
        assert_eq!(equinix_endpoint(None, &blank).unwrap(), DEFAULT_ENDPOINT);
        assert_eq!(ok("http://127.0.0.1:4010"), "http://127.0.0.1:4010");
        for bad in [
            "api.equinix.com",
            "ftp://x",
            "https://u:p@api.equinix.com",
            "https://api.equinix.com/ne/v1",
        ] {
            assert!(equinix_endpoint(Some(bad), &none).is_err(), "{bad}");
        }
        let at = |endpoint: &str| {
            let credentials = Credentials::Token(Secret::new("t"));
            EquinixSettings::new(endpoint.to_owned(), credentials).plain_http_to_remote()
        };
        assert!(at("http://10.0.0.1:80"));
        assert!(!at("http://127.0.0.1:4010"));
        assert!(!at("http://[::1]:4010"));
        assert!(!at("https://api.equinix.com"));
    }

    #[test]
    fn a_ready_token_wins_over_client_credentials() {
        let both = env(&[("EQUINIX_API_TOKEN", "t"), CLIENT[0], CLIENT[1]]);
        assert!(matches!(
            equinix_credentials(&both).unwrap(),
            Credentials::Token(_)
        ));
        assert!(matches!(
            equinix_credentials(&env(&CLIENT)).unwrap(),
            Credentials::Client { .. }
        ));
        let error = equinix_credentials(&env(&[CLIENT[0]])).unwrap_err();
        assert!(error.to_string().contains("EQUINIX_API_CLIENTSECRET"));
        let blank = env(&[("EQUINIX_API_TOKEN", " "), CLIENT[0], CLIENT[1]]);
        assert!(matches!(
            equinix_credentials(&blank).unwrap(),
            Credentials::Client { .. }
        ));
    }

    #[test]
    fn a_new_password_comes_from_its_variable_or_from_the_terminal() {
        let vars = env(&[("NEW_PW", "s3cret"), ("EMPTY", "")]);
        assert!(new_password(None, &vars).unwrap().is_none(), "asked for");
        let given = new_password(Some("NEW_PW"), &vars).unwrap().unwrap();
        assert_eq!(given.expose(), "s3cret");
        for var in ["EMPTY", "UNSET"] {
            let err = new_password(Some(var), &vars).unwrap_err();
            assert!(err.to_string().contains("not set or empty"), "{err}");
        }
    }
}
