//! What the fleet publishes per camera — its address, inventory row and truth line — derived
//! from its fleet-wide index, spec and port alone, so that a supervisor of worker processes
//! writes exactly the files one process would.

use std::io::{self, Write};

use serde::Serialize;

use super::spec::{DeviceSpec, Fault, Firmware, SshFault};
use super::sshkex::SshServer;
use sshfleet_core::model::{Exposure, PortState, Status};

const SITES: [&str; 5] = ["site-a", "site-b", "site-c", "site-d", "site-e"];

/// The inventory's header; every camera is expected `disabled`.
pub(crate) const INVENTORY_HEADER: &str = "address,name,site,expect,ssh_port";

/// What a correct scan reports for one camera (a line of the truth file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    pub address: String,
    /// Known only when `expect_status` is `ok`.
    pub ssh_enabled: Option<bool>,
    pub expect_status: Status,
    /// The fault/firmware/auth/SSH port label, `none` for a clean camera.
    pub fault: String,
    /// The serial a scan learns from the camera's challenge (none when it never sends one,
    /// or its realm is not in the AXIS OS form).
    pub serial: Option<String>,
    /// What `--probe-ssh` sees on the camera's SSH port; `None` when it has none.
    pub ssh_port: Option<PortState>,
    /// What a scan with `--probe-ssh` reports; known only when `ssh_enabled` is.
    pub exposure: Option<Exposure>,
    /// What a scan with `--device-info` reports: the camera answered its SSH read (or said
    /// it has no usable SSH API) and has `basicdeviceinfo.cgi`, unharmed by its fault.
    pub model: Option<String>,
    pub firmware: Option<String>,
    /// What a scan with `--device-info` reports as `advisories`: the ids of the built-in
    /// advisories whose ranges hold `firmware` (by the simulator's own table), and those of
    /// them that need SSH; `None` when there is no firmware or it is no AXIS OS version.
    pub advisories: Option<(Vec<&'static str>, Vec<&'static str>)>,
    /// What the SSH evidence reads on the camera's SSH port when it answers with a key
    /// exchange: the host key's fingerprint, the crypto grade and Terrapin.
    pub ssh_evidence: Option<SshTruth>,
}

/// The simulator's own statement of a camera's SSH server, for the truth file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTruth {
    pub host_key: String,
    /// The host key differs from the one the camera showed at the key epoch before.
    pub key_changed: bool,
    pub crypto: &'static str,
    pub terrapin: Option<&'static str>,
}

#[derive(Serialize)]
struct TruthLine<'a> {
    address: &'a str,
    ssh_enabled: Option<bool>,
    expect_status: &'a str,
    fault: &'a str,
    serial: Option<&'a str>,
    ssh_port: Option<&'a str>,
    exposure: Option<&'a str>,
    model: Option<&'a str>,
    firmware: Option<&'a str>,
    advisories: Option<&'a [&'static str]>,
    ssh_advisories: Option<&'a [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_host_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_key_changed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_crypto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssh_terrapin: Option<&'a str>,
}

/// Models of the simulated fleet: product number and full name.
const MODELS: [(&str, &str); 6] = [
    ("P3265-LVE", "AXIS P3265-LVE Dome Camera"),
    ("M3106-L Mk II", "AXIS M3106-L Mk II Network Camera"),
    ("Q6135-LE", "AXIS Q6135-LE PTZ Network Camera"),
    ("P1455-LE", "AXIS P1455-LE Network Camera"),
    ("M3086-V", "AXIS M3086-V Network Camera"),
    ("Q1656", "AXIS Q1656 Box Camera"),
];

/// The AXIS OS versions of cameras with today's firmware, spread over the advisories' ranges
/// (see [`super::advisories`]): two inside CVE-2026-1185's (needs SSH), one just fixed, one
/// fixed for every advisory, LTS tracks with their own ranges, and a beta version text that
/// is no AXIS OS version (what applies to it is unknown).
const MODERN_VERSIONS: [&str; 9] = [
    "10.12.114",
    "11.11.73",
    "12.2.62",
    "12.10.35",
    "12.10.36",
    "12.11.80",
    "11.11.180",
    "11.11.140",
    "12.5.1-beta",
];

/// What a camera says of itself through `basicdeviceinfo.cgi`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    pub model: &'static str,
    pub product: &'static str,
    pub firmware: &'static str,
    pub serial: String,
}

/// The facts of the camera at fleet-wide `index`, `None` when its firmware predates
/// `basicdeviceinfo.cgi`. The serial is the one its realm names, also for cameras whose
/// realm does not say it.
pub(crate) fn facts(index: usize, firmware: Firmware) -> Option<Facts> {
    let version = match firmware {
        Firmware::Modern => MODERN_VERSIONS[index % MODERN_VERSIONS.len()],
        Firmware::V2Only => "13.0.4",
        Firmware::ParamOnly => "9.80.3.8",
        Firmware::Ancient => return None,
    };
    let (model, product) = MODELS[(index / 5) % MODELS.len()];
    Some(Facts {
        model,
        product,
        firmware: version,
        serial: format!("ACCC8E{:06X}", (0x01_2345 + index) & 0xFF_FFFF),
    })
}

/// One camera in 97 has a realm that names no serial (older or rebranded firmware, a proxy).
const FOREIGN_REALM_EVERY: usize = 97;

/// The authentication realm of the camera at fleet-wide `index`: AXIS OS style with a
/// serial unique in the fleet, or now and then a realm without one.
pub(crate) fn realm(index: usize) -> String {
    match serial(index) {
        Some(serial) => format!("AXIS_{serial}"),
        None => "Restricted area".to_owned(),
    }
}

/// The serial camera `index` is built with: the simulator's own statement, not a parse of
/// its realm, so a bug in the client's realm parser shows in every truth comparison. A
/// camera with a foreign realm has none a scan can learn.
pub(crate) fn serial(index: usize) -> Option<String> {
    (index % FOREIGN_REALM_EVERY != FOREIGN_REALM_EVERY - 1)
        .then(|| format!("ACCC8E{:06X}", (0x01_2345 + index) & 0xFF_FFFF))
}

/// The simulator's own exposure rule: what a camera whose configuration reads `reported`
/// exposes when its SSH port is `port` (unknown unless both are known).
fn exposure(reported: Option<bool>, port: Option<PortState>) -> Option<Exposure> {
    Some(match (reported?, port?) {
        (true, PortState::Open) => Exposure::Consistent,
        (true, _) => Exposure::ConfigOnly,
        (false, PortState::Open) => Exposure::PortOnly,
        (false, _) => Exposure::Consistent,
    })
}

/// The camera's address as the inventory writes it.
pub(crate) fn address(port: u16, https: bool) -> String {
    let ip = super::ports::listen_ip();
    match https {
        true => format!("https://{ip}:{port}"),
        false => format!("{ip}:{port}"),
    }
}

/// The inventory row of the camera at fleet-wide `index`.
pub(crate) fn write_inventory_row(
    mut w: impl Write,
    index: usize,
    address: &str,
    ssh_port: Option<u16>,
) -> io::Result<()> {
    let site = SITES[index % SITES.len()];
    let ssh_port = ssh_port.map_or(String::new(), |p| p.to_string());
    writeln!(
        w,
        "{address},cam-{:04},{site},disabled,{ssh_port}",
        index + 1
    )
}

/// What a correct scan reports for the camera at fleet-wide `index` in state `ssh_enabled`.
/// `authenticates` says whether it asks for credentials at all (see
/// [`DeviceSpec::expect_status`]), `ssh_served` whether it has an SSH port.
pub(crate) fn truth(
    index: usize,
    spec: &DeviceSpec,
    address: &str,
    ssh_enabled: bool,
    authenticates: bool,
    ssh_served: bool,
) -> Truth {
    // Cameras that never answer, or refuse everything before authentication, send no
    // challenge to learn a serial from.
    let challenges = authenticates
        && !matches!(
            spec.fault,
            Fault::Closed | Fault::Hang | Fault::Throttled | Fault::ThrottledLong
        );
    let expect_status = spec.expect_status(authenticates);
    let reported = (expect_status == Status::Ok).then_some(ssh_enabled);
    let ssh_port = ssh_served.then(|| spec.ssh.expect_port(ssh_enabled));
    let answered = matches!(expect_status, Status::Ok | Status::Unsupported);
    // A cut-off JSON answer breaks basicdeviceinfo.cgi too; no other fault of a camera that
    // answered its SSH read touches it.
    let facts =
        facts(index, spec.firmware).filter(|_| answered && spec.fault != Fault::MalformedJson);
    Truth {
        address: address.to_owned(),
        ssh_enabled: reported,
        expect_status,
        fault: spec.label(),
        serial: challenges.then(|| serial(index)).flatten(),
        ssh_port,
        exposure: exposure(reported, ssh_port),
        model: facts.as_ref().map(|f| f.model.to_owned()),
        firmware: facts.as_ref().map(|f| f.firmware.to_owned()),
        advisories: facts
            .as_ref()
            .and_then(|f| super::advisories::applying(f.firmware)),
        ssh_evidence: None,
    }
}

/// What the SSH evidence reads from a camera whose server is `server`, with SSH port fault
/// `ssh`, when its port is `port`: only a port that is open and speaks the protocol (no
/// trickle, endless or hostile line) gets as far as a key.
pub(crate) fn ssh_truth(
    server: &SshServer,
    ssh: SshFault,
    port: Option<PortState>,
) -> Option<SshTruth> {
    let speaks = matches!(ssh, SshFault::None | SshFault::StrayListener);
    if port != Some(PortState::Open) || !speaks {
        return None;
    }
    Some(SshTruth {
        host_key: server.key()?.fingerprint(),
        key_changed: server.rekeyed,
        crypto: server.offer.crypto(),
        terrapin: server.offer.terrapin(),
    })
}

/// One JSON line of the truth file.
pub(crate) fn write_truth_line(mut w: impl Write, t: &Truth) -> io::Result<()> {
    let line = TruthLine {
        address: &t.address,
        ssh_enabled: t.ssh_enabled,
        expect_status: t.expect_status.as_str(),
        fault: &t.fault,
        serial: t.serial.as_deref(),
        ssh_port: t.ssh_port.map(PortState::as_str),
        exposure: t.exposure.map(Exposure::as_str),
        model: t.model.as_deref(),
        firmware: t.firmware.as_deref(),
        advisories: t.advisories.as_ref().map(|(ids, _)| ids.as_slice()),
        ssh_advisories: t.advisories.as_ref().map(|(_, ssh)| ssh.as_slice()),
        ssh_host_key: t.ssh_evidence.as_ref().map(|e| e.host_key.as_str()),
        ssh_key_changed: t.ssh_evidence.as_ref().map(|e| e.key_changed),
        ssh_crypto: t.ssh_evidence.as_ref().map(|e| e.crypto),
        ssh_terrapin: t.ssh_evidence.as_ref().and_then(|e| e.terrapin),
    };
    serde_json::to_writer(&mut w, &line)?;
    w.write_all(b"\n")
}
