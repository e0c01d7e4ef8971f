//! sshfleet: audit and remediate SSH exposure across fleets of Axis cameras (VAPIX `ssh.cgi`,
//! `param.cgi`) and Equinix Network Edge SSH users.
//!
//! This package is the command line (`cli`, clap and the terminal) over the workspace's crates:
//! `sshfleet-engine` runs scans and remediation and never prints; every device becomes a
//! `sshfleet_report::DeviceRecord`.

pub mod cli;
