//! Loopback ports for the cameras, picked explicitly from the ephemeral range (fast even at
//! twenty thousand), and the open-file budget their listeners need.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// File descriptors wanted beyond the listeners, for connections and everything else.
const FD_HEADROOM: u64 = 1024;
/// Below this many spare descriptors the fleet refuses to start.
const FD_MINIMUM_SPARE: u64 = 64;

/// A camera's port: a bound listener, or a port that was free and is left unbound so that
/// connections to it are refused.
#[derive(Debug)]
pub enum Port {
    Listening(TcpListener, u16),
    Closed(u16),
}

impl Port {
    pub fn number(&self) -> u16 {
        match self {
            Port::Listening(_, port) | Port::Closed(port) => *port,
        }
    }
}

/// Raises the soft open-file limit; refuses to start when the listeners alone would not fit.
pub fn reserve_file_descriptors(listeners: u64) -> io::Result<()> {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read or raise the open-file limit");
            return Ok(());
        }
    };
    if limit < listeners + FD_MINIMUM_SPARE {
        return Err(io::Error::other(format!(
            "the open-file limit ({limit}) is too low for {listeners} camera listeners; \
             raise it (ulimit -n) to at least {} or simulate fewer devices",
            listeners + FD_HEADROOM
        )));
    }
    if limit < listeners + FD_HEADROOM {
        tracing::warn!(
            limit,
            listeners,
            "few file descriptors are left for connections after the camera listeners"
        );
    }
    Ok(())
}

/// One port per camera (`closed[i]` says camera `i` refuses connections), in camera order.
///
/// Ports are picked here, walking the ephemeral range once from a random start, rather than
/// by binding port 0: Linux hands out even ports first and, once they run out, scans the
/// whole half-range on every bind, which makes twenty thousand binds take most of a minute.
/// The walk never revisits a port, so a closed camera's port is not reused by this fleet.
pub fn bind_all(closed: &[bool]) -> io::Result<Vec<Port>> {
    let n = closed.len();
    let (low, high) = ephemeral_range();
    let span = u32::from(high - low) + 1;
    let start = fastrand::u32(..span);
    let mut ports = Vec::with_capacity(n);
    for step in 0..span {
        let Some(&refuse) = closed.get(ports.len()) else {
            break;
        };
        let port = low + ((start + step) % span) as u16;
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(_) if refuse => ports.push(Port::Closed(port)),
            Ok(listener) => ports.push(Port::Listening(listener, port)),
            Err(e) if is_taken(&e) => continue,
            Err(e) => {
                let msg = format!("binding camera listener {} of {n}: {e}", ports.len() + 1);
                return Err(io::Error::new(e.kind(), msg));
            }
        }
    }
    if ports.len() < n {
        let msg = format!(
            "only {} free loopback ports in {low}-{high} for {n} cameras",
            ports.len()
        );
        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, msg));
    }
    Ok(ports)
}

fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

/// The kernel's ephemeral port range (Linux), else the IANA dynamic range.
fn ephemeral_range() -> (u16, u16) {
    let configured = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut ports = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((ports.next()??, ports.next()??))
        });
    match configured {
        Some((low, high)) if 0 < low && low <= high => (low, high),
        _ => (49152, 65535),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_distinct_ports_and_leaves_closed_ones_unbound() -> io::Result<()> {
        let ports = bind_all(&[false, true, false])?;
        let numbers: Vec<u16> = ports.iter().map(Port::number).collect();
        assert!(numbers[0] != numbers[1] && numbers[1] != numbers[2] && numbers[0] != numbers[2]);
        assert!(matches!(ports[1], Port::Closed(_)));
        let refused = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, numbers[1]));
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
        Ok(())
    }
}
