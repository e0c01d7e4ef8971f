//! What the whole-fleet benches share: their settings from the environment, and the CPU time
//! of the scanner apart from the in-process simulator's threads (Linux `/proc`).

#![allow(
    dead_code,
    reason = "each bench that includes this module uses a part of it"
)]

use std::time::Duration;

/// The number in environment variable `name`, or `default` when it is not set.
pub(crate) fn env_or(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// CPU time used so far, by the whole process and by the scanner alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuTime {
    /// The whole process: scanner, simulator, writer. It keeps the time of threads that have
    /// ended (the writer thread, blocking-pool threads).
    pub(crate) process: Duration,
    /// The process less the threads whose name holds `sim_thread`.
    pub(crate) scanner: Duration,
}

impl CpuTime {
    /// What was used between `before` and `self`.
    pub(crate) fn since(self, before: CpuTime) -> CpuTime {
        CpuTime {
            process: self.process.saturating_sub(before.process),
            scanner: self.scanner.saturating_sub(before.scanner),
        }
    }
}

/// The CPU time of this process, and of it less the simulator's threads (named with
/// `sim_thread`); `None` off Linux.
pub(crate) fn cpu_time(sim_thread: &str) -> Option<CpuTime> {
    let process = cpu_ticks("/proc/self/stat")?.1;
    let mut scanner = process;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("stat");
        match cpu_ticks(&path.to_string_lossy()) {
            Some((comm, sim)) if comm.contains(sim_thread) => {
                scanner = scanner.saturating_sub(sim);
            }
            _ => {}
        }
    }
    const TICKS_PER_SECOND: u64 = 100;
    let time = |ticks: u64| Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND);
    Some(CpuTime {
        process: time(process),
        scanner: time(scanner),
    })
}

/// `(comm, utime + stime)` of a `/proc/.../stat` file.
fn cpu_ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
    let (comm, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm.to_owned(), utime + stime))
}

/// A scanner of the simulator's cameras (its `root`/`pass` account), `concurrency` at a
/// time, judging against `expect` and probing the SSH port as `probe` says.
/// `ca_file`: the simulator's CA, when its cameras speak HTTPS (verified, as users run it).
pub(crate) fn sim_scanner(
    concurrency: usize,
    expect: Option<sshfleet_core::model::SshState>,
    probe: Option<sshfleet_axis::probe::ProbeSettings>,
    ca_file: Option<&std::path::Path>,
) -> sshfleet_engine::scan::Scanner {
    use sshfleet_net::{ClientSettings, HttpClient};
    let mut client = ClientSettings::default();
    client.trust.ca_file = ca_file.map(std::path::Path::to_path_buf);
    let http = HttpClient::new(&client).expect("HTTP client");
    let settings = sshfleet_engine::scan::ScanSettings {
        concurrency,
        credentials: sshfleet_net::auth::Credentials {
            username: "root".into(),
            password: sshfleet_core::secret::Secret::new("pass"),
        },
        row_passwords: std::collections::HashMap::new(),
        password_from: "the simulator's password".into(),
        auth_breaker: sshfleet_net::breaker::BreakerMode::default(),
        policy: sshfleet_axis::vapix::SessionPolicy::default(),
        expect,
        grace: Duration::from_secs(10),
        waivers: None,
        probe,
        device_info: false,
        advisories: None,
    };
    sshfleet_engine::scan::Scanner::new(std::sync::Arc::new(http), settings)
}
