//! What the engine's unit tests start from: simulated cameras on loopback with their
//! inventory rows, and scan settings with the simulator's credentials.

use std::collections::HashMap;
use std::time::Duration;

use crate::device::ScanSettings;
use sshfleet_axis::vapix::SessionPolicy;
use sshfleet_core::secret::Secret;
use sshfleet_inventory::Rows;
use sshfleet_net::auth::Credentials;
use sshfleet_net::breaker::BreakerMode;
use sshfleet_net::{ClientSettings, HttpClient};
use sshfleet_sim::{DeviceSpec, Fleet, SimConfig};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fleet of these cameras (no SSH ports) and the rows of its inventory.
pub(crate) async fn fleet(
    specs: Vec<DeviceSpec>,
) -> Result<(Fleet, Rows), Box<dyn std::error::Error>> {
    let fleet = Fleet::start(SimConfig {
        specs: Some(specs),
        ssh_ports: false,
        ..SimConfig::default()
    })
    .await?;
    let mut csv = Vec::new();
    fleet.write_inventory(&mut csv)?;
    let inventory = sshfleet_inventory::parse(&csv[..], &Default::default())?;
    Ok((fleet, inventory.rows))
}

/// One device at a time, the simulator's account, no waivers, probes or device facts.
pub(crate) fn scan_settings() -> ScanSettings {
    ScanSettings {
        concurrency: 1,
        credentials: Credentials {
            username: "root".into(),
            password: Secret::new("pass"),
        },
        row_passwords: HashMap::new(),
        password_from: "the test".into(),
        auth_breaker: BreakerMode::Off,
        policy: SessionPolicy::default(),
        expect: None,
        grace: Duration::from_secs(5),
        waivers: None,
        probe: None,
        device_info: false,
        advisories: None,
    }
}

/// A client with a 5 s request timeout.
pub(crate) fn client() -> Result<HttpClient, Box<dyn std::error::Error>> {
    Ok(HttpClient::new(&ClientSettings {
        timeout: Duration::from_secs(5),
        ..ClientSettings::default()
    })?)
}
