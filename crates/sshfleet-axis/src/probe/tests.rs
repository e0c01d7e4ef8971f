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
