//! Report records and their writers (CSV, JSON Lines, JSON), streamed by one writer thread.

pub mod record;

pub use record::{Action, DeviceRecord, Method, Remediation, SshState, Status};
