//! The probe against real loopback sockets: what each kind of port comes to, that nothing is
//! ever sent, and that no port holds the probe past its deadline.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;

const GENEROUS: Duration = Duration::from_secs(10);

fn settings(deadline_ms: u64) -> ProbeSettings {
    ProbeSettings {
        deadline: Duration::from_millis(deadline_ms),
        evidence: None,
    }
}

fn loopback() -> Host {
    Host::Ip(Ipv4Addr::LOCALHOST.into())
}

/// A one-connection server: runs `serve` on the accepted stream and returns the bytes the
/// client sent before closing.
async fn server<F, Fut>(serve: F) -> (u16, tokio::task::JoinHandle<Vec<u8>>)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = tokio::net::TcpStream> + Send,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return Vec::new();
        };
        let mut stream = serve(stream).await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(GENEROUS, stream.read_to_end(&mut got)).await;
        got
    });
    (port, task)
}

async fn probe(port: u16, deadline_ms: u64) -> Option<SshProbe> {
    let host = loopback();
    let probing = probe_ssh(&host, port, settings(deadline_ms));
    tokio::time::timeout(GENEROUS, probing).await.ok().flatten()
}

#[tokio::test]
async fn an_ssh_server_is_open_with_its_banner_and_hears_nothing() {
    let (port, sent) = server(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_8.9\r\n").await;
        s
    })
    .await;
    let seen = probe(port, 2000).await;
    assert_eq!(
        seen,
        Some(SshProbe {
            port: PortState::Open,
            banner: Some("SSH-2.0-OpenSSH_8.9".into()),
            evidence: None,
        })
    );
    assert_eq!(sent.await.ok(), Some(Vec::new()), "the probe sends nothing");
}

#[tokio::test]
async fn a_refused_connection_is_closed() {
    // Bound but not listening: connections are refused, and no one else can take the port.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    socket.bind(&addr.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let seen = probe(port, 2000).await;
    assert_eq!(seen.map(|p| p.port), Some(PortState::Closed));
}

#[tokio::test]
async fn a_silent_port_is_filtered_once_the_deadline_passes() {
    let (port, _sent) = server(|s| async move { s }).await;
    let started = std::time::Instant::now();
    let seen = probe(port, 300).await;
    assert_eq!(seen.map(|p| p.port), Some(PortState::Filtered));
    assert!(started.elapsed() < GENEROUS);
}

#[tokio::test]
async fn a_trickle_slower_than_the_deadline_is_open_without_a_banner() {
    let (port, _sent) = server(|mut s| async move {
        for b in b"SSH-2.0-OpenSSH_8.9\r\n" {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    })
    .await;
    let seen = probe(port, 300).await;
    assert_eq!(
        seen,
        Some(SshProbe {
            port: PortState::Open,
            banner: None,
            evidence: None,
        })
    );
}

#[tokio::test]
async fn an_endless_line_stops_the_probe_at_the_line_limit() {
    let (port, sent) = server(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-").await;
        let chunk = [b'A'; 512];
        // Far more than the probe reads; it closes long before this ends.
        for _ in 0..64 {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
        s
    })
    .await;
    // A deadline the probe must not need: the line limit ends it.
    let started = std::time::Instant::now();
    let seen = probe(port, 8000).await;
    assert_eq!(
        seen.map(|p| (p.port, p.banner)),
        Some((PortState::Open, None))
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sent.await.ok(), Some(Vec::new()));
}

#[tokio::test]
async fn an_unresolvable_name_is_not_probed() {
    let host = Host::Name("no-such-host.invalid".into());
    let probing = probe_ssh(&host, 22, settings(2000));
    let seen = tokio::time::timeout(GENEROUS, probing).await;
    assert_eq!(seen.ok(), Some(None));
}

#[test]
fn the_deadline_is_the_timeout_capped_at_five_seconds() {
    let short = ProbeSettings::for_timeout(Duration::from_secs(2));
    assert_eq!(short.deadline, Duration::from_secs(2));
    let long = ProbeSettings::for_timeout(Duration::from_secs(15));
    assert_eq!(long.deadline, MAX_PROBE_DEADLINE);
}

#[test]
fn a_refusal_outranks_silence_and_silence_a_local_error() {
    let local = || NotConnected::LocalError(io::Error::from(io::ErrorKind::AddrNotAvailable));
    assert!(matches!(
        local().or(NotConnected::NoAnswer),
        NotConnected::NoAnswer
    ));
    assert!(matches!(
        NotConnected::NoAnswer.or(NotConnected::Refused),
        NotConnected::Refused
    ));
    assert!(matches!(
        NotConnected::Refused.or(local()),
        NotConnected::Refused
    ));
    assert!(matches!(
        NotConnected::of(io::Error::from(io::ErrorKind::ConnectionRefused)),
        NotConnected::Refused
    ));
    assert!(matches!(
        NotConnected::of(io::Error::from(io::ErrorKind::TimedOut)),
        NotConnected::NoAnswer
    ));
}

fn with_evidence(deadline_ms: u64) -> ProbeSettings {
    settings(deadline_ms).with_evidence(Arc::new(SshPolicy::baseline()))
}

async fn probe_evidence(port: u16, deadline_ms: u64) -> Option<SshProbe> {
    let host = loopback();
    let probing = probe_ssh(&host, port, with_evidence(deadline_ms));
    tokio::time::timeout(GENEROUS, probing).await.ok().flatten()
}

#[tokio::test]
async fn a_hostile_ssh_server_ends_as_an_answer_within_the_deadline() {
    // An identification line, then a packet claiming 4 GiB, then garbage a byte at a time.
    let (port, _sent) = server(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-hostile\r\n\xff\xff\xff\xff").await;
        for _ in 0..100 {
            if s.write_all(b"\x00").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    })
    .await;
    let started = std::time::Instant::now();
    let seen = probe_evidence(port, 800).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(seen.port, PortState::Open);
    assert_eq!(seen.banner.as_deref(), Some("SSH-2.0-hostile"));
    let evidence = seen.evidence.unwrap();
    assert_eq!(evidence.host_key, None);
    assert_eq!(evidence.crypto, None);
}

#[tokio::test]
async fn with_evidence_a_silent_port_is_filtered_and_a_web_server_open_without_banner() {
    let (port, _sent) = server(|s| async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s
    })
    .await;
    let seen = probe_evidence(port, 200).await.unwrap();
    assert_eq!(seen.port, PortState::Filtered);
    assert_eq!(seen.banner, None);

    let (port, _sent) = server(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        s
    })
    .await;
    let seen = probe_evidence(port, 500).await.unwrap();
    assert_eq!(seen.port, PortState::Open);
    assert_eq!(seen.banner, None);
}
