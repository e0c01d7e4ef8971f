//! Loopback ports for the cameras, picked explicitly from a planned range (fast even at
//! twenty thousand), and the open-file budget their listeners need.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

use serde::{Deserialize, Serialize};

/// File descriptors wanted beyond the listeners, for connections and everything else.
const FD_HEADROOM: u64 = 1024;
/// Below this many spare descriptors the fleet refuses to start.
const FD_MINIMUM_SPARE: u64 = 64;
/// Descriptors one process keeps for accepted connections and everything else when the fleet
/// is split across processes: at least this many, and at least a quarter of the limit.
const FD_PROCESS_RESERVE: u64 = 2048;
/// Ephemeral ports left to the scanner's own connections when a fleet overflows the range.
const OUTGOING_RESERVE: usize = 4096;
/// Ports below this are privileged or well known; a fleet never reaches down there.
const LOWEST_PORT: usize = 1024;

/// A span of loopback ports, both ends included (`first <= last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

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

impl PortRange {
    pub fn len(self) -> usize {
        usize::from(self.last.saturating_sub(self.first)) + 1
    }

    /// The port at `offset` from the start; `offset < len()`.
    fn nth(self, offset: usize) -> u16 {
        (usize::from(self.first) + offset) as u16
    }

    /// Consecutive disjoint parts, part `k` sized in proportion to `sizes[k]`. Disjoint so that
    /// a port one worker leaves unbound for a `closed` camera is never bound by another.
    pub fn split(self, sizes: &[usize]) -> Vec<PortRange> {
        let total = sizes.iter().sum::<usize>().max(1);
        let boundary = |cumulative: usize| self.len() * cumulative / total;
        let mut parts = Vec::with_capacity(sizes.len());
        let mut cumulative = 0;
        for size in sizes {
            let start = boundary(cumulative);
            cumulative += size;
            let end = boundary(cumulative).max(start + 1);
            parts.push(PortRange {
                first: self.nth(start),
                last: self.nth(end.min(self.len()) - 1),
            });
        }
        parts
    }
}

/// Where a fleet of `cameras` picks its ports. The kernel's ephemeral range when the fleet
/// fits there: those ports are meant for transient use, so no service that expects a fixed
/// port is displaced. A larger fleet reaches below that range instead, and leaves the top of
/// it to the scanner's own outgoing connections.
pub fn fleet_range(cameras: usize) -> io::Result<PortRange> {
    let (low, high) = ephemeral_range();
    let ephemeral = PortRange {
        first: low,
        last: high,
    };
    // Some ports are always held by other programs: ask for more than one per camera.
    let wanted = cameras + (cameras / 16).max(256);
    if wanted <= ephemeral.len() {
        return Ok(ephemeral);
    }
    let last = usize::from(high) - OUTGOING_RESERVE.min(ephemeral.len() / 4);
    match (last + 1).checked_sub(wanted) {
        Some(first) if first >= LOWEST_PORT => Ok(PortRange {
            first: first as u16,
            last: last as u16,
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!(
                "{cameras} cameras need about {wanted} loopback ports; at most {} are usable \
                 ({LOWEST_PORT}-{last})",
                (last + 1).saturating_sub(LOWEST_PORT)
            ),
        )),
    }
}

/// How many camera listeners one process should hold: the open-file limit, raised to the hard
/// limit, less a reserve for accepted connections. `None` when the limit cannot be read.
pub fn listener_budget() -> Option<usize> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    let reserve = (limit / 4).max(FD_PROCESS_RESERVE);
    // Tiny limits still get half for listeners rather than none.
    let budget = limit.saturating_sub(reserve).max(limit / 2).max(1);
    Some(usize::try_from(budget).unwrap_or(usize::MAX))
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
            "the open-file limit ({limit}) is too low for {listeners} camera listeners in one \
             process; raise it (ulimit -n) to at least {}, simulate fewer devices, or use \
             `sshfleet sim`, which splits a large fleet across worker processes",
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

/// One port per camera from `range` (`closed[i]` says camera `i` refuses connections), in
/// camera order.
///
/// Ports are picked here, walking the range once from a random start, rather than by binding
/// port 0: Linux hands out even ports first and, once they run out, scans the whole
/// half-range on every bind, which makes twenty thousand binds take most of a minute.
/// The walk never revisits a port, so a closed camera's port is not reused by this fleet.
pub fn bind_all(closed: &[bool], range: PortRange) -> io::Result<Vec<Port>> {
    let n = closed.len();
    let span = range.len();
    let start = fastrand::usize(..span);
    let mut ports = Vec::with_capacity(n);
    for step in 0..span {
        let Some(&refuse) = closed.get(ports.len()) else {
            break;
        };
        let port = range.nth((start + step) % span);
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
            "only {} free loopback ports in {}-{} for {n} cameras",
            ports.len(),
            range.first,
            range.last
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
        let ports = bind_all(&[false, true, false], fleet_range(3)?)?;
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

    #[test]
    fn split_parts_are_disjoint_consecutive_and_proportional() {
        let range = PortRange {
            first: 40_000,
            last: 40_999,
        };
        let parts = range.split(&[44, 43, 43]);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].first, 40_000);
        assert_eq!(parts[2].last, 40_999);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].first);
        }
        assert!(
            parts.iter().all(|p| (330..=340).contains(&p.len())),
            "{parts:?}"
        );
    }

    #[test]
    fn fleets_fit_the_ephemeral_range_until_they_overflow_it() -> io::Result<()> {
        let (low, high) = ephemeral_range();
        let small = fleet_range(2000)?;
        assert_eq!((small.first, small.last), (low, high));
        let span = usize::from(high - low) + 1;
        let large = fleet_range(span)?;
        assert!(large.len() > span, "{large:?}");
        assert!(
            large.last < high,
            "the top of the range stays free: {large:?}"
        );
        assert!(fleet_range(70_000).is_err());
        Ok(())
    }

    #[test]
    fn the_budget_leaves_a_reserve_for_connections() {
        let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
        if let (Some(budget), true) = (listener_budget(), limit > 0) {
            assert!((budget as u64) < limit);
            assert!(budget as u64 >= limit / 2);
        }
    }
}
