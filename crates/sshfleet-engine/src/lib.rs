//! Scans and remediation of devices, Equinix policy, waivers, settings, the run lifecycle.

pub mod advisories;
pub mod device;
pub mod equinix;
pub mod fleet;
pub mod notify;
pub mod outcome;
pub mod remediate;
pub mod run;
pub mod scan;
pub mod settings;
#[cfg(test)]
mod test_support;
pub mod waivers;
