//! Fuzz targets: everything that parses bytes from a device, an API or a file, driven with
//! arbitrary input. `fuzz/` runs them under libFuzzer (`cargo +nightly fuzz run TARGET`);
//! the integration tests replay the saved corpus and every input that once failed on the
//! stable toolchain, so a fixed crash stays fixed. A target panics only on a broken
//! invariant, never on bad input.

use std::io::Cursor;

use http::{HeaderMap, HeaderValue};

use sshfleet_core::secret::Secret;
use sshfleet_inventory as inventory;
use sshfleet_inventory::{InventoryOptions, Row};
use sshfleet_net::auth::{parse_challenges, AuthSession, BasicOverHttp, Credentials, Transport};

/// The targets, by name (the `fuzz/fuzz_targets/*.rs` files and corpus directories).
pub const TARGETS: [&str; 13] = [
    "inventory",
    "vapix_answers",
    "challenge",
    "equinix_answers",
    "waivers",
    "report_line",
    "journal",
    "plan",
    "pins",
    "baseline",
    "policy",
    "ssh_server",
    "ssh_kexinit",
];

/// Runs target `name` on `data`; an unknown name is a bug of the caller.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "inventory" => inventory(data),
        "vapix_answers" => vapix_answers(data),
        "challenge" => challenge(data),
        "equinix_answers" => equinix_answers(data),
        "waivers" => waivers(data),
        "report_line" => report_line(data),
        "journal" => journal(data),
        "plan" => plan(data),
        "pins" => pins(data),
        "baseline" => baseline(data),
        "policy" => policy(data),
        "ssh_server" => sshfleet_ssh::fuzzing::server_bytes(data),
        "ssh_kexinit" => sshfleet_ssh::fuzzing::kexinit(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// An inventory file: loads, and every row reads again the same way.
pub fn inventory(data: &[u8]) {
    let opts = InventoryOptions::default();
    let Ok(inv) = inventory::parse(Cursor::new(data), &opts) else {
        return;
    };
    let mut devices = 0usize;
    for row in inv.rows.iter() {
        match row {
            Row::Device(device) => {
                devices += 1;
                // The URL a device is reached at must be one the HTTP client accepts.
                let url = device.target.base_url();
                assert!(
                    url.parse::<http::Uri>().is_ok(),
                    "device URL {url:?} from row {} does not parse",
                    device.line
                );
            }
            Row::Invalid(row) => {
                let error = row.reason.to_string();
                assert!(!error.is_empty(), "an invalid row without a reason");
            }
        }
    }
    assert_eq!(devices, inv.rows.device_count());
}

/// A body as a camera might answer any of the VAPIX calls sshfleet makes.
pub fn vapix_answers(data: &[u8]) {
    use sshfleet_axis::vapix::{deviceinfo, param, wire};
    let _ = wire::parse_supported_versions(&mut data.to_vec());
    let _ = wire::parse_ssh_info(&mut data.to_vec());
    let _ = wire::parse_set_ssh_configuration(&mut data.to_vec());
    let _ = param::parse_list(data);
    let _ = param::parse_update(data);
    if let Ok(facts) = deviceinfo::parse_facts(data) {
        for fact in [facts.model, facts.product, facts.firmware, facts.serial]
            .into_iter()
            .flatten()
        {
            assert!(
                fact.len() <= 64 && fact.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
                "an unsanitised fact {fact:?}"
            );
        }
    }
}

/// `WWW-Authenticate` headers (one per line): the challenge is adopted and the
/// `Authorization` header built from it is a valid header, whatever the realm and nonce.
pub fn challenge(data: &[u8]) {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n').take(16) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(http::header::WWW_AUTHENTICATE, value);
        }
    }
    let _ = parse_challenges(&headers);
    let creds = Credentials {
        username: "root".to_owned(),
        password: Secret::new("pass"),
    };
    let mut session = AuthSession::default();
    if session
        .adopt(&headers, &creds, Transport::Tls, BasicOverHttp::Allow)
        .is_ok()
    {
        if let Some(header) = session.authorization("POST", "/axis-cgi/ssh.cgi", &creds) {
            let text = header.as_bytes();
            assert!(
                !text.contains(&b'\r') && !text.contains(&b'\n'),
                "a header with a line break"
            );
        }
    }
}

/// A body as the Network Edge API might answer any call.
pub fn equinix_answers(data: &[u8]) {
    use sshfleet_equinix::wire;
    let _ = wire::parse_token(&mut data.to_vec());
    if let Ok(page) = wire::parse_page(&mut data.to_vec(), 0) {
        let _ = page;
    }
    let _ = wire::parse_user(&mut data.to_vec());
    let _ = wire::parse_created(&mut data.to_vec());
    let _ = wire::parse_dissociation(&mut data.to_vec());
    let _ = wire::parse_problems(data);
}

/// A waiver file.
pub fn waivers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sshfleet_engine::waivers::Waivers::parse(
        std::path::Path::new("fuzz.toml"),
        text,
        sshfleet_core::time::Date::constant(2024, 10, 4),
    );
}

/// One line of a JSON Lines report read back: whatever it holds, what is read back writes
/// again, and reads back the same.
pub fn report_line(data: &[u8]) {
    use sshfleet_report::replay::replay;
    use sshfleet_report::{writer, Format, Schema};
    let Ok(dir) = tempfile_dir() else { return };
    let path = dir.join("line.jsonl");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let mut first = Vec::new();
    if replay(&path, &[], |rec, _| {
        first.push(rec);
        Ok(())
    })
    .is_err()
    {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mut out = Vec::new();
    {
        let sink = SharedVec::default();
        let mut w = writer(Format::Jsonl, &Schema::default(), Box::new(sink.clone()));
        for rec in &first {
            let _ = w.write(rec);
        }
        let _ = w.finish();
        out.extend_from_slice(&sink.take());
    }
    let again_path = dir.join("again.jsonl");
    let mut again = Vec::new();
    if std::fs::write(&again_path, &out).is_ok() {
        let read = replay(&again_path, &[], |rec, _| {
            again.push(rec);
            Ok(())
        });
        assert!(
            read.is_ok(),
            "a report sshfleet wrote does not read back: {read:?}"
        );
        assert_eq!(first, again, "a record changed on a second round trip");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `data` in a file of its own in a fresh directory, for the parsers that read files; the
/// directory is removed after `each`.
fn with_file(name: &str, data: &[u8], each: impl FnOnce(&std::path::Path)) {
    let Ok(dir) = tempfile_dir() else { return };
    let path = dir.join(name);
    if std::fs::write(&path, data).is_ok() {
        each(&path);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A remediation journal, as a rerun finds it after any crash: reading it is an answer or
/// an error, and a journal that reads opens for appending and then reads the same again
/// (the torn last line cut away, nothing else changed).
pub fn journal(data: &[u8]) {
    use sshfleet_rollout::journal::{read_journal, Journal};
    with_file("fuzz.journal.jsonl", data, |path| {
        let Ok((header, first)) = read_journal(path) else {
            return;
        };
        let opened = Journal::open(path, &header);
        assert!(
            opened.is_ok(),
            "a journal that reads does not open: {opened:?}",
            opened = opened.err()
        );
        let again = read_journal(path);
        let Ok((_, again)) = again else {
            panic!("a journal no longer reads once opened: {:?}", again.err());
        };
        assert_eq!(
            first.outcomes, again.outcomes,
            "opening changed the outcomes"
        );
        assert_eq!(
            first.pending, again.pending,
            "opening changed the pending writes"
        );
        assert_eq!(first.wave, again.wave, "opening changed the waves");
    });
}

/// A saved plan: refused or read; one that reads writes again and reads back the same.
pub fn plan(data: &[u8]) {
    use sshfleet_rollout::plan::Plan;
    let forever = std::time::Duration::from_secs(u64::from(u32::MAX));
    with_file("plan.json", data, |path| {
        let Ok(mut plan) = Plan::load(path, forever) else {
            return;
        };
        let copy = path.with_extension("again.json");
        assert!(plan.write(&copy).is_ok(), "a plan that read does not write");
        let again = Plan::load(&copy, forever);
        let Ok(again) = again else {
            panic!(
                "a plan sshfleet wrote does not read back: {:?}",
                again.err()
            );
        };
        assert_eq!(plan, again, "a plan changed on a round trip");
    });
}

/// A pin file: every pin parsed prints back as a pin that parses the same.
pub fn pins(data: &[u8]) {
    use sshfleet_net::tls::{Fingerprint, Pins};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Pins::parse(text);
    for field in text.split([',', '\t', ' ', '\n']) {
        if let Some(pin) = Fingerprint::parse(field.trim()) {
            let shown = pin.to_string();
            assert_eq!(Fingerprint::parse(&shown), Some(pin), "{shown}");
        }
    }
}

/// A previous report read as a baseline (`--baseline`, `sshfleet diff`), in any format:
/// an answer or an error, and never more observations than the file has lines or
/// elements.
pub fn baseline(data: &[u8]) {
    with_file("baseline", data, |path| {
        let Ok(read) = sshfleet_report::read::read_report(path) else {
            return;
        };
        let most = data
            .iter()
            .filter(|&&b| b == b'\n' || b == b'\r' || b == b'{')
            .count()
            + 1;
        assert!(
            read.len() <= most,
            "{} observations from {most} lines",
            read.len()
        );
    });
}

/// An Equinix SSH-user policy file.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ =
        sshfleet_engine::equinix::policy::Policy::parse(std::path::Path::new("policy.toml"), text);
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "sshfleet-fuzz-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[derive(Clone, Default)]
struct SharedVec(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedVec {
    fn take(&self) -> Vec<u8> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl std::io::Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
