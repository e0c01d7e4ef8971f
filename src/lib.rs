//! sshfleet: audit and remediate SSH exposure across fleets of Axis cameras (VAPIX `ssh.cgi`,
//! `param.cgi`) and Equinix Network Edge SSH users.
//!
//! The engine (`scan`, `vapix`, `equinix`, `net`) never prints and never panics on device input: every
//! device becomes a [`report::DeviceRecord`]. Terminal output lives in `cli` only.

pub mod advisories;
pub mod breaker;
pub mod cli;
pub mod device;
pub mod equinix;
pub mod files;
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
pub mod hash;
pub mod history;
pub mod inert;
pub mod inventory;
pub mod lenient;
pub mod model;
pub mod net;
pub mod outcome;
pub mod probe;
pub mod rate;
pub mod remediate;
pub mod report;
pub mod run;
pub mod scan;
pub mod secret;
pub mod settings;
pub mod shutdown;
pub mod sim;
pub mod time;
pub mod vapix;
pub mod waivers;
