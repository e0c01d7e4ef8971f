//! The supervisor–worker protocol: one JSON [`Assignment`] line on the worker's stdin, one
//! JSON [`Announcement`] line on its stdout once it serves. Closing the stdin stops it.

use std::io;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::super::fleet::Part;
use super::super::ports::PortPlan;
use super::super::tls::TlsIdentity;
use super::super::{EquinixFaults, SimConfig};

/// Everything one worker needs: the whole fleet's description (so that it computes the same
/// specs) and which part of it to serve. It travels over a pipe, never the command line,
/// because it carries the fleet password.
#[derive(Serialize, Deserialize)]
pub(super) struct Assignment {
    fleet: FleetDescription,
    pub devices: Range<usize>,
    ports: PortPlan,
    tls: Option<TlsIdentity>,
    /// Serve a control API on an ephemeral loopback port for the supervisor to relay.
    control: bool,
}

/// The [`SimConfig`] fields that define a generated fleet.
#[derive(Serialize, Deserialize)]
struct FleetDescription {
    devices: usize,
    seed: u64,
    latency: Duration,
    faults: String,
    slow_delays: (Duration, Duration),
    https: bool,
    auth: String,
    username: String,
    password: String,
    nonce_lifetime: Duration,
    ssh_ports: bool,
    #[serde(default)]
    key_epoch: u16,
}

/// What a worker reports once every camera of its part listens.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Announcement {
    /// One port per camera of the part, in camera order.
    pub ports: Vec<u16>,
    /// One SSH port per camera of the part, in camera order.
    pub ssh_ports: Vec<u16>,
    /// The worker's own control API, when asked for.
    pub control: Option<String>,
}

impl Assignment {
    pub(super) fn new(cfg: &SimConfig, part: Part) -> Assignment {
        Assignment {
            fleet: FleetDescription {
                devices: cfg.devices,
                seed: cfg.seed,
                latency: cfg.latency,
                faults: cfg.faults.as_str().to_owned(),
                slow_delays: (*cfg.slow_delays.start(), *cfg.slow_delays.end()),
                https: cfg.https,
                auth: cfg.auth.as_str().to_owned(),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                nonce_lifetime: cfg.nonce_lifetime,
                ssh_ports: cfg.ssh_ports,
                key_epoch: cfg.key_epoch,
            },
            devices: part.devices,
            ports: part.ports,
            tls: part.tls,
            control: cfg.control.is_some(),
        }
    }

    /// The fleet's config as the worker runs it, and its part.
    pub(super) fn into_parts(self) -> io::Result<(SimConfig, Part)> {
        let f = self.fleet;
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        let cfg = SimConfig {
            devices: f.devices,
            seed: f.seed,
            latency: f.latency,
            faults: f.faults.parse().map_err(invalid)?,
            slow_delays: f.slow_delays.0..=f.slow_delays.1,
            https: f.https,
            auth: f.auth.parse().map_err(invalid)?,
            username: f.username,
            password: f.password,
            nonce_lifetime: f.nonce_lifetime,
            control: self.control.then(|| ([127, 0, 0, 1], 0).into()),
            specs: None,
            ssh_ports: f.ssh_ports,
            // The supervisor serves the mock Equinix API itself; workers serve cameras only.
            equinix_users: None,
            equinix_faults: EquinixFaults::default(),
            key_epoch: f.key_epoch,
        };
        let part = Part {
            devices: self.devices,
            ports: self.ports,
            tls: self.tls,
        };
        Ok((cfg, part))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthPolicy, FaultProfile};

    #[test]
    fn an_assignment_round_trips_the_fleet_description() -> Result<(), Box<dyn std::error::Error>> {
        let cfg = SimConfig {
            devices: 130,
            seed: 9,
            faults: FaultProfile::None,
            auth: AuthPolicy::Basic,
            latency: Duration::from_millis(7),
            control: Some(([127, 0, 0, 1], 0).into()),
            ..SimConfig::default()
        };
        let ports = PortPlan::for_fleet(130)?;
        let part = Part {
            devices: 44..87,
            ports,
            tls: None,
        };
        let line = serde_json::to_string(&Assignment::new(&cfg, part))?;
        let (back, part) = serde_json::from_str::<Assignment>(&line)?.into_parts()?;
        assert_eq!(format!("{back:?}"), format!("{cfg:?}"));
        assert_eq!(part.devices, 44..87);
        assert_eq!(part.ports, ports);
        Ok(())
    }
}
