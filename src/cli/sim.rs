//! `sshfleet sim`: serve the simulated fleet (and the mock Equinix API) until SIGINT/SIGTERM,
//! announcing `ready …`; a fleet beyond this process's open-file budget is split across
//! worker processes.

use std::io::Write as _;

use anyhow::{anyhow, Context as _};

use super::args::SimArgs;
use super::verbosity::Verbosity;
use super::{install_signal_handlers, Exit, Stopping};
use sshfleet_sim as sim;
use sshfleet_sim::{AuthPolicy, EquinixFaults, FaultProfile, OutputFiles, SimConfig, WorkerPlan};

/// Overrides the cameras one process serves (tests use it to split small fleets).
const DEVICES_PER_PROCESS_ENV: &str = "SSHFLEET_SIM_DEVICES_PER_PROCESS";

pub(super) async fn run(args: SimArgs) -> anyhow::Result<Exit> {
    if let Some(part) = &args.worker {
        return run_worker(part).await;
    }
    let config = config_from(&args)?;
    let workers = worker_plan(&args)?;
    let files = OutputFiles {
        inventory: args.inventory_out,
        truth: args.truth_out,
        ca: args.ca_out,
    };
    let (_trigger, shutdown) = install_signal_handlers(Verbosity::Quiet, Stopping::Quietly);
    sim::run(config, files, workers, shutdown, print_line)
        .await
        .context("simulator failed")?;
    Ok(Exit::Clean)
}

/// One part of a split fleet: the assignment comes on stdin, the announcement goes to stdout.
async fn run_worker(part: &str) -> anyhow::Result<Exit> {
    let (trigger, shutdown) = install_signal_handlers(Verbosity::Quiet, Stopping::Quietly);
    sim::serve_worker(std::io::stdin(), trigger, shutdown, print_line)
        .await
        .with_context(|| format!("simulator worker {part} failed"))?;
    Ok(Exit::Clean)
}

fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// Workers are planned only when the fleet exceeds what one process should hold.
fn worker_plan(args: &SimArgs) -> anyhow::Result<Option<WorkerPlan>> {
    let Some(devices_per_process) = devices_per_process()? else {
        return Ok(None);
    };
    if args.devices <= devices_per_process {
        return Ok(None);
    }
    let program = std::env::current_exe()
        .context("cannot locate this executable to start simulator workers")?;
    Ok(Some(WorkerPlan {
        program,
        devices_per_process,
        verbose: args.verbose,
    }))
}

/// From the environment override, else the open-file budget (`None`: limit unknown).
fn devices_per_process() -> anyhow::Result<Option<usize>> {
    match std::env::var(DEVICES_PER_PROCESS_ENV) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(anyhow!(
                "{DEVICES_PER_PROCESS_ENV} must be a positive number, not {text:?}"
            )),
        },
        Err(std::env::VarError::NotPresent) => Ok(sim::camera_budget()),
        Err(e) => Err(anyhow!("{DEVICES_PER_PROCESS_ENV}: {e}")),
    }
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
        key_epoch: args.key_epoch,
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
        association_needs_body: args.equinix_association_needs_body,
        ..EquinixFaults::default()
    }
}
