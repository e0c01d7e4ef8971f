//! Loopback ports for the cameras, picked explicitly from a planned pool (fast even at
//! twenty thousand), and the open-file budget their listeners need.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

/// Listening sockets per camera: its HTTP port and its SSH port.
pub(crate) const LISTENERS_PER_CAMERA: usize = 2;
/// File descriptors wanted beyond the listeners, for connections and everything else.
const FD_HEADROOM: u64 = 1024;
/// Below this many spare descriptors the fleet refuses to start.
const FD_MINIMUM_SPARE: u64 = 64;
/// Descriptors one process keeps for accepted connections and everything else when the fleet
/// is split across processes: at least this many, and at least a quarter of the limit.
const FD_PROCESS_RESERVE: u64 = 2048;
/// The top of the ephemeral range, never taken by cameras: the scanner's own connections
/// need source ports there.
const OUTGOING_RESERVE: usize = 4096;
/// Ports below this are privileged or well known; a fleet never reaches down there.
const LOWEST_PORT: usize = 1024;
/// Fleets keep above this port when they can: most services with a fixed port are below it.
const FLEET_FLOOR: usize = 10_000;
/// Below-ephemeral room a fleet needs before it prefers that room to the ephemeral range.
const MIN_PREFERRED: usize = 4096;

/// A span of loopback ports, both ends included (`first <= last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// Where a fleet picks its ports: first from `preferred`, then from `overflow` as far as
/// other programs hold too many of the preferred ones or the fleet is larger than them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortPlan {
    pub preferred: PortRange,
    pub overflow: Option<PortRange>,
}

/// A camera's port: a bound listener, or a socket bound without listening so that
/// connections to it are refused.
#[derive(Debug)]
pub(crate) enum Port {
    Listening(TcpListener, u16),
    /// Held rather than left free, and without SO_REUSEADDR, so that no other program (a
    /// parallel test's fleet, another simulator) can bind it and make the camera answer.
    Closed(Socket, u16),
}

impl Port {
    pub(crate) fn number(&self) -> u16 {
        match self {
            Port::Listening(_, port) | Port::Closed(_, port) => *port,
        }
    }
}

impl PortRange {
    pub(crate) fn len(self) -> usize {
        usize::from(self.last.saturating_sub(self.first)) + 1
    }

    /// The port at `offset` from the start; `offset < len()`.
    fn nth(self, offset: usize) -> u16 {
        (usize::from(self.first) + offset) as u16
    }

    /// Consecutive disjoint parts, part `k` sized in proportion to `sizes[k]`, so that workers
    /// binding at the same time never contend for a port.
    pub(crate) fn split(self, sizes: &[usize]) -> Vec<PortRange> {
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

    /// Every port once, from a random start and wrapping around.
    fn walk(self) -> impl Iterator<Item = u16> {
        let span = self.len();
        let start = fastrand::usize(..span);
        (0..span).map(move |step| self.nth((start + step) % span))
    }
}

impl PortPlan {
    /// The pool for a fleet of `cameras`: [`PortPlan::loopback`], if it is large enough.
    pub(crate) fn for_fleet(cameras: usize) -> io::Result<PortPlan> {
        // Some ports are always held by other programs: plan for more than two per camera.
        let sockets = cameras.saturating_mul(LISTENERS_PER_CAMERA);
        let wanted = sockets + (sockets / 16).max(256);
        let plan = PortPlan::loopback();
        if plan.len() < wanted {
            let msg = format!(
                "{cameras} cameras need about {wanted} loopback ports (HTTP and SSH); {plan} \
                 has too few"
            );
            return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, msg));
        }
        Ok(plan)
    }

    /// Preferred: the ports from [`FLEET_FLOOR`] up to the kernel's ephemeral range. Outgoing
    /// connections take their source ports from the ephemeral range, and Linux steps over
    /// every port a listener holds there on each connect: with ten thousand cameras inside
    /// it that cost the scanner 8 % of its CPU (`cargo bench --bench fleet`). Most services
    /// with a fixed port sit below the floor, so a fleet leaves them alone. Overflow: the
    /// ephemeral range less its top [`OUTGOING_RESERVE`], for a fleet larger than the
    /// preferred range or when other programs hold much of it.
    ///
    /// A kernel whose ephemeral range starts low leaves no room under it: then the fleet
    /// prefers the ephemeral range and overflows down to [`LOWEST_PORT`].
    fn loopback() -> PortPlan {
        let (low, high) = ephemeral_range();
        let span = usize::from(high - low) + 1;
        let ephemeral = PortRange {
            first: low,
            last: (usize::from(high) - OUTGOING_RESERVE.min(span / 4)) as u16,
        };
        if usize::from(low) >= FLEET_FLOOR + MIN_PREFERRED {
            return PortPlan {
                preferred: PortRange {
                    first: FLEET_FLOOR as u16,
                    last: low - 1,
                },
                overflow: Some(ephemeral),
            };
        }
        let overflow = (usize::from(low) > LOWEST_PORT).then(|| PortRange {
            first: LOWEST_PORT as u16,
            last: low - 1,
        });
        PortPlan {
            preferred: ephemeral,
            overflow,
        }
    }

    pub(crate) fn len(self) -> usize {
        self.preferred.len() + self.overflow.map_or(0, PortRange::len)
    }

    /// Disjoint plans, plan `k` sized in proportion to `sizes[k]` in both ranges.
    pub(crate) fn split(self, sizes: &[usize]) -> Vec<PortPlan> {
        let overflow = self.overflow.map(|o| o.split(sizes));
        let preferred = self.preferred.split(sizes).into_iter().enumerate();
        let plans = preferred.map(|(k, preferred)| PortPlan {
            preferred,
            overflow: overflow.as_ref().map(|parts| parts[k]),
        });
        plans.collect()
    }

    /// Every port of the plan once: the preferred range from a random start, then the
    /// overflow range likewise.
    fn candidates(self) -> impl Iterator<Item = u16> {
        let overflow = self.overflow.into_iter().flat_map(PortRange::walk);
        self.preferred.walk().chain(overflow)
    }
}

impl std::fmt::Display for PortPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.preferred.first, self.preferred.last)?;
        match self.overflow {
            Some(o) => write!(f, " and {}-{}", o.first, o.last),
            None => Ok(()),
        }
    }
}

/// How many camera listeners one process should hold: the open-file limit, raised to the hard
/// limit, less a reserve for accepted connections. `None` when the limit cannot be read.
pub(crate) fn listener_budget() -> Option<usize> {
    let limit = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    let reserve = (limit / 4).max(FD_PROCESS_RESERVE);
    // Tiny limits still get half for listeners rather than none.
    let budget = limit.saturating_sub(reserve).max(limit / 2).max(1);
    Some(usize::try_from(budget).unwrap_or(usize::MAX))
}

/// How many cameras one process should serve: the listener budget shared by each camera's
/// listeners.
pub fn camera_budget() -> Option<usize> {
    listener_budget().map(|budget| (budget / LISTENERS_PER_CAMERA).max(1))
}

/// Raises the soft open-file limit; refuses to start when the listeners alone would not fit.
pub(crate) fn reserve_file_descriptors(listeners: u64) -> io::Result<()> {
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

/// One port per camera from `plan` (`closed[i]` says camera `i` refuses connections), in
/// camera order.
///
/// Ports are picked here, walking the plan once, rather than by binding port 0: Linux hands
/// out even ports first and, once they run out, scans the whole half-range on every bind,
/// which makes twenty thousand binds take most of a minute.
pub(crate) fn bind_all(closed: &[bool], plan: PortPlan) -> io::Result<Vec<Port>> {
    let n = closed.len();
    let mut ports = Vec::with_capacity(n);
    for port in plan.candidates() {
        let Some(&refuse) = closed.get(ports.len()) else {
            break;
        };
        match bind_one(port, Bind::refusing(refuse)) {
            Ok(bound) => ports.push(bound),
            Err(e) if is_taken(&e) => continue,
            Err(e) => {
                let msg = format!("binding camera listener {} of {n}: {e}", ports.len() + 1);
                return Err(io::Error::new(e.kind(), msg));
            }
        }
    }
    if ports.len() < n {
        let msg = format!(
            "only {} free loopback ports in {plan} for {n} cameras",
            ports.len()
        );
        return Err(io::Error::new(io::ErrorKind::AddrNotAvailable, msg));
    }
    Ok(ports)
}

/// A listener on any free loopback port, picked like a camera's: the kernel's own pick
/// (port 0) fails outright when other programs crowd its ephemeral range, while a
/// [`PortPlan`] looks elsewhere too.
pub(crate) fn bind_loopback_listener() -> io::Result<TcpListener> {
    match bind_all(&[false], PortPlan::loopback())?.pop() {
        Some(Port::Listening(listener, _)) => Ok(listener),
        _ => Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no free loopback port",
        )),
    }
}

/// Binds `port` again, listening or refusing, after the socket that held it was closed
/// (a camera's SSH port following its SSH state). A refusing socket goes without
/// SO_REUSEADDR where it can, as in [`bind_all`]; if a connection of the closed listener
/// still lingers on the port, it needs the option to bind at all.
pub(crate) fn bind_again(port: u16, bind: Bind) -> io::Result<Port> {
    match bind_one(port, bind) {
        Err(e) if bind == Bind::Refuse && e.kind() == io::ErrorKind::AddrInUse => {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&SocketAddr::from((listen_ip(), port)).into())?;
            Ok(Port::Closed(socket, port))
        }
        other => other,
    }
}

/// The address every camera listens on: loopback, unless `SSHFLEET_SIM_IP` names another
/// local IPv4 address (a simulator in a network namespace of its own, reached over a veth
/// link). Read once; worker processes inherit the variable.
pub(crate) fn listen_ip() -> Ipv4Addr {
    static IP: std::sync::OnceLock<Ipv4Addr> = std::sync::OnceLock::new();
    *IP.get_or_init(|| {
        std::env::var("SSHFLEET_SIM_IP")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(Ipv4Addr::LOCALHOST)
    })
}

/// What a camera's port does: accept connections, or refuse them (bound, not listening).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Listen,
    Refuse,
}

impl Bind {
    /// `Refuse` for a port that is to refuse connections.
    pub(crate) fn refusing(refuse: bool) -> Bind {
        if refuse {
            Bind::Refuse
        } else {
            Bind::Listen
        }
    }
}

fn bind_one(port: u16, bind: Bind) -> io::Result<Port> {
    let addr = SocketAddr::from((listen_ip(), port));
    if bind == Bind::Listen {
        return TcpListener::bind(addr).map(|listener| Port::Listening(listener, port));
    }
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&addr.into())?;
    Ok(Port::Closed(socket, port))
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
    fn binds_distinct_ports_and_holds_closed_ones_without_listening() -> io::Result<()> {
        let ports = bind_all(&[false, true, false], PortPlan::for_fleet(3)?)?;
        let numbers: Vec<u16> = ports.iter().map(Port::number).collect();
        assert!(numbers[0] != numbers[1] && numbers[1] != numbers[2] && numbers[0] != numbers[2]);
        assert!(matches!(ports[1], Port::Closed(..)));
        let refused = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, numbers[1]));
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, numbers[1]));
        assert_eq!(
            taken.err().map(|e| e.kind()),
            Some(io::ErrorKind::AddrInUse)
        );
        Ok(())
    }

    #[test]
    fn a_port_can_change_between_listening_and_refusing() -> io::Result<()> {
        let mut ports = bind_all(&[true], PortPlan::for_fleet(1)?)?;
        let Some(Port::Closed(held, number)) = ports.pop() else {
            panic!("a refusing port");
        };
        drop(held);
        let Port::Listening(listener, _) = bind_again(number, Bind::Listen)? else {
            panic!("a listening port");
        };
        let client = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, number))?;
        let (accepted, _) = listener.accept()?;
        drop(listener);
        // A connection of the old listener is still there while the port refuses.
        let refusing = bind_again(number, Bind::Refuse)?;
        assert!(matches!(refusing, Port::Closed(..)));
        let refused = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, number));
        assert_eq!(
            refused.err().map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionRefused)
        );
        drop((client, accepted));
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
    fn fleets_keep_out_of_the_ephemeral_range_while_they_fit() -> io::Result<()> {
        let (low, high) = ephemeral_range();
        let plan = PortPlan::for_fleet(15_000)?;
        assert!(plan.len() > 30_000, "{plan}");
        let overflow = plan.overflow;
        if usize::from(low) >= FLEET_FLOOR + MIN_PREFERRED {
            assert_eq!(usize::from(plan.preferred.first), FLEET_FLOOR);
            assert_eq!(plan.preferred.last + 1, low);
            assert!(
                overflow.is_some_and(|o| o.first == low && o.last < high),
                "{plan}"
            );
            let first = plan.candidates().take(100).collect::<Vec<_>>();
            assert!(first.iter().all(|&p| p < low), "{first:?}");
        } else {
            assert_eq!(plan.preferred.first, low);
        }
        assert!(PortPlan::for_fleet(35_000).is_err(), "two ports per camera");
        Ok(())
    }

    #[test]
    fn a_loopback_listener_comes_from_the_fleet_plan() -> io::Result<()> {
        let listener = bind_loopback_listener()?;
        let port = listener.local_addr()?.port();
        let plan = PortPlan::loopback();
        assert!(plan.candidates().any(|p| p == port), "{port} not in {plan}");
        Ok(())
    }

    #[test]
    fn split_plans_share_no_port() -> io::Result<()> {
        let plans = PortPlan::for_fleet(1000)?.split(&[500, 500]);
        let ports = |plan: PortPlan| plan.candidates().collect::<std::collections::HashSet<_>>();
        assert!(ports(plans[0]).is_disjoint(&ports(plans[1])));
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
