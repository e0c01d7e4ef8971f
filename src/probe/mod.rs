//! The SSH port probe (`--probe-ssh`): one TCP connection per device, the server's
//! identification line read (RFC 4253 §4.2), nothing sent, then closed. Never authenticates.

mod banner;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::inventory::Host;
use crate::report::{DeviceRecord, PortState};

use banner::IdentScan;
pub use banner::{sanitise, MAX_LINES, MAX_LINE_BYTES};

/// The SSH port of a device whose inventory row names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// The probe's deadline is the request timeout, but never more than this: a port that says
/// nothing for five seconds is not going to.
pub const MAX_PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// How the probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// One deadline for the connect and the identification line together.
    pub deadline: Duration,
}

impl ProbeSettings {
    /// The settings for a run whose requests time out after `timeout`.
    pub fn for_timeout(timeout: Duration) -> ProbeSettings {
        ProbeSettings {
            deadline: timeout.min(MAX_PROBE_DEADLINE),
        }
    }
}

/// What the probe learned about one device's SSH port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshProbe {
    pub port: PortState,
    /// The identification line, sanitised; `None` when none was read.
    pub banner: Option<String>,
}

impl SshProbe {
    fn closed() -> SshProbe {
        SshProbe {
            port: PortState::Closed,
            banner: None,
        }
    }

    fn filtered() -> SshProbe {
        SshProbe {
            port: PortState::Filtered,
            banner: None,
        }
    }

    /// Fills in the record's probe columns (its exposure is judged with its SSH state).
    pub fn apply_to(self, record: &mut DeviceRecord) {
        record.ssh_port = Some(self.port);
        record.ssh_banner = self.banner;
    }
}

/// Probes `host:port` within `settings.deadline`. `None` when the probe could not be made
/// at all (the name does not resolve, or a local error such as no free source port): that
/// says nothing about the device, so the columns stay empty.
pub async fn probe_ssh(host: &Host, port: u16, settings: ProbeSettings) -> Option<SshProbe> {
    let deadline = Instant::now() + settings.deadline;
    let addrs = resolve(host, port, deadline).await?;
    let stream = match connect(&addrs, deadline).await {
        Connected::Stream(stream) => stream,
        Connected::Refused => return Some(SshProbe::closed()),
        Connected::NoAnswer => return Some(SshProbe::filtered()),
        Connected::LocalError(e) => {
            tracing::warn!(%host, port, error = %e, "SSH probe not made");
            return None;
        }
    };
    let scan = read_identification(stream, deadline).await;
    if let Some(note) = scan.note() {
        tracing::debug!(%host, port, note, "SSH port answered without an identification line");
    }
    Some(SshProbe {
        port: scan.port_state(),
        banner: scan.into_banner(),
    })
}

/// Every address of `host`, resolved within the deadline; `None` when it does not resolve.
async fn resolve(host: &Host, port: u16, deadline: Instant) -> Option<Vec<SocketAddr>> {
    let name = match host {
        Host::Ip(ip) => return Some(vec![SocketAddr::new(*ip, port)]),
        Host::Name(name) => name.as_str(),
    };
    let lookup = tokio::time::timeout_at(deadline, tokio::net::lookup_host((name, port))).await;
    match lookup {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            (!addrs.is_empty()).then_some(addrs)
        }
        Ok(Err(e)) => {
            tracing::debug!(host = name, error = %e, "SSH probe: the name does not resolve");
            None
        }
        Err(_) => {
            tracing::debug!(
                host = name,
                "SSH probe: name resolution took the whole deadline"
            );
            None
        }
    }
}

enum Connected {
    Stream(TcpStream),
    Refused,
    /// Timed out, or the host or network is unreachable.
    NoAnswer,
    LocalError(io::Error),
}

/// Tries each address in turn; a refusal from any of them outranks silence from others.
async fn connect(addrs: &[SocketAddr], deadline: Instant) -> Connected {
    let mut outcome = Connected::NoAnswer;
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return outcome_after_timeout(outcome),
            Ok(Ok(stream)) => return Connected::Stream(stream),
            Ok(Err(e)) => match classify(&e) {
                Connected::Refused => outcome = Connected::Refused,
                Connected::LocalError(_) if !matches!(outcome, Connected::Refused) => {
                    outcome = Connected::LocalError(e);
                }
                _ => {}
            },
        }
    }
    outcome
}

fn outcome_after_timeout(before: Connected) -> Connected {
    match before {
        Connected::Refused => Connected::Refused,
        _ => Connected::NoAnswer,
    }
}

/// A connect error's meaning for the port. Errors that are about this machine rather than
/// the device (no free source port, an address family it lacks) make no finding.
fn classify(e: &io::Error) -> Connected {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Connected::Refused,
        io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::AddrInUse
        | io::ErrorKind::Unsupported
        | io::ErrorKind::InvalidInput
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::OutOfMemory => {
            Connected::LocalError(io::Error::new(e.kind(), e.to_string()))
        }
        // Timed out, host or network unreachable, reset during the handshake: no answer.
        _ => Connected::NoAnswer,
    }
}

/// Reads until the identification line, a reason to give up, or the deadline. Reads go
/// into the line buffer itself, so no more than one line's worth is ever held.
async fn read_identification(mut stream: TcpStream, deadline: Instant) -> IdentScan {
    let mut scan = IdentScan::default();
    let mut buf = [0u8; MAX_LINE_BYTES];
    while scan.wants_more() {
        let room = scan.room(&mut buf);
        let read = tokio::time::timeout_at(deadline, stream.read(room)).await;
        match read {
            Err(_) => scan.deadline_passed(),
            Ok(Ok(0)) | Ok(Err(_)) => scan.ended(),
            Ok(Ok(n)) => scan.received(&mut buf, n),
        }
    }
    // Dropping the stream closes it; nothing was ever written.
    drop(stream);
    scan
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests;
