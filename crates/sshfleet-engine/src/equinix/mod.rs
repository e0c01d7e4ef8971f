//! Equinix Network Edge policy over the client (`sshfleet_equinix`): the policy file,
//! bulk operations and the staged remediation of SSH users.

pub mod bulk;
pub mod policy;
pub mod remediate;
