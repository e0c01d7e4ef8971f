//! sshfleet's vocabulary and leaves: statuses, secrets, shutdown, hashing, files, rates, time, inert text.

pub mod files;
pub mod glob;
pub mod hash;
pub mod inert;
pub mod lenient;
pub mod model;
pub mod rate;
pub mod secret;
pub mod shutdown;
pub mod time;
