//! `--notify URL`: after a run, one POST of what changed since the previous run (new
//! exposure, regressions, fixes, devices gone, waivers newly within the expiry horizon), and
//! nothing when nothing changed. JSON, or Slack's `{"text": …}`. Sent through the project's
//! one HTTP client (TLS verified against the system roots), with an idempotency key derived
//! from the run, retried a bounded number of times; the URL (which may carry a token) is only
//! ever shown as its scheme, host and port.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;
use sha2::{Digest, Sha256};

use sshfleet_core::model::EXPIRING_WITHIN_DAYS;
use sshfleet_core::time::{days_between, parse_date, Date};
use sshfleet_net::{ClientSettings, HttpClient};
use sshfleet_report::drift::{is_new_exposure, Baseline, Seen};
use sshfleet_report::fleet::SiteCoverage;
use sshfleet_report::{Change, DeviceRecord, RecordWriter};

use crate::waivers::Waivers;

/// Devices named per kind of change; the counts cover them all.
const LISTED: usize = 100;
/// Tries of one notification, each within [`PER_TRY`], with [`WAITS`] between them: the
/// whole is bounded by 3 × 5 s + 3 s.
const TRIES: usize = 3;
const PER_TRY: Duration = Duration::from_secs(5);
const WAITS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

/// The body's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotifyFormat {
    #[default]
    Json,
    /// Slack-compatible incoming-webhook text: `{"text": "…"}`.
    Slack,
}

/// Where notifications go.
#[derive(Clone, Debug)]
pub struct NotifyTarget {
    uri: http::Uri,
    /// Scheme, host and port only: what messages may show.
    shown: String,
    pub format: NotifyFormat,
}

impl NotifyTarget {
    /// An `http://` or `https://` URL; an error never repeats the URL (it may hold a token).
    pub fn parse(url: &str, format: NotifyFormat) -> Result<NotifyTarget, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| "--notify: not a valid URL".to_owned())?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err("--notify: the URL must be http:// or https://".to_owned()),
        };
        let Some(host) = uri.host() else {
            return Err("--notify: the URL names no host".to_owned());
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err("--notify: credentials in the URL's authority are not supported; put a token in the path or query".to_owned());
        }
        let shown = match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok(NotifyTarget { uri, shown, format })
    }

    /// The URL without its path and query.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// A device named in a notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceRef {
    pub address: String,
    pub name: String,
    pub site: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// The devices of one kind of change: all counted, the first 100 named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub count: u64,
    pub devices: Vec<DeviceRef>,
}

impl Listed {
    fn add(&mut self, device: DeviceRef) {
        self.count = self.count.saturating_add(1);
        if self.devices.len() < LISTED {
            self.devices.push(device);
        }
    }
}

/// What changed over a run, as its records said.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Devices new to the history, non-compliant (or, without a desired state, with SSH on).
    pub new_exposure: Listed,
    pub regressed: Listed,
    pub fixed: Listed,
    pub gone: Listed,
    /// When the previous run checked its last device (Unix ms), when there was one.
    pub previous_run_ms: Option<i64>,
}

impl Changes {
    /// The day (UTC) of the previous run, when there was one.
    pub fn previous_run_day(&self) -> Option<Date> {
        let stamp = sshfleet_core::time::format_rfc3339_millis(self.previous_run_ms?);
        parse_date(stamp.get(..10)?)
    }
}

/// A report output that gathers [`Changes`] from the records (and the previous run, for
/// the devices gone), for the notification sent once the run is over.
pub struct ChangeCollector {
    changes: Arc<Mutex<Changes>>,
    previous: Option<Baseline>,
    in_scope: Option<u64>,
    written: u64,
}

impl ChangeCollector {
    /// The collector, and the handle that reads its changes after the run.
    pub fn new() -> (ChangeCollector, Arc<Mutex<Changes>>) {
        let changes = Arc::new(Mutex::new(Changes::default()));
        let collector = ChangeCollector {
            changes: changes.clone(),
            previous: None,
            in_scope: None,
            written: 0,
        };
        (collector, changes)
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Changes> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn device_ref(rec: &DeviceRecord) -> DeviceRef {
    DeviceRef {
        address: rec.address.clone(),
        name: rec.name.clone(),
        site: rec.site.clone(),
        serial: rec.serial.clone(),
    }
}

impl RecordWriter for ChangeCollector {
    fn write(&mut self, rec: &DeviceRecord) -> std::io::Result<()> {
        self.written = self.written.saturating_add(1);
        if let Some(previous) = &mut self.previous {
            previous.compare(
                &rec.address,
                rec.serial.as_deref(),
                Seen::of(rec),
                &rec.checked_at,
            );
        }
        let Some(change) = rec.drift.as_ref().map(|d| d.change) else {
            return Ok(());
        };
        // A waiver allows the device's state: not exposure to announce.
        let waived = rec.waiver.is_some();
        let mut changes = self.changes();
        match change {
            Change::Regressed if !waived => changes.regressed.add(device_ref(rec)),
            Change::New if !waived && is_new_exposure(change, rec.compliant, rec.ssh_enabled) => {
                changes.new_exposure.add(device_ref(rec));
            }
            Change::Fixed => changes.fixed.add(device_ref(rec)),
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// The devices gone since the previous run, unless the run was cut short.
    fn finish(&mut self) -> std::io::Result<()> {
        let complete = self.in_scope.map_or(true, |scope| self.written >= scope);
        if let (Some(previous), true) = (self.previous.take(), complete) {
            let mut changes = self.changes();
            for gone in previous.gone() {
                changes.gone.add(DeviceRef {
                    address: gone.address.clone(),
                    name: gone.name.clone(),
                    site: gone.site.clone(),
                    serial: gone.serial.clone(),
                });
            }
        }
        Ok(())
    }

    fn scope(&mut self, devices: u64) {
        self.in_scope = Some(devices);
    }

    fn previous(&mut self, baseline: &Baseline) {
        let copy = baseline.fresh_copy();
        let last = copy.gone().filter_map(|o| o.checked_at).max();
        self.changes().previous_run_ms = last;
        self.previous = Some(copy);
    }
}

/// A waiver in force whose expiry came within the horizon since the previous run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExpiringWaiver {
    pub id: String,
    pub owner: String,
    pub expires: String,
    pub days_left: i64,
}

/// The waivers that entered the [`EXPIRING_WITHIN_DAYS`] horizon since the previous run
/// (all those within it, without one): a waiver already announced is not announced again.
pub fn newly_expiring(
    waivers: &Waivers,
    today: Date,
    previous_run: Option<Date>,
) -> Vec<ExpiringWaiver> {
    let mut out = Vec::new();
    for (id, owner, expires) in waivers.report().expiring {
        let Some(day) = parse_date(&expires) else {
            continue;
        };
        let days_left = days_between(today, day);
        let was_within = previous_run.is_some_and(|p| days_between(p, day) <= EXPIRING_WITHIN_DAYS);
        if (0..=EXPIRING_WITHIN_DAYS).contains(&days_left) && !was_within {
            out.push(ExpiringWaiver {
                id,
                owner,
                expires,
                days_left,
            });
        }
    }
    out
}

/// Which run the notification is about.
#[derive(Clone, Debug)]
pub struct RunLabel {
    /// `scan`, `remediate`.
    pub command: String,
    /// The run's start (RFC 3339): with the body, the idempotency key.
    pub started_at: String,
    pub version: String,
}

/// The JSON body.
#[derive(Serialize)]
struct Payload<'a> {
    source: &'static str,
    version: &'a str,
    command: &'a str,
    run_started_at: &'a str,
    summary: String,
    new_exposure: &'a Listed,
    regressed: &'a Listed,
    fixed: &'a Listed,
    gone: &'a Listed,
    expiring_waivers: &'a [ExpiringWaiver],
    expiring_within_days: i64,
}

/// One notification, ready to send (and to send again, the same).
#[derive(Clone, Debug)]
pub struct Notification {
    pub body: Vec<u8>,
    /// `Idempotency-Key`: the same for the same run and changes.
    pub key: String,
    /// `2 new exposure, 1 regressed, …`.
    pub summary: String,
}

/// The notification of `changes`, or `None` when nothing changed.
pub fn build(
    changes: &Changes,
    expiring: &[ExpiringWaiver],
    run: &RunLabel,
    format: NotifyFormat,
) -> Option<Notification> {
    let counts = [
        ("new exposure", changes.new_exposure.count),
        ("regressed", changes.regressed.count),
        ("fixed", changes.fixed.count),
        ("gone", changes.gone.count),
        ("waivers expiring", expiring.len() as u64),
    ];
    if counts.iter().all(|&(_, n)| n == 0) {
        return None;
    }
    let summary = counts
        .iter()
        .filter(|&&(_, n)| n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(", ");
    let body = match format {
        NotifyFormat::Json => serde_json::to_vec(&Payload {
            source: "sshfleet",
            version: &run.version,
            command: &run.command,
            run_started_at: &run.started_at,
            summary: summary.clone(),
            new_exposure: &changes.new_exposure,
            regressed: &changes.regressed,
            fixed: &changes.fixed,
            gone: &changes.gone,
            expiring_waivers: expiring,
            expiring_within_days: EXPIRING_WITHIN_DAYS,
        }),
        NotifyFormat::Slack => {
            let text = slack_text(changes, expiring, run, &summary);
            serde_json::to_vec(&serde_json::json!({ "text": text }))
        }
    }
    .ok()?;
    let key = idempotency_key(&[run.started_at.as_bytes(), &body]);
    Some(Notification { body, key, summary })
}

/// `sshfleet-` and the first half of the SHA-256 of `parts`, each ended by a zero byte.
fn idempotency_key(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut key = String::from("sshfleet-");
    for byte in digest.iter().take(16) {
        key.push_str(&format!("{byte:02x}"));
    }
    key
}

/// The JSON body of a fleet view's missing sites.
#[derive(Serialize)]
struct CoveragePayload<'a> {
    source: &'static str,
    version: &'a str,
    command: &'a str,
    checked_at: &'a str,
    summary: String,
    expected_sites: u64,
    expected_from: &'a str,
    reported_within: &'a str,
    missing_sites: Vec<MissingPayload<'a>>,
}

#[derive(Serialize)]
struct MissingPayload<'a> {
    site: &'a str,
    gap: &'static str,
    last_complete: Option<&'a str>,
    description: String,
}

/// The notification of a fleet view's expected sites that have no complete run within the
/// period (`report html --history … --expect-sites-from / --sites-seen-within`), or `None`
/// when none is missing. Its idempotency key is made from the missing sites, their gaps and
/// their last complete runs only: checking the same situation again (an hourly job) gives the
/// same key, so a receiver that honours it alerts once, and again when the situation changes.
pub fn build_coverage(
    coverage: &SiteCoverage,
    run: &RunLabel,
    format: NotifyFormat,
) -> Option<Notification> {
    if coverage.missing.is_empty() {
        return None;
    }
    let summary = format!(
        "{} of {} expected site(s) missing: no complete run within {}",
        coverage.missing.len(),
        coverage.expected,
        coverage.within
    );
    let missing: Vec<MissingPayload<'_>> = coverage
        .missing
        .iter()
        .map(|m| MissingPayload {
            site: &m.site,
            gap: m.gap.as_str(),
            last_complete: m.last_complete.as_deref(),
            description: m.describe(&coverage.since),
        })
        .collect();
    // The situation: each missing site, its gap and its last complete run.
    let situation: Vec<&[u8]> = std::iter::once(&b"coverage"[..])
        .chain(
            missing
                .iter()
                .flat_map(|m| [m.site, m.gap, m.last_complete.unwrap_or("")].map(str::as_bytes)),
        )
        .collect();
    let key = idempotency_key(&situation);
    let body = match format {
        NotifyFormat::Json => serde_json::to_vec(&CoveragePayload {
            source: "sshfleet",
            version: &run.version,
            command: &run.command,
            checked_at: &run.started_at,
            summary: summary.clone(),
            expected_sites: coverage.expected,
            expected_from: &coverage.expected_from,
            reported_within: &coverage.within,
            missing_sites: missing,
        }),
        NotifyFormat::Slack => {
            let mut text = format!("sshfleet {}: {summary}", run.command);
            for m in missing.iter().take(LISTED) {
                text.push_str(&slack_escape(&format!("\n• {}: {}", m.site, m.description)));
            }
            serde_json::to_vec(&serde_json::json!({ "text": text }))
        }
    }
    .ok()?;
    Some(Notification { body, key, summary })
}

/// Slack's text: a line per device (the first ten of each kind). Device text is escaped as
/// Slack asks (`&`, `<`, `>`), so that it is shown, never read as a link or a mention.
fn slack_text(
    changes: &Changes,
    expiring: &[ExpiringWaiver],
    run: &RunLabel,
    summary: &str,
) -> String {
    let mut text = format!("sshfleet {}: {summary}", run.command);
    let kinds = [
        ("new exposure", &changes.new_exposure),
        ("regressed", &changes.regressed),
        ("fixed", &changes.fixed),
        ("gone", &changes.gone),
    ];
    for (what, listed) in kinds {
        for d in listed.devices.iter().take(10) {
            let line = format!("\n• {what}: {} {} ({})", d.address, d.name, d.site);
            text.push_str(&slack_escape(&line));
        }
    }
    for w in expiring {
        let line = format!(
            "\n• waiver {} ({}) expires {} ({} days)",
            w.id, w.owner, w.expires, w.days_left
        );
        text.push_str(&slack_escape(&line));
    }
    text
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Why a notification was not delivered (never naming the URL's path or query).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("{target} answered {status} ({tries} tries)")]
    Refused {
        target: String,
        status: u16,
        tries: usize,
    },
    #[error("{target}: {error} ({tries} tries)")]
    Unreachable {
        target: String,
        error: String,
        tries: usize,
    },
}

/// POSTs the notification, retrying a transport failure, a 429 or a 5xx; the tries it took.
pub async fn send(target: &NotifyTarget, note: &Notification) -> Result<usize, NotifyError> {
    let settings = ClientSettings {
        timeout: PER_TRY,
        ..ClientSettings::default()
    };
    let client = HttpClient::new(&settings).map_err(|e| NotifyError::Client(e.to_string()))?;
    let mut last = None;
    for try_no in 1..=TRIES {
        let outcome = client.send(request(target, note)?).await;
        match outcome {
            Ok(resp) if resp.status.is_success() => return Ok(try_no),
            Ok(resp) => {
                let status = resp.status.as_u16();
                let retry = status == 429 || resp.status.is_server_error();
                let refused = NotifyError::Refused {
                    target: target.shown.clone(),
                    status,
                    tries: try_no,
                };
                if !retry {
                    return Err(refused);
                }
                last = Some(refused);
            }
            Err(e) => {
                last = Some(NotifyError::Unreachable {
                    target: target.shown.clone(),
                    error: e.to_string(),
                    tries: try_no,
                });
            }
        }
        if let Some(wait) = WAITS.get(try_no.saturating_sub(1)) {
            tokio::time::sleep(*wait).await;
        }
    }
    Err(last.unwrap_or_else(|| NotifyError::Client("no try was made".to_owned())))
}

fn request(
    target: &NotifyTarget,
    note: &Notification,
) -> Result<http::Request<Full<Bytes>>, NotifyError> {
    http::Request::post(target.uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", note.key.as_str())
        .header(http::header::USER_AGENT, "sshfleet")
        .body(Full::new(Bytes::from(note.body.clone())))
        .map_err(|e| NotifyError::Client(e.to_string()))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn run() -> RunLabel {
        RunLabel {
            command: "scan".into(),
            started_at: "2026-12-07T10:00:00.000Z".into(),
            version: "0.1.0".into(),
        }
    }

    fn device(name: &str) -> DeviceRef {
        DeviceRef {
            address: "10.0.0.1".into(),
            name: name.into(),
            site: "hq".into(),
            serial: None,
        }
    }

    #[test]
    fn a_waiver_is_announced_once_when_it_comes_within_the_horizon() {
        let text = r#"
[[waiver]]
id = "W-1"
match = { name = "lobby" }
ssh = "enabled"
reason = "maintenance"
owner = "ops"
expires = "2027-01-10"

[[waiver]]
id = "W-2"
match = { name = "dock" }
ssh = "enabled"
reason = "maintenance"
owner = "ops"
expires = "2027-06-01"
"#;
        let day = |s: &str| parse_date(s).unwrap();
        let today = day("2027-01-01");
        let waivers = Waivers::parse(std::path::Path::new("w.toml"), text, today).unwrap();
        let ids = |previous: Option<Date>| -> Vec<(String, i64)> {
            newly_expiring(&waivers, today, previous)
                .into_iter()
                .map(|w| (w.id, w.days_left))
                .collect()
        };
        // No previous run: every waiver within the horizon.
        assert_eq!(ids(None), vec![("W-1".to_owned(), 9)]);
        // The previous run was 20 days before expiry: W-1 came within 14 days since.
        assert_eq!(ids(Some(day("2026-12-21"))), vec![("W-1".to_owned(), 9)]);
        // Already within the horizon at the previous run: announced then, not again.
        assert!(ids(Some(day("2026-12-31"))).is_empty());
    }

    #[test]
    fn nothing_changed_is_no_notification() {
        assert!(build(&Changes::default(), &[], &run(), NotifyFormat::Json).is_none());
    }

    #[test]
    fn missing_sites_key_by_their_situation_and_slack_shows_their_names_as_text() {
        use sshfleet_report::fleet::{Gap, MissingSite};
        let missing = |gap: Gap| MissingSite {
            site: "<!channel> east".into(),
            gap,
            last_complete: Some("2026-11-28T01:00:00.000Z".into()),
            interrupted: None,
        };
        let coverage = |gap: Gap| SiteCoverage {
            expected_from: "inventory sites.csv".into(),
            within: "7d".into(),
            since: "2026-12-01T00:00:00.000Z".into(),
            expected: 3,
            missing: vec![missing(gap)],
        };
        let at = |started_at: &str| RunLabel {
            command: "report html".into(),
            started_at: started_at.into(),
            version: "0.1.0".into(),
        };
        let json = |gap, when| build_coverage(&coverage(gap), &at(when), NotifyFormat::Json);
        let first = json(Gap::Stale, "2026-12-08T01:00:00.000Z").unwrap();
        let later = json(Gap::Stale, "2026-12-08T02:00:00.000Z").unwrap();
        let changed = json(Gap::Incomplete, "2026-12-08T02:00:00.000Z").unwrap();
        assert_eq!(first.key, later.key, "the same situation, checked again");
        assert_ne!(first.key, changed.key);
        assert_eq!(
            first.summary,
            "1 of 3 expected site(s) missing: no complete run within 7d"
        );
        let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(body["missing_sites"][0]["gap"], "stale");
        let slack = build_coverage(
            &coverage(Gap::Stale),
            &at("2026-12-08T01:00:00.000Z"),
            NotifyFormat::Slack,
        )
        .unwrap();
        let text: serde_json::Value = serde_json::from_slice(&slack.body).unwrap();
        let text = text["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt; east: no complete run since"),
            "{text}"
        );
        let mut none = coverage(Gap::Stale);
        none.missing.clear();
        assert!(build_coverage(&none, &at("x"), NotifyFormat::Json).is_none());
    }

    #[test]
    fn the_same_run_gives_the_same_key_and_another_run_another() {
        let mut changes = Changes::default();
        changes.regressed.add(device("cam"));
        let a = build(&changes, &[], &run(), NotifyFormat::Json).unwrap();
        let b = build(&changes, &[], &run(), NotifyFormat::Json).unwrap();
        assert_eq!(a.key, b.key);
        let later = RunLabel {
            started_at: "2026-12-08T10:00:00.000Z".into(),
            ..run()
        };
        assert_ne!(
            a.key,
            build(&changes, &[], &later, NotifyFormat::Json)
                .unwrap()
                .key
        );
        assert_eq!(a.summary, "1 regressed");
    }

    #[test]
    fn slack_text_shows_device_text_and_never_links_it() {
        let mut changes = Changes::default();
        changes.fixed.add(device("<!channel> & <http://x|y>"));
        let note = build(&changes, &[], &run(), NotifyFormat::Slack).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&note.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt; &amp; &lt;http://x|y&gt;"),
            "{text}"
        );
        assert!(!text.contains("<!channel>"));
    }

    #[test]
    fn the_url_is_shown_without_its_path_or_query() {
        let target = NotifyTarget::parse(
            "https://hooks.example/services/T0/SECRET?token=abc",
            NotifyFormat::Json,
        )
        .unwrap();
        assert_eq!(target.shown(), "https://hooks.example");
        let err = NotifyTarget::parse("ftp://x/SECRET", NotifyFormat::Json).unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
        let err = NotifyTarget::parse("https://u:SECRET@x/", NotifyFormat::Json).unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
