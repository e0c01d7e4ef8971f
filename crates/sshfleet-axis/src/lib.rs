//! Axis cameras: VAPIX ssh.cgi/param.cgi/basicdeviceinfo, the SSH port probe, AXIS OS advisories.

pub mod advisories;
pub mod probe;
pub mod vapix;
