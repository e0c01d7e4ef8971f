//! The probe's connection handed to [`sshfleet_ssh::read_evidence`], and what it read made
//! into the probe's answer: the port state and banner as the identification-only probe
//! gives them, plus the host key, the algorithms and their grade.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use sshfleet_core::model::PortState;
use sshfleet_ssh::grade::{self, Crypto, Policy, Terrapin};
use sshfleet_ssh::{Algorithms, Evidence, Failure, HostKey};

use super::SshProbe;

/// What one SSH conversation showed about a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshEvidence {
    /// The host key, only when the server proved it holds it (or its type cannot be checked).
    pub host_key: Option<HostKey>,
    /// The server's algorithm lists.
    pub algorithms: Option<Algorithms>,
    /// The algorithms (and host key) graded against the run's policy.
    pub crypto: Option<Crypto>,
    /// Terrapin (CVE-2023-48795); `None` when no prone mode is offered.
    pub terrapin: Option<Terrapin>,
    /// Why the conversation stopped before the host key was proven, if it did.
    pub failure: Option<Failure>,
}

/// Runs the conversation over `stream` by `deadline` and says what the port is.
pub(super) async fn converse(stream: TcpStream, deadline: Instant, policy: &Policy) -> SshProbe {
    let mut counted = Counted {
        inner: stream,
        received: false,
    };
    let evidence = sshfleet_ssh::read_evidence(&mut counted, deadline).await;
    if let Some(failure) = &evidence.failure {
        tracing::debug!(%failure, "SSH evidence incomplete");
    }
    SshProbe {
        port: port_state(&evidence, counted.received),
        banner: evidence.banner.clone(),
        evidence: Some(graded(evidence, policy)),
    }
}

/// `filtered` only when nothing at all came back before the deadline, as without evidence:
/// any answer, even a close, means `open`.
fn port_state(evidence: &Evidence, received: bool) -> PortState {
    match evidence.failure {
        Some(Failure::Timeout(_)) if !received => PortState::Filtered,
        _ => PortState::Open,
    }
}

fn graded(evidence: Evidence, policy: &Policy) -> SshEvidence {
    // A key whose signature failed is not the server's identity: it is not recorded.
    let host_key = evidence.host_key.filter(|_| evidence.signature.is_some());
    let crypto = evidence
        .algorithms
        .as_ref()
        .map(|algorithms| grade::grade(algorithms, host_key.as_ref(), policy).crypto);
    let terrapin = evidence.algorithms.as_ref().and_then(grade::terrapin);
    SshEvidence {
        host_key,
        algorithms: evidence.algorithms,
        crypto,
        terrapin,
        failure: evidence.failure,
    }
}

/// A stream that remembers whether the peer sent anything.
struct Counted {
    inner: TcpStream,
    received: bool,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.received = true;
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
