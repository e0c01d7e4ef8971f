//! `sshfleet sim`: serve the simulated fleet (and the mock Equinix API) until SIGINT/SIGTERM,
//! announcing `ready …`.

use std::io::Write as _;

use anyhow::{anyhow, Context as _};

use super::args::SimArgs;
use super::{install_signal_handlers, Exit};
use crate::sim::{self, AuthPolicy, EquinixFaults, FaultProfile, SimConfig};

pub(super) async fn run(args: SimArgs) -> anyhow::Result<Exit> {
    let config = config_from(&args)?;
    let (_trigger, shutdown) = install_signal_handlers(true);
    sim::run(
        config,
        args.inventory_out,
        args.truth_out,
        args.ca_out,
        shutdown,
        |line: &str| {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        },
    )
    .await
    .context("simulator failed")?;
    Ok(Exit::Clean)
}

fn config_from(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let faults: FaultProfile = args.faults.parse().map_err(|_| {
        anyhow!(
            "unknown fault profile {:?} (use realistic or none)",
            args.faults
        )
    })?;
    let auth: AuthPolicy = args
        .auth
        .parse()
        .map_err(|_| anyhow!("unknown auth {:?} (use digest, basic or none)", args.auth))?;
    Ok(SimConfig {
        devices: args.devices,
        seed: args.seed,
        latency: args.latency,
        faults,
        https: args.https,
        auth,
        username: args.username.clone(),
        password: args.password.clone(),
        nonce_lifetime: args.nonce_lifetime,
        control: args.control,
        equinix_users: args.equinix.equinix_users,
        equinix_faults: equinix_faults(&args.equinix),
        ..SimConfig::default()
    })
}

fn equinix_faults(args: &super::args::SimEquinixArgs) -> EquinixFaults {
    EquinixFaults {
        throttle_every: args.equinix_throttle_every,
        retry_after: args.equinix_retry_after,
        expire_every: args.equinix_expire_every,
        error_every: args.equinix_error_every,
        token_lifetime: args.equinix_token_lifetime,
        drift_per_page: args.equinix_drift,
        total_overstated_by: args.equinix_overstate_total,
        created_uuid_in_location_only: false,
        association_needs_body: args.equinix_association_needs_body,
    }
}
