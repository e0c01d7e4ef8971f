//! The SSH port probe (`--probe-ssh`): one TCP connection per device. With evidence (what
//! `--probe-ssh` asks for) the connection is handed to [`sshfleet_ssh::read_evidence`]: the
//! identification lines, the server's KEXINIT, one key exchange and the host key, then a
//! DISCONNECT. Without, the server's identification line is read (RFC 4253 §4.2) and nothing
//! is sent. Never authenticates, never a second connection.

mod banner;
mod evidence;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::Instant;

use sshfleet_core::model::PortState;
use sshfleet_inventory::Host;

use banner::IdentScan;
pub use banner::{sanitise, MAX_LINES, MAX_LINE_BYTES};
pub use evidence::SshEvidence;
pub use sshfleet_ssh::grade::Policy as SshPolicy;

/// The SSH port of a device whose inventory row names none.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// The probe's deadline is the request timeout, but never more than this: a port that says
/// nothing for five seconds is not going to.
pub(crate) const MAX_PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// How the probe runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// One deadline for the connect and the whole conversation together.
    pub deadline: Duration,
    /// Read the SSH evidence, graded against this policy; `None`: the identification line
    /// only, nothing sent.
    pub evidence: Option<Arc<SshPolicy>>,
}

impl ProbeSettings {
    /// The settings for a run whose requests time out after `timeout` (identification only).
    pub fn for_timeout(timeout: Duration) -> ProbeSettings {
        ProbeSettings {
            deadline: timeout.min(MAX_PROBE_DEADLINE),
            evidence: None,
        }
    }

    /// The same settings, reading the SSH evidence graded against `policy`.
    pub fn with_evidence(self, policy: Arc<SshPolicy>) -> ProbeSettings {
        ProbeSettings {
            evidence: Some(policy),
            ..self
        }
    }
}

/// What the probe learned about one device's SSH port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshProbe {
    pub port: PortState,
    /// The identification line, sanitised; `None` when none was read.
    pub banner: Option<String>,
    /// What the SSH conversation showed, when evidence was asked for and the port answered.
    pub evidence: Option<SshEvidence>,
}

impl SshProbe {
    fn closed() -> SshProbe {
        SshProbe {
            port: PortState::Closed,
            banner: None,
            evidence: None,
        }
    }

    fn filtered() -> SshProbe {
        SshProbe {
            port: PortState::Filtered,
            banner: None,
            evidence: None,
        }
    }
}

/// Probes `host:port` within `settings.deadline`. `None` when the probe could not be made
/// at all (the name does not resolve, or a local error such as no free source port): that
/// says nothing about the device, so the columns stay empty.
pub async fn probe_ssh(host: &Host, port: u16, settings: ProbeSettings) -> Option<SshProbe> {
    let deadline = Instant::now() + settings.deadline;
    let addrs = resolve(host, port, deadline).await?;
    let stream = match connect(&addrs, deadline).await {
        Ok(stream) => stream,
        Err(NotConnected::Refused) => return Some(SshProbe::closed()),
        Err(NotConnected::NoAnswer) => return Some(SshProbe::filtered()),
        Err(NotConnected::LocalError(e)) => {
            tracing::warn!(%host, port, error = %e, "SSH probe not made");
            return None;
        }
    };
    if let Some(policy) = settings.evidence.as_deref() {
        return Some(evidence::converse(stream, deadline, policy).await);
    }
    let scan = read_identification(stream, deadline).await;
    if let Some(note) = scan.note() {
        tracing::debug!(%host, port, note, "SSH port answered without an identification line");
    }
    Some(SshProbe {
        port: scan.port_state(),
        banner: scan.into_banner(),
        evidence: None,
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

/// Why no connection was made, most telling first: a refusal says the port is closed,
/// silence that something drops packets, a local error nothing about the device.
#[derive(Debug)]
enum NotConnected {
    Refused,
    /// Timed out, or the host or network is unreachable.
    NoAnswer,
    LocalError(io::Error),
}

impl NotConnected {
    /// A connect error's meaning for the port. Errors about this machine rather than the
    /// device (no free source port, an address family it lacks) make no finding.
    fn of(e: io::Error) -> NotConnected {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => NotConnected::Refused,
            io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::AddrInUse
            | io::ErrorKind::Unsupported
            | io::ErrorKind::InvalidInput
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::OutOfMemory => NotConnected::LocalError(e),
            // Timed out, host or network unreachable, reset during the handshake.
            _ => NotConnected::NoAnswer,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            NotConnected::Refused => 2,
            NotConnected::NoAnswer => 1,
            NotConnected::LocalError(_) => 0,
        }
    }

    /// The more telling of two outcomes (for a name with several addresses).
    fn or(self, other: NotConnected) -> NotConnected {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Tries each address in turn until one connects or the deadline passes.
async fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, NotConnected> {
    let mut failed: Option<NotConnected> = None;
    for addr in addrs {
        let attempt = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => NotConnected::of(e),
            Err(_) => {
                // The deadline is spent: no other address gets a try.
                let silent = NotConnected::NoAnswer;
                return Err(failed.map_or(NotConnected::NoAnswer, |f| f.or(silent)));
            }
        };
        failed = Some(match failed {
            Some(f) => f.or(attempt),
            None => attempt,
        });
    }
    Err(failed.unwrap_or(NotConnected::NoAnswer))
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
