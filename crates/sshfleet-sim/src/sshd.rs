//! The cameras' SSH ports: each follows its camera's SSH state — listening with an
//! OpenSSH-like identification line when enabled, refusing when disabled — unless its
//! [`SshFault`] says otherwise. Nothing here speaks SSH beyond that first line.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::camera::Camera;
use super::ports::{self, Port};
use super::server::{stopped, DoneToken};
use super::spec::SshFault;
use super::sshkex::{self, Ended, SshServer};

/// What a healthy camera's SSH server says first.
pub(crate) const BANNER: &[u8] = b"SSH-2.0-OpenSSH_8.9\r\n";

/// [`BANNER`] without its line end, as the exchange hash takes it.
const IDENT: &[u8] = b"SSH-2.0-OpenSSH_8.9";

/// What a [`SshFault::HostileBanner`] port sends: a line a spreadsheet would run, then an
/// identification line with escapes, a bell, a NUL, a formula and HTML in it.
pub(crate) const HOSTILE_LINES: &[u8] = b"=cmd|' /C calc'!A0\r\n\
    SSH-2.0-=cmd|' /C calc'!A0 \x1b[2J\x07<script>alert(1)</script>\x00\xff\r\n";

/// The pause between the bytes of a [`SshFault::Trickle`] line.
pub(crate) const TRICKLE_INTERVAL: Duration = Duration::from_millis(500);

/// The pause between the chunks of a [`SshFault::EndlessLine`].
const ENDLESS_PAUSE: Duration = Duration::from_millis(5);

/// A camera's SSH port as it is now.
enum SshSocket {
    Listening(TcpListener),
    /// Bound without listening: connections are refused, and no one else can take it.
    Refusing {
        _held: socket2::Socket,
    },
}

impl SshSocket {
    fn from_port(port: Port) -> std::io::Result<SshSocket> {
        match port {
            Port::Listening(listener, _) => {
                listener.set_nonblocking(true)?;
                Ok(SshSocket::Listening(TcpListener::from_std(listener)?))
            }
            Port::Closed(socket, _) => Ok(SshSocket::Refusing { _held: socket }),
        }
    }
}

/// Serves camera `camera`'s SSH port, bound as `port` for its initial state, until the
/// fleet stops.
pub(crate) async fn serve(
    port: Port,
    camera: Arc<Camera>,
    mut stop: watch::Receiver<bool>,
    done: DoneToken,
) {
    let number = port.number();
    let mut state = camera.watch_ssh();
    let mut socket = SshSocket::from_port(port).ok();
    loop {
        let listens = camera.spec.ssh.listens(*state.borrow_and_update());
        socket = follow(socket, number, listens, &camera.address);
        let connection_stop = stop.clone();
        let serving = async {
            match &socket {
                Some(SshSocket::Listening(listener)) => {
                    accept(listener, &camera, connection_stop, &done).await;
                }
                // Refusing (or the port was lost): nothing to do until the state changes.
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stopped(&mut stop) => return,
            changed = state.changed() => if changed.is_err() { return },
            () = serving => {}
        }
    }
}

/// The socket for `listens`: `current` if it already is one, else the port bound again the
/// other way. A port that cannot be bound again is logged and tried at the next change.
fn follow(
    current: Option<SshSocket>,
    number: u16,
    listens: bool,
    address: &str,
) -> Option<SshSocket> {
    match current {
        Some(SshSocket::Listening(_)) if listens => return current,
        Some(SshSocket::Refusing { .. }) if !listens => return current,
        _ => {}
    }
    // The old socket must be gone before the port can be bound again.
    drop(current);
    match ports::bind_again(number, ports::Bind::refusing(!listens)).and_then(SshSocket::from_port)
    {
        Ok(socket) => Some(socket),
        Err(e) => {
            tracing::warn!(address, port = number, error = %e, "cannot bind the SSH port again");
            None
        }
    }
}

/// Accepts on the SSH port, each connection on its own task, which the fleet's stop also
/// ends. Never returns: the caller drops it when the state changes.
async fn accept(
    listener: &TcpListener,
    camera: &Arc<Camera>,
    stop: watch::Receiver<bool>,
    done: &DoneToken,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: let connections drain, then go on.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        camera.count_ssh_connection();
        let (fault, server) = (camera.spec.ssh, camera.ssh_server());
        let (mut stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let _done = done;
            tokio::select! {
                _ = stopped(&mut stop) => {}
                () = answer(tcp, fault, server) => {}
            }
        });
    }
}

/// What the port says on one connection; then it waits for the client to close. A healthy
/// server goes on after its identification line with the key exchange, as far as a client
/// that never logs in takes it.
async fn answer(mut tcp: TcpStream, fault: SshFault, server: SshServer) {
    let _ = tcp.set_nodelay(true);
    let sent = match fault {
        SshFault::None | SshFault::StrayListener => speak(&mut tcp, server).await,
        SshFault::Firewalled => Ok(()),
        SshFault::HostileBanner => tcp.write_all(HOSTILE_LINES).await,
        SshFault::Trickle => trickle(&mut tcp).await,
        SshFault::EndlessLine => endless(&mut tcp).await,
    };
    if sent.is_ok() {
        drain(tcp).await;
    }
}

/// The identification line, then the key exchange if the client goes on. A client that only
/// reads the line and leaves (the plain port probe) ends it; so does one that breaks the
/// protocol, which is logged.
async fn speak(tcp: &mut TcpStream, server: SshServer) -> std::io::Result<()> {
    tcp.write_all(BANNER).await?;
    let Some(key) = server.key() else {
        return Ok(());
    };
    match sshkex::exchange(tcp, IDENT, server.offer, &key).await {
        Ok(()) | Err(Ended::ClientLeft) => Ok(()),
        Err(Ended::Io(e)) => Err(e),
        Err(Ended::Refused(what)) => {
            tracing::debug!(expected = what, "SSH client broke the protocol");
            Ok(())
        }
    }
}

async fn trickle(tcp: &mut TcpStream) -> std::io::Result<()> {
    for byte in BANNER {
        tcp.write_all(std::slice::from_ref(byte)).await?;
        tokio::time::sleep(TRICKLE_INTERVAL).await;
    }
    Ok(())
}

/// Never ends by itself: only a failed write (the client closed) or the fleet's stop does.
async fn endless(tcp: &mut TcpStream) -> std::io::Result<()> {
    tcp.write_all(b"SSH-2.0-").await?;
    let chunk = [b'A'; 512];
    loop {
        tcp.write_all(&chunk).await?;
        tokio::time::sleep(ENDLESS_PAUSE).await;
    }
}

/// Reads until the client closes, so the client closes first and the port keeps no
/// TIME_WAIT that would stand in the way of binding it again.
async fn drain(mut tcp: TcpStream) {
    let mut scratch = [0u8; 256];
    while matches!(tcp.read(&mut scratch).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;

    use super::*;
    use crate::{DeviceSpec, Fleet, SimConfig};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const BOUND: Duration = Duration::from_secs(10);

    fn camera(ssh: SshFault, ssh_enabled: bool) -> DeviceSpec {
        DeviceSpec {
            ssh,
            ..DeviceSpec::clean(ssh_enabled)
        }
    }

    async fn fleet(specs: Vec<DeviceSpec>) -> std::io::Result<Fleet> {
        Fleet::start(SimConfig {
            specs: Some(specs),
            ..SimConfig::default()
        })
        .await
    }

    async fn connect(fleet: &Fleet, i: usize) -> std::io::Result<TcpStream> {
        let port = fleet.ssh_port(i).ok_or(ErrorKind::NotFound)?;
        let connecting = TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port));
        tokio::time::timeout(BOUND, connecting).await?
    }

    /// Up to `n` bytes, or fewer if the port closes or stays quiet for `quiet`.
    async fn read_up_to(tcp: &mut TcpStream, n: usize, quiet: Duration) -> Vec<u8> {
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while got.len() < n {
            let want = (n - got.len()).min(chunk.len());
            match tokio::time::timeout(quiet, tcp.read(&mut chunk[..want])).await {
                Ok(Ok(read)) if read > 0 => got.extend_from_slice(&chunk[..read]),
                _ => break,
            }
        }
        got
    }

    /// Connects until the port refuses, at most `BOUND` long: the port is bound again on its
    /// own task after a state change.
    async fn until_refused(fleet: &Fleet, i: usize) -> bool {
        let deadline = tokio::time::Instant::now() + BOUND;
        while tokio::time::Instant::now() < deadline {
            match connect(fleet, i).await {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        false
    }

    async fn until_banner(fleet: &Fleet, i: usize) -> bool {
        let deadline = tokio::time::Instant::now() + BOUND;
        while tokio::time::Instant::now() < deadline {
            if let Ok(mut tcp) = connect(fleet, i).await {
                if read_up_to(&mut tcp, BANNER.len(), BOUND).await == BANNER {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn the_ssh_port_follows_the_ssh_state() -> TestResult {
        let fleet = fleet(vec![camera(SshFault::None, true)]).await?;
        let mut tcp = connect(&fleet, 0).await?;
        assert_eq!(read_up_to(&mut tcp, BANNER.len(), BOUND).await, BANNER);
        fleet.set_ssh_enabled(0, false);
        assert!(
            until_refused(&fleet, 0).await,
            "a disabled camera's port refuses"
        );
        fleet.set_ssh_enabled(0, true);
        assert!(
            until_banner(&fleet, 0).await,
            "enabled again, it answers again"
        );
        assert!(fleet.snapshot()[0].ssh_connections >= 2);
        fleet.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_firewalled_port_accepts_and_says_nothing_whatever_the_state() -> TestResult {
        let fleet = fleet(vec![camera(SshFault::Firewalled, false)]).await?;
        let mut tcp = connect(&fleet, 0).await?;
        let quiet = Duration::from_millis(300);
        assert_eq!(read_up_to(&mut tcp, 1, quiet).await, b"");
        assert_eq!(fleet.snapshot()[0].ssh_connections, 1);
        fleet.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_stray_listener_answers_though_ssh_is_disabled() -> TestResult {
        let fleet = fleet(vec![camera(SshFault::StrayListener, false)]).await?;
        let mut tcp = connect(&fleet, 0).await?;
        assert_eq!(read_up_to(&mut tcp, BANNER.len(), BOUND).await, BANNER);
        fleet.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn faulty_lines_trickle_never_end_or_carry_hostile_bytes() -> TestResult {
        let fleet = fleet(vec![
            camera(SshFault::Trickle, true),
            camera(SshFault::EndlessLine, true),
            camera(SshFault::HostileBanner, true),
            camera(SshFault::Trickle, false),
        ])
        .await?;
        let mut trickle = connect(&fleet, 0).await?;
        assert_eq!(read_up_to(&mut trickle, 3, BOUND).await, b"SSH");
        let mut endless = connect(&fleet, 1).await?;
        let line = read_up_to(&mut endless, 20_000, BOUND).await;
        assert_eq!(line.len(), 20_000);
        assert!(line.starts_with(b"SSH-2.0-") && !line.contains(&b'\n'));
        let mut hostile = connect(&fleet, 2).await?;
        let lines = read_up_to(&mut hostile, HOSTILE_LINES.len(), BOUND).await;
        assert_eq!(lines, HOSTILE_LINES);
        let refused = connect(&fleet, 3).await;
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(ErrorKind::ConnectionRefused)
        );
        fleet.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_fleet_without_ssh_ports_lists_none_and_expects_nothing_of_them() -> TestResult {
        let fleet = Fleet::start(SimConfig {
            specs: Some(vec![camera(SshFault::None, true)]),
            ssh_ports: false,
            ..SimConfig::default()
        })
        .await?;
        assert_eq!(fleet.ssh_port(0), None);
        let mut inventory = Vec::new();
        fleet.write_inventory(&mut inventory)?;
        let inventory = String::from_utf8(inventory)?;
        assert!(inventory
            .lines()
            .nth(1)
            .is_some_and(|row| row.ends_with(",disabled,")));
        let truth = fleet.truth(0);
        assert_eq!((truth.ssh_port, truth.exposure), (None, None));
        fleet.shutdown().await;
        Ok(())
    }
}
