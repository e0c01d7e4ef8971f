//! `sshfleet equinix ssh-users …`: resolve the endpoint, credentials and limits into an
//! [`EquinixClient`], run one operation, write its report, and choose the exit code.

mod list;
mod ops;
mod remediate;

use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::{bail, Context as _};

use super::args::{ApiArgs, EquinixArgs, EquinixCommand, SshUsersCommand, WriteArgs};
use super::{open_output, resolve, resolve_table_format, Exit};
use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::settings::{EquinixSettings, ProcessEnv};
use sshfleet_equinix::{Credentials, EquinixClient, EquinixError, TokenError};
use sshfleet_report::ssh_users::{TableRow, TableWriter};

pub(super) use list::{describe, run_listing};

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
    let settings = resolve::equinix(api, write, &ProcessEnv)?;
    if settings.plain_http_to_remote() && !api.verbosity().is_quiet() {
        let endpoint = &settings.endpoint;
        diagln!("warning: {endpoint} is plain HTTP: credentials and tokens travel in clear");
    }
    settings.client(parallel, stop)
}

/// The client the demo lists its in-process mock with.
pub(super) fn mock_client(endpoint: String, parallel: usize) -> anyhow::Result<Arc<EquinixClient>> {
    let credentials = Credentials::Client {
        id: sshfleet_sim::EQUINIX_CLIENT_ID.to_owned(),
        secret: Secret::new(sshfleet_sim::EQUINIX_CLIENT_SECRET),
    };
    EquinixSettings::new(endpoint, credentials).client(parallel, Shutdown::never())
}

/// A new password: from `var` (see [`resolve::new_password`]), else asked twice on the
/// terminal. Never from argv.
fn read_password(var: Option<&str>) -> anyhow::Result<Secret> {
    if let Some(password) = resolve::new_password(var, &ProcessEnv)? {
        return Ok(password);
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
    diagln!(
        "error: {}",
        sshfleet_core::inert::message(&error.to_string())
    );
    exit_for(error)
}
