//! `--format ocsf`: one OCSF Compliance Finding (class 2003) per device and control, as JSON
//! Lines (one event a line, as log shippers and SIEM collectors take OCSF events; shard
//! outputs concatenate). The finding's `uid` is stable per device identity and control, so a
//! resend updates the same finding; its activity comes from the drift against the previous
//! run: new or regressed opens it (Create), unchanged updates it, fixed or gone closes it.
//! Device text (names, sites, errors) is only ever a JSON string value.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::drift::Baseline;
use super::read::Observation;
use super::record::{Change, DeviceRecord, Drift};
use super::RecordWriter;
use sshfleet_core::time::{now_unix_ms, parse_rfc3339_ms};
use sshfleet_ssh::grade::{Crypto, Terrapin};

/// The OCSF schema version the findings follow.
pub const OCSF_VERSION: &str = "1.5.0";

const CLASS_UID: u32 = 2003;
const CATEGORY_UID: u32 = 2;
/// OCSF `device.type_id` 7: IoT.
const DEVICE_IOT: u32 = 7;

/// What a finding checks on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// SSH in the desired state (or off, without one): every device.
    SshState,
    /// The SSH crypto grade (`ssh_crypto`), when the evidence was read.
    SshCrypto,
    /// Terrapin (CVE-2023-48795, `ssh_terrapin`), when the evidence was read.
    SshTerrapin,
}

impl Control {
    pub fn id(self) -> &'static str {
        match self {
            Control::SshState => "ssh_state",
            Control::SshCrypto => "ssh_crypto",
            Control::SshTerrapin => "ssh_terrapin",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Control::SshState => "SSH in desired state",
            Control::SshCrypto => "SSH crypto grade",
            Control::SshTerrapin => "SSH not prone to Terrapin",
        }
    }
}

/// The finding's activity (OCSF `activity_id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Create = 1,
    Update = 2,
    Close = 3,
}

impl Activity {
    /// From the device's drift: new or regressed (or no previous run) opens the finding,
    /// fixed closes it, anything else updates it.
    pub fn of(drift: Option<&Drift>) -> Activity {
        match drift.map(|d| d.change) {
            None | Some(Change::New | Change::Regressed) => Activity::Create,
            Some(Change::Fixed | Change::Gone) => Activity::Close,
            Some(Change::Unchanged | Change::Lost | Change::Recovered | Change::Moved) => {
                Activity::Update
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Update => "Update",
            Activity::Close => "Close",
        }
    }
}

/// A control's result on a device: OCSF compliance status, severity, and what was seen.
struct Verdict {
    /// 0 Unknown, 1 Pass, 3 Fail.
    status_id: u32,
    severity_id: u32,
    detail: String,
}

impl Verdict {
    fn status_name(&self) -> &'static str {
        match self.status_id {
            1 => "Pass",
            3 => "Fail",
            _ => "Unknown",
        }
    }

    fn severity_name(&self) -> &'static str {
        match self.severity_id {
            1 => "Informational",
            2 => "Low",
            3 => "Medium",
            4 => "High",
            _ => "Unknown",
        }
    }
}

/// The identity a finding is kept under: the serial when the device told it, else the
/// site and address (addresses repeat across sites' private networks).
pub fn identity(serial: Option<&str>, site: &str, address: &str) -> String {
    match serial {
        Some(serial) => format!("serial:{serial}"),
        None => format!("address:{site}/{address}"),
    }
}

/// `finding_info.uid`: stable per device identity and control.
pub fn finding_uid(control: Control, identity: &str) -> String {
    format!("sshfleet:{}:{identity}", control.id())
}

/// The controls a record is judged on: the SSH state always, the evidence when read.
pub fn controls(rec: &DeviceRecord) -> Vec<Control> {
    let mut controls = vec![Control::SshState];
    if rec.ssh.crypto.is_some() {
        controls.push(Control::SshCrypto);
    }
    if rec.ssh.terrapin.is_some() {
        controls.push(Control::SshTerrapin);
    }
    controls
}

fn verdict(rec: &DeviceRecord, control: Control) -> Verdict {
    match control {
        Control::SshState => state_verdict(rec),
        Control::SshCrypto => match rec.ssh.crypto {
            Some(Crypto::Ok) => pass("crypto ok"),
            Some(Crypto::Weak) => fail(2, "crypto weak"),
            Some(Crypto::Fail) => fail(3, "crypto fail"),
            None => unknown("crypto not read".to_owned()),
        },
        Control::SshTerrapin => match rec.ssh.terrapin {
            Some(Terrapin::Mitigated) => pass("terrapin mitigated (strict key exchange)"),
            Some(Terrapin::Vulnerable) => fail(3, "terrapin vulnerable"),
            None => unknown("terrapin not read".to_owned()),
        },
    }
}

fn state_verdict(rec: &DeviceRecord) -> Verdict {
    let ssh = match rec.ssh_enabled {
        Some(true) => "SSH on",
        Some(false) => "SSH off",
        None => "SSH state unknown",
    };
    let expected = rec
        .expect
        .map(|e| format!(", expected {e}"))
        .unwrap_or_default();
    match (rec.compliant, rec.ssh_enabled) {
        (Some(true), _) => pass(&format!("{ssh}{expected}")),
        (Some(false), _) => fail(4, &format!("{ssh}{expected}")),
        // Without a desired state, SSH on is exposure.
        (None, Some(true)) if rec.expect.is_none() => fail(4, ssh),
        (None, Some(false)) if rec.expect.is_none() => pass(ssh),
        _ => unknown(match &rec.error {
            Some(error) => format!("{}: {error}", rec.status),
            None => rec.status.to_string(),
        }),
    }
}

fn pass(detail: &str) -> Verdict {
    Verdict {
        status_id: 1,
        severity_id: 1,
        detail: detail.to_owned(),
    }
}

fn fail(severity_id: u32, detail: &str) -> Verdict {
    Verdict {
        status_id: 3,
        severity_id,
        detail: detail.to_owned(),
    }
}

fn unknown(detail: String) -> Verdict {
    Verdict {
        status_id: 0,
        severity_id: 0,
        detail,
    }
}

/// The run's side of every finding.
#[derive(Clone, Debug)]
pub struct Producer {
    /// sshfleet's version (`metadata.product.version`).
    pub version: String,
}

/// The fields every finding shares: class, activity, status, metadata.
fn envelope(
    producer: &Producer,
    activity: Activity,
    verdict: &Verdict,
    waived: bool,
) -> Map<String, Value> {
    let (status_id, status) = match (waived, activity) {
        (true, _) => (3, "Suppressed"),
        (false, Activity::Close) => (4, "Resolved"),
        (false, _) => (1, "New"),
    };
    let activity_id = activity as u32;
    let value = json!({
        "class_uid": CLASS_UID,
        "class_name": "Compliance Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity.name(),
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": format!("Compliance Finding: {}", activity.name()),
        "severity_id": verdict.severity_id,
        "severity": verdict.severity_name(),
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "sshfleet",
                "vendor_name": "sshfleet",
                "version": producer.version,
            },
        },
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// `device`: IoT, with its address as `ip` (an IP literal) or `hostname`.
fn device(address: &str, name: &str, site: &str, serial: Option<&str>) -> Map<String, Value> {
    let mut device = Map::new();
    device.insert("type_id".into(), DEVICE_IOT.into());
    device.insert("type".into(), "IOT".into());
    match host_of(address) {
        Host::Ip(ip) => device.insert("ip".into(), ip.to_string().into()),
        Host::Name(host) => device.insert("hostname".into(), host.into()),
    };
    if !name.is_empty() {
        device.insert("name".into(), name.into());
    }
    if let Some(serial) = serial {
        device.insert("uid".into(), serial.into());
    }
    if !site.is_empty() {
        device.insert("groups".into(), json!([{ "name": site, "type": "site" }]));
    }
    device
}

enum Host {
    Ip(IpAddr),
    Name(String),
}

/// The host of an inventory address (IP literal, name, `host:port`, `http(s)://host:port/`).
fn host_of(address: &str) -> Host {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Ok(ip) = authority.parse::<IpAddr>() {
        return Host::Ip(ip);
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(bracketed),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host.to_owned()),
    }
}

/// One finding for `control` on the device of `rec`.
pub fn finding(producer: &Producer, rec: &DeviceRecord, control: Control) -> Value {
    let verdict = verdict(rec, control);
    let activity = Activity::of(rec.drift.as_ref());
    let mut event = envelope(producer, activity, &verdict, rec.waiver.is_some());
    let checked = parse_rfc3339_ms(&rec.checked_at).unwrap_or_else(now_unix_ms);
    let id = identity(rec.serial.as_deref(), &rec.site, &rec.address);
    let mut info = json!({
        "uid": finding_uid(control, &id),
        "title": control.title(),
        "types": [control.id()],
        "last_seen_time": checked,
    });
    if let (Some(drift), Value::Object(info)) = (&rec.drift, &mut info) {
        let times = [
            ("first_seen_time", &drift.first_seen),
            ("modified_time", &drift.state_since),
        ];
        for (key, text) in times {
            if let Some(ms) = parse_rfc3339_ms(text) {
                info.insert(key.into(), ms.into());
            }
        }
    }
    event.insert("time".into(), checked.into());
    event.insert("finding_info".into(), info);
    event.insert("compliance".into(), compliance(control, &verdict));
    let mut device = device(&rec.address, &rec.name, &rec.site, rec.serial.as_deref());
    if let Some(model) = &rec.model {
        device.insert("model".into(), model.as_str().into());
        device.insert("vendor_name".into(), "Axis Communications".into());
    }
    event.insert("device".into(), device.into());
    event.insert("message".into(), verdict.detail.into());
    if let Some(waiver) = &rec.waiver {
        event.insert("comment".into(), format!("waived: {waiver}").into());
    }
    event.insert("unmapped".into(), unmapped(rec));
    event.into()
}

fn compliance(control: Control, verdict: &Verdict) -> Value {
    json!({
        "control": control.id(),
        "desc": control.title(),
        "standards": ["sshfleet"],
        "status_id": verdict.status_id,
        "status": verdict.status_name(),
        "status_detail": verdict.detail,
    })
}

/// What sshfleet knows that OCSF has no attribute for.
fn unmapped(rec: &DeviceRecord) -> Value {
    let mut map = Map::new();
    map.insert("address".into(), rec.address.as_str().into());
    map.insert("site".into(), rec.site.as_str().into());
    map.insert("device_status".into(), rec.status.as_str().into());
    if let Some(drift) = &rec.drift {
        map.insert("change".into(), drift.change.as_str().into());
    }
    if let Some(firmware) = &rec.firmware {
        map.insert("firmware".into(), firmware.as_str().into());
    }
    map.into()
}

/// The closing finding of a device of the previous run that this run did not see.
pub fn gone_finding(producer: &Producer, before: &Observation, now_ms: i64) -> Value {
    let verdict = unknown("not seen in this run".to_owned());
    let mut event = envelope(producer, Activity::Close, &verdict, false);
    let id = identity(before.serial.as_deref(), &before.site, &before.address);
    let mut info = Map::new();
    info.insert("uid".into(), finding_uid(Control::SshState, &id).into());
    info.insert("title".into(), Control::SshState.title().into());
    info.insert("types".into(), json!([Control::SshState.id()]));
    if let Some(ms) = before.checked_at {
        info.insert("last_seen_time".into(), ms.into());
    }
    if let Some(ms) = before.first_seen {
        info.insert("first_seen_time".into(), ms.into());
    }
    event.insert("time".into(), now_ms.into());
    event.insert("finding_info".into(), info.into());
    event.insert("compliance".into(), compliance(Control::SshState, &verdict));
    let device = device(
        &before.address,
        &before.name,
        &before.site,
        before.serial.as_deref(),
    );
    event.insert("device".into(), device.into());
    event.insert("message".into(), verdict.detail.into());
    let unmapped = json!({
        "address": before.address,
        "site": before.site,
        "change": Change::Gone.as_str(),
    });
    event.insert("unmapped".into(), unmapped);
    event.into()
}

/// The `--format ocsf` writer.
pub(crate) struct OcsfWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    producer: Producer,
    /// The previous run, to find the devices gone since (drift's own matching).
    previous: Option<Baseline>,
    in_scope: Option<u64>,
    written: u64,
}

impl OcsfWriter {
    pub(crate) fn new(producer: Producer, out: Box<dyn Write + Send>) -> OcsfWriter {
        OcsfWriter {
            out: BufWriter::new(out),
            producer,
            previous: None,
            in_scope: None,
            written: 0,
        }
    }

    fn line(&mut self, event: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, event).map_err(io::Error::from)?;
        self.out.write_all(b"\n")
    }
}

impl RecordWriter for OcsfWriter {
    fn write(&mut self, rec: &DeviceRecord) -> io::Result<()> {
        if let Some(previous) = &mut self.previous {
            let seen = super::drift::Seen::of(rec);
            previous.compare(&rec.address, rec.serial.as_deref(), seen, &rec.checked_at);
        }
        self.written = self.written.saturating_add(1);
        for control in controls(rec) {
            let event = finding(&self.producer, rec, control);
            self.line(&event)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Closes the findings of the devices gone since the previous run, unless the run was
    /// cut short (then it did not look for them all, as the drift summary says too).
    fn finish(&mut self) -> io::Result<()> {
        let complete = self.in_scope.map_or(true, |scope| self.written >= scope);
        if let (Some(previous), true) = (self.previous.take(), complete) {
            let now = now_unix_ms();
            for before in previous.gone() {
                let event = gone_finding(&self.producer, before, now);
                self.line(&event)?;
            }
        }
        self.out.flush()
    }

    fn scope(&mut self, devices: u64) {
        self.in_scope = Some(devices);
    }

    fn previous(&mut self, baseline: &Baseline) {
        self.previous = Some(baseline.fresh_copy());
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::super::record::WaiverTag;
    use super::super::test_support::{full_record, observation};
    use super::*;

    fn producer() -> Producer {
        Producer {
            version: "9.9.9".into(),
        }
    }

    fn drift(change: Change) -> Option<Drift> {
        Some(Drift {
            change,
            first_seen: "2026-11-01T00:00:00.000Z".into(),
            state_since: "2026-11-20T00:00:00.000Z".into(),
        })
    }

    #[test]
    fn activity_follows_the_drift() {
        let cases = [
            (None, Activity::Create),
            (Some(Change::New), Activity::Create),
            (Some(Change::Regressed), Activity::Create),
            (Some(Change::Unchanged), Activity::Update),
            (Some(Change::Moved), Activity::Update),
            (Some(Change::Lost), Activity::Update),
            (Some(Change::Fixed), Activity::Close),
            (Some(Change::Gone), Activity::Close),
        ];
        for (change, want) in cases {
            assert_eq!(
                Activity::of(change.and_then(drift).as_ref()),
                want,
                "{change:?}"
            );
        }
    }

    #[test]
    fn a_failing_device_is_an_open_high_finding_with_times_in_milliseconds() {
        let mut rec = full_record();
        rec.drift = drift(Change::Regressed);
        rec.serial = Some("ACCC8E012345".into());
        let event = finding(&producer(), &rec, Control::SshState);
        assert_eq!(event["type_uid"], 200_301);
        assert_eq!(event["severity_id"], 4);
        assert_eq!(event["status"], "New");
        assert_eq!(event["compliance"]["status"], "Fail");
        assert_eq!(event["time"], 1_795_435_200_123_i64);
        assert_eq!(
            event["finding_info"]["first_seen_time"],
            1_793_491_200_000_i64
        );
        assert_eq!(
            event["finding_info"]["uid"],
            "sshfleet:ssh_state:serial:ACCC8E012345"
        );
        assert_eq!(event["device"]["ip"], "10.0.0.7");
        assert_eq!(event["metadata"]["product"]["version"], "9.9.9");
    }

    #[test]
    fn a_waived_device_is_suppressed() {
        let mut rec = full_record();
        rec.waiver = Some(WaiverTag::new(
            "W-1".into(),
            "ops".into(),
            "2027-01-01".into(),
            None,
        ));
        let event = finding(&producer(), &rec, Control::SshState);
        assert_eq!(event["status_id"], 3);
        assert_eq!(event["status"], "Suppressed");
    }

    #[test]
    fn without_a_serial_the_site_and_address_identify_the_device() {
        let mut rec = full_record();
        rec.serial = None;
        let event = finding(&producer(), &rec, Control::SshCrypto);
        assert_eq!(
            event["finding_info"]["uid"],
            "sshfleet:ssh_crypto:address:hq/https://10.0.0.7:8443"
        );
        let gone = gone_finding(&producer(), &observation("cam.example:80", None, None), 5);
        assert_eq!(gone["activity_id"], 3);
        assert_eq!(gone["device"]["hostname"], "cam.example");
        assert_eq!(
            gone["finding_info"]["uid"],
            "sshfleet:ssh_state:address:/cam.example:80"
        );
    }

    #[test]
    fn device_text_stays_data() {
        let mut rec = full_record();
        rec.name = "\"},{\"x\":1}\n\u{1b}[31m".into();
        let mut out = Vec::new();
        serde_json::to_writer(&mut out, &finding(&producer(), &rec, Control::SshState)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["device"]["name"], rec.name.as_str());
    }

    #[test]
    fn hosts_of_addresses() {
        let host = |a: &str| match host_of(a) {
            Host::Ip(ip) => format!("ip {ip}"),
            Host::Name(name) => format!("name {name}"),
        };
        assert_eq!(host("10.1.2.3"), "ip 10.1.2.3");
        assert_eq!(host("10.1.2.3:8443"), "ip 10.1.2.3");
        assert_eq!(host("[::1]:443"), "ip ::1");
        assert_eq!(host("fe80::1"), "ip fe80::1");
        assert_eq!(host("https://cam.example:8443/"), "name cam.example");
        assert_eq!(host("cam"), "name cam");
    }
}
