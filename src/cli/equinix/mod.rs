//! `sshfleet equinix ssh-users …`: resolve the endpoint, credentials and limits into an
//! [`EquinixClient`], run one operation, write its report, and choose the exit code.

mod list;
mod ops;
mod remediate;

use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use governor::RateLimiter;

use super::args::{ApiArgs, EquinixArgs, EquinixCommand, SshUsersCommand, WriteArgs};
use super::{open_output, resolve_table_format, Exit};
use crate::equinix::client::Backoff;
use crate::equinix::{
    ClientPolicy, Credentials, EquinixClient, EquinixError, TokenError, TokenSource,
    DEFAULT_ENDPOINT,
};
use crate::net::tls::TrustSettings;
use crate::net::{ClientSettings, HttpClient};
use crate::report::ssh_users::{TableRow, TableWriter};
use crate::secret::Secret;
use crate::shutdown::Shutdown;

pub(super) use list::{describe, run_listing};

/// API pages are far larger than camera answers: 10,000 verbose users fit.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub(super) async fn run(args: EquinixArgs) -> anyhow::Result<Exit> {
    let EquinixCommand::SshUsers(command) = args.command;
    match command {
        SshUsersCommand::List(a) => list::run(a).await,
        SshUsersCommand::Get(a) => ops::get(a).await,
        SshUsersCommand::Available(a) => ops::available(a).await,
        SshUsersCommand::Create(a) => ops::create(a).await,
        SshUsersCommand::SetPassword(a) => ops::set_password(a).await,
        SshUsersCommand::Attach(a) => ops::attach(a).await,
        SshUsersCommand::Detach(a) => ops::detach(a).await,
        SshUsersCommand::Remediate(a) => remediate::run(a).await,
    }
}

pub(super) fn log_level(args: &EquinixArgs) -> u8 {
    let EquinixCommand::SshUsers(command) = &args.command;
    api_args(command).log_level
}

fn api_args(command: &SshUsersCommand) -> &ApiArgs {
    match command {
        SshUsersCommand::List(a) => &a.api,
        SshUsersCommand::Get(a) => &a.api,
        SshUsersCommand::Available(a) => &a.api,
        SshUsersCommand::Create(a) => &a.api,
        SshUsersCommand::SetPassword(a) => &a.api,
        SshUsersCommand::Attach(a) => &a.api,
        SshUsersCommand::Detach(a) => &a.api,
        SshUsersCommand::Remediate(a) => &a.api,
    }
}

/// A client for the resolved endpoint and credentials. `parallel` requests share the pool;
/// `write` sets the rate limit every change waits for.
fn connect(
    api: &ApiArgs,
    parallel: usize,
    write: Option<&WriteArgs>,
) -> anyhow::Result<Arc<EquinixClient>> {
    connect_until(api, parallel, write, Shutdown::never())
}

/// [`connect`] for a command that listens for Ctrl-C: `stop` ends every wait between
/// retries (API calls and token requests alike).
fn connect_until(
    api: &ApiArgs,
    parallel: usize,
    write: Option<&WriteArgs>,
    stop: Shutdown,
) -> anyhow::Result<Arc<EquinixClient>> {
    if api.timeout.is_zero() {
        bail!("--timeout must be greater than zero");
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = resolve_endpoint(api.endpoint.as_deref(), env("EQUINIX_API_ENDPOINT"))?;
    if plain_http_to_remote(&endpoint) && !api.quiet {
        diagln!("warning: {endpoint} is plain HTTP: credentials and tokens travel in clear");
    }
    let credentials = resolve_credentials(env)?;
    let settings = ClientSettings {
        timeout: api.timeout,
        body_limit: BODY_LIMIT,
        trust: TrustSettings {
            ca_file: api.ca_file.clone(),
            ..TrustSettings::default()
        },
        max_idle_per_host: parallel.max(1),
    };
    let backoff = Backoff {
        retries: api.retries,
        ..Backoff::default()
    };
    build_client(endpoint, credentials, &settings, backoff, write, stop)
}

/// The client the demo lists its in-process mock with.
pub(super) fn mock_client(endpoint: String, parallel: usize) -> anyhow::Result<Arc<EquinixClient>> {
    let credentials = Credentials::Client {
        id: crate::sim::EQUINIX_CLIENT_ID.to_owned(),
        secret: Secret::new(crate::sim::EQUINIX_CLIENT_SECRET),
    };
    let settings = ClientSettings {
        body_limit: BODY_LIMIT,
        max_idle_per_host: parallel,
        ..ClientSettings::default()
    };
    build_client(
        endpoint,
        credentials,
        &settings,
        Backoff::default(),
        None,
        Shutdown::never(),
    )
}

fn build_client(
    endpoint: String,
    credentials: Credentials,
    settings: &ClientSettings,
    backoff: Backoff,
    write: Option<&WriteArgs>,
    stop: Shutdown,
) -> anyhow::Result<Arc<EquinixClient>> {
    let http = Arc::new(HttpClient::new(settings)?);
    let tokens = TokenSource::new(http.clone(), &endpoint, credentials, backoff.clone())
        .with_stop(stop.clone());
    let policy = ClientPolicy {
        backoff,
        write_limiter: write.map(|w| {
            let quota = w.rate.quota().allow_burst(w.burst);
            Arc::new(RateLimiter::direct(quota))
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

/// `--endpoint`, else `EQUINIX_API_ENDPOINT`, else the public API: `scheme://host[:port]`
/// (a trailing `/` is dropped; paths, queries and credentials in the URL are refused).
fn resolve_endpoint(flag: Option<&str>, env: Option<String>) -> anyhow::Result<String> {
    let raw = flag
        .map(str::to_owned)
        .or(env)
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

fn plain_http_to_remote(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// `EQUINIX_API_TOKEN` when set (used as is), else the client id and secret.
fn resolve_credentials(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Credentials> {
    if let Some(token) = env("EQUINIX_API_TOKEN") {
        return Ok(Credentials::Token(Secret::new(token)));
    }
    match (env("EQUINIX_API_CLIENTID"), env("EQUINIX_API_CLIENTSECRET")) {
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

/// A new password: from `var`, else asked twice on the terminal. Never from argv.
fn read_password(var: Option<&str>) -> anyhow::Result<Secret> {
    if let Some(var) = var {
        return match std::env::var(var) {
            Ok(value) if !value.is_empty() => Ok(Secret::new(value)),
            Ok(_) | Err(std::env::VarError::NotPresent) => {
                bail!("no password: the environment variable {var} is not set or empty")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("the environment variable {var} is not valid UTF-8")
            }
        };
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: pass --password-env VAR, or run on a terminal to be asked");
    }
    let first = rpassword::prompt_password("New SSH password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    if first.is_empty() {
        bail!("empty password");
    }
    Ok(Secret::new(first))
}

/// Writes a few rows to the report destination.
fn write_rows<R: TableRow>(api: &ApiArgs, rows: &[R]) -> anyhow::Result<()> {
    let mut out = open_rows::<R>(api)?;
    for row in rows {
        out.write(row)?;
    }
    out.finish()
}

/// The report destination for rows of one kind; a closed stdout is not an error.
fn open_rows<R: TableRow>(api: &ApiArgs) -> anyhow::Result<Rows<R>> {
    let format = resolve_table_format(&api.output, api.format)?;
    Ok(Rows {
        writer: TableWriter::new(format, open_output(&api.output)?),
        label: api.output.display().to_string(),
    })
}

struct Rows<R> {
    writer: TableWriter<R>,
    label: String,
}

impl<R: TableRow> Rows<R> {
    fn write(&mut self, row: &R) -> anyhow::Result<()> {
        self.checked(|w| w.write(row))
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.checked(TableWriter::flush)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.checked(TableWriter::finish)
    }

    fn checked(
        &mut self,
        op: impl FnOnce(&mut TableWriter<R>) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        match op(&mut self.writer) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.with_context(|| format!("cannot write {}", self.label)),
        }
    }
}

/// A failed call's exit code: 2 when the input or the credentials are at fault (nothing was
/// done), 1 when the API or the network failed.
fn exit_for(error: &EquinixError) -> Exit {
    match error {
        EquinixError::Token(TokenError::Rejected { .. } | TokenError::StaticTokenRefused)
        | EquinixError::InvalidInput { .. }
        | EquinixError::Unauthorized { .. } => Exit::Usage,
        EquinixError::Api { status, .. } if (400..500).contains(status) && *status != 429 => {
            Exit::Usage
        }
        EquinixError::Page { source, .. } => exit_for(source),
        EquinixError::Interrupted { .. } | EquinixError::Token(TokenError::Interrupted { .. }) => {
            Exit::Interrupted
        }
        _ => Exit::Findings,
    }
}

fn fail(error: &EquinixError) -> Exit {
    diagln!("error: {}", crate::inert::message(&error.to_string()));
    exit_for(error)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_bases_without_credentials() {
        let ok = |flag: &str| resolve_endpoint(Some(flag), None).unwrap();
        assert_eq!(resolve_endpoint(None, None).unwrap(), DEFAULT_ENDPOINT);
        assert_eq!(
            resolve_endpoint(None, Some("https://sandboxapi.equinix.com/".into())).unwrap(),
            "https://sandboxapi.equinix.com"
        );
        assert_eq!(ok("http://127.0.0.1:4010"), "http://127.0.0.1:4010");
        for bad in [
            "api.equinix.com",
            "ftp://x",
            "https://u:p@api.equinix.com",
            "https://api.equinix.com/ne/v1",
        ] {
            assert!(resolve_endpoint(Some(bad), None).is_err(), "{bad}");
        }
        assert!(plain_http_to_remote("http://10.0.0.1:80"));
        assert!(!plain_http_to_remote("http://127.0.0.1:4010"));
        assert!(!plain_http_to_remote("http://[::1]:4010"));
        assert!(!plain_http_to_remote("https://api.equinix.com"));
    }

    #[test]
    fn a_ready_token_wins_over_client_credentials() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let both = env(&[
            ("EQUINIX_API_TOKEN", "t"),
            ("EQUINIX_API_CLIENTID", "i"),
            ("EQUINIX_API_CLIENTSECRET", "s"),
        ]);
        assert!(matches!(
            resolve_credentials(both).unwrap(),
            Credentials::Token(_)
        ));
        let client = env(&[
            ("EQUINIX_API_CLIENTID", "i"),
            ("EQUINIX_API_CLIENTSECRET", "s"),
        ]);
        assert!(matches!(
            resolve_credentials(client).unwrap(),
            Credentials::Client { .. }
        ));
        let error = resolve_credentials(env(&[("EQUINIX_API_CLIENTID", "i")])).unwrap_err();
        assert!(error.to_string().contains("EQUINIX_API_CLIENTSECRET"));
    }
}
