//! Integration tests: the real binary and library against the simulator on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod equinix_support;
#[path = "../../crates/sshfleet-history/tests/support/cluster.rs"]
mod pg_cluster;
mod support;

mod advisories;
mod central_history;
mod change_text;
mod cli_contract;
mod deploy;
mod device_info;
mod diagnostics;
mod drift;
mod equinix_cli;
mod equinix_evidence;
mod equinix_exact;
mod equinix_ops;
mod equinix_paging;
mod equinix_policy;
mod equinix_redact;
mod equinix_schema;
mod equinix_throttle;
mod equinix_token;
mod exhaustion;
mod findings_truth;
mod first_contact;
mod fleet_view;
mod foreign_history;
mod fuzz_corpus;
mod host_keys;
mod hostile;
mod html_report;
mod independent_camera;
mod inert_strings;
mod inventory_hostile;
mod junit;
mod merge;
mod metrics;
mod net_heads;
mod netns;
mod notify;
mod ocsf;
mod odd_runs;
mod output_files;
mod plan;
mod plan_signing;
mod probe_ssh;
mod probe_ssh_servers;
mod remediate;
mod revert;
mod scan_auth;
mod scan_statuses;
mod scan_tls;
mod scan_truth;
mod sim_command;
mod sim_workers;
mod snapshots;
mod usage;
mod waves;
mod window;
