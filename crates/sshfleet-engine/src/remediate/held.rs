//! The planned writes between planning and their wave, held outside the heap. Each write is
//! serialised as it is planned into an unlinked temporary file (created `0600`, gone with the
//! process, whatever way it ends), and only its place in that file, its key, its site and the
//! state it was planned from stay in memory: about 60 bytes a device to write rather than the
//! ~2.5 KB of a parsed device, its reading and its record. Waves read their writes back one at
//! a time as their slots come free, so `remediate --apply` holds what its concurrency and its
//! wave in flight need, whatever the size of the plan.
//!
//! The file is a cache, not a record: the journal alone carries exactly-once across a crash.
//! Without a usable temporary directory, or once writing to it fails, the writes are held in
//! memory instead (the bytes already written are carried over) and the caller is told why.
//! The serialised form is this module's own (serde's derived form of the types), never a file
//! a user reads.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use crate::outcome::{Conclude, Finding};
use crate::remediate::PlannedWrite;
use sshfleet_report::{Action, DeviceRecord, Remediation, SshState, Status};

/// A planned write made ready to hold: its serialised bytes (`None` had it failed to
/// serialise, which plain data does not) and what orders it into a wave.
pub struct Encoded {
    bytes: Option<Vec<u8>>,
    key: Box<str>,
    site: String,
    before: bool,
}

impl Encoded {
    pub fn of(write: &PlannedWrite) -> Encoded {
        let bytes = serde_json::to_vec(write)
            .inspect_err(|e| tracing::error!("a planned write could not be held: {e}"))
            .ok();
        Encoded {
            bytes,
            key: write.device.target.key().into_boxed_str(),
            site: write.device.site.clone(),
            before: write.reading.enabled,
        }
    }
}

/// The planned writes of one run as they are planned, in any order.
pub struct Held {
    store: Store,
    slots: Vec<Slot>,
    sites: Sites,
    /// Why the writes are held in memory, when they are.
    warning: Option<String>,
}

/// Where the serialised writes go while planning runs.
enum Store {
    /// Nothing held yet: no file made.
    Unopened,
    File {
        file: BufWriter<File>,
        len: u64,
    },
    Memory(Vec<u8>),
}

/// One held write: where its bytes are, and what is needed to order it into a wave and to
/// report it should its bytes not read back.
#[derive(Debug)]
struct Slot {
    at: u64,
    len: u32,
    /// The state planning read (the write will change it).
    before: bool,
    site: u32,
    key: Box<str>,
}

/// Site names, each held once.
#[derive(Default)]
struct Sites {
    names: Vec<Box<str>>,
    index: std::collections::HashMap<Box<str>, u32>,
}

impl Sites {
    fn of(&mut self, site: &str) -> u32 {
        if let Some(&i) = self.index.get(site) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(site.into());
        self.index.insert(site.into(), i);
        i
    }

    fn name(&self, i: u32) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.names.get(i))
            .map_or("", |s| s)
    }
}

impl Default for Held {
    fn default() -> Held {
        Held::new()
    }
}

impl Held {
    /// Held in a temporary file, made when the first write is held, or in memory when none
    /// can be made (see [`Planned::warning`]).
    pub fn new() -> Held {
        Held::with_store(Store::Unopened, None)
    }

    /// Held in memory from the start.
    #[cfg(test)]
    fn in_memory() -> Held {
        Held::with_store(Store::Memory(Vec::new()), None)
    }

    fn with_store(store: Store, warning: Option<String>) -> Held {
        Held {
            store,
            slots: Vec::new(),
            sites: Sites::default(),
            warning,
        }
    }

    #[cfg(test)]
    fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// Holds one planned write, serialised by [`Encoded::of`] outside any lock, until its
    /// wave.
    pub fn push(&mut self, write: Encoded) {
        let Encoded {
            bytes,
            key,
            site,
            before,
        } = write;
        // Bytes that are not held (none, or past 4 GiB) read back as an unread write.
        let sized = bytes.and_then(|b| Some((u32::try_from(b.len()).ok()?, b)));
        let (at, len) = match sized {
            Some((len, bytes)) => (self.append(&bytes), len),
            None => (u64::MAX, 0),
        };
        let site = self.sites.of(&site);
        self.slots.push(Slot {
            at,
            len,
            before,
            site,
            key,
        });
    }

    /// Appends `bytes` to the store, returning where they start; a file that fails is
    /// given up for memory.
    fn append(&mut self, bytes: &[u8]) -> u64 {
        if let Store::Unopened = self.store {
            self.store = match tempfile::tempfile() {
                Ok(file) => Store::File {
                    file: BufWriter::with_capacity(64 * 1024, file),
                    len: 0,
                },
                Err(e) => {
                    self.warning = Some(format!(
                        "no temporary file for the planned writes ({e}); they are held in memory, about 2.5 KB each"
                    ));
                    Store::Memory(Vec::new())
                }
            };
        }
        if let Store::File { file, len } = &mut self.store {
            let at = *len;
            match file.write_all(bytes) {
                Ok(()) => {
                    *len = len.saturating_add(bytes.len() as u64);
                    return at;
                }
                Err(e) => self.fall_back_to_memory(&e),
            }
        }
        match &mut self.store {
            Store::Memory(buf) => {
                let at = buf.len() as u64;
                buf.extend_from_slice(bytes);
                at
            }
            Store::File { .. } | Store::Unopened => u64::MAX,
        }
    }

    /// Gives up the temporary file: what it holds is read into memory, and the writes to
    /// come are held there too. What cannot be read back is reported unread at its wave.
    fn fall_back_to_memory(&mut self, why: &io::Error) {
        let (file, len) = match std::mem::replace(&mut self.store, Store::Memory(Vec::new())) {
            Store::File { file, len } => (file, len),
            other => {
                self.store = other;
                return;
            }
        };
        // Not flushed (the disk is what failed): the file holds what went out, the buffer the
        // rest, and `len` counts what was accepted whole.
        let (mut file, unflushed) = file.into_parts();
        let mut buf = Vec::new();
        let copied = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&mut file).take(len).read_to_end(&mut buf))
            .map(|_| {
                buf.extend_from_slice(&unflushed.unwrap_or_default());
                buf.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            });
        self.warning = Some(match copied {
            Ok(_) => format!(
                "the temporary file of the planned writes failed ({why}); they are held in memory from here, about 2.5 KB each"
            ),
            Err(e) => format!(
                "the temporary file of the planned writes failed ({why}) and could not be read back ({e}); the writes it held will be reported not written"
            ),
        });
        self.store = Store::Memory(buf);
    }

    /// The writes in a stable order that spreads over sites: by key, then one site at a
    /// time, so a canary wave is not one site's cameras.
    pub(crate) fn into_order(mut self) -> Planned {
        if let Store::File { file, .. } = &mut self.store {
            if let Err(e) = file.flush() {
                self.fall_back_to_memory(&e);
            }
        }
        let store = match std::mem::replace(&mut self.store, Store::Memory(Vec::new())) {
            Store::File { file, .. } => Source::File(file.into_inner().map_err(|e| e.into_error())),
            Store::Memory(buf) => Source::Memory(buf),
            Store::Unopened => Source::Memory(Vec::new()),
        };
        let Held {
            mut slots,
            sites,
            warning,
            ..
        } = self;
        slots.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let slots = sshfleet_rollout::waves::spread_over_sites(slots, |s| sites.name(s.site));
        Planned {
            source: Arc::new(store),
            slots: slots.into_iter(),
            sites: Arc::new(sites.names),
            warning,
        }
    }
}

/// Where the held writes are read back from.
enum Source {
    /// The file, or why it could not be made ready for reading.
    File(io::Result<File>),
    Memory(Vec<u8>),
}

impl Source {
    fn read(&self, slot: &Slot) -> Result<PlannedWrite, String> {
        let len = usize::try_from(slot.len).map_err(|e| e.to_string())?;
        let parse = |bytes: &[u8]| serde_json::from_slice(bytes).map_err(|e| e.to_string());
        match self {
            Source::File(Ok(file)) => {
                let mut bytes = vec![0; len];
                read_at(file, &mut bytes, slot.at).map_err(|e| e.to_string())?;
                parse(&bytes)
            }
            Source::File(Err(e)) => Err(e.to_string()),
            Source::Memory(buf) => {
                let start = usize::try_from(slot.at).map_err(|e| e.to_string())?;
                let held = start
                    .checked_add(len)
                    .and_then(|end| buf.get(start..end))
                    .ok_or("its bytes were not kept")?;
                parse(held)
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

/// The planned writes in wave order, read back as they are taken.
pub struct Planned {
    source: Arc<Source>,
    slots: std::vec::IntoIter<Slot>,
    sites: Arc<Vec<Box<str>>>,
    warning: Option<String>,
}

impl Planned {
    /// Writes not yet taken.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// Why the planned writes were held in memory rather than in a temporary file.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The next `n` writes (a wave), read back one at a time as they are pulled.
    pub fn take(&mut self, n: usize) -> Writes {
        let slots: Vec<Slot> = self.slots.by_ref().take(n).collect();
        Writes {
            source: self.source.clone(),
            sites: self.sites.clone(),
            slots: slots.into_iter(),
        }
    }

    /// Every write not yet taken.
    pub fn rest(&mut self) -> Writes {
        self.take(self.len())
    }
}

/// Some held writes, each read back when pulled: `Err` is the record of one whose bytes did
/// not read back (not written, with why).
pub struct Writes {
    source: Arc<Source>,
    sites: Arc<Vec<Box<str>>>,
    slots: std::vec::IntoIter<Slot>,
}

/// A held write whose bytes did not read back: what is known of it.
#[derive(Debug)]
pub struct Unread {
    key: Box<str>,
    site: String,
    before: bool,
    why: String,
}

impl Unread {
    /// Its record, never written: the state planning read, and why.
    pub fn record(self, target: SshState) -> DeviceRecord {
        let mut record =
            DeviceRecord::new(self.key.into_string(), String::new(), self.site, Status::Ok);
        record.expect = Some(target);
        record.conclude(Finding::State(self.before));
        record.judge();
        record.error = Some(format!(
            "not written: its planned write could not be read back from where it was held ({})",
            self.why
        ));
        record.remediation = Some(Remediation {
            action: Action::Set,
            before: Some(self.before),
            after: None,
            verified: None,
        });
        record
    }
}

impl Iterator for Writes {
    type Item = Result<PlannedWrite, Unread>;

    fn next(&mut self) -> Option<Self::Item> {
        let slot = self.slots.next()?;
        Some(self.source.read(&slot).map_err(|why| {
            Unread {
                site: usize::try_from(slot.site)
                    .ok()
                    .and_then(|i| self.sites.get(i))
                    .map_or_else(String::new, |s| s.to_string()),
                key: slot.key,
                before: slot.before,
                why,
            }
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.slots.size_hint()
    }
}

impl ExactSizeIterator for Writes {}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use sshfleet_axis::vapix::SshReading;
    use sshfleet_inventory::{Device, Host, Scheme, Target};
    use sshfleet_report::Method;

    fn write(i: u16, site: &str) -> PlannedWrite {
        let device = Device {
            line: u64::from(i) + 1,
            address: format!("10.0.0.{i}"),
            target: Target {
                scheme: Scheme::Http,
                host: Host::Name(format!("cam-{i:03}.example")),
                port: 80,
            },
            name: format!("cam \"{i}\" <lobby>"),
            site: site.to_owned(),
            username: Some("root".into()),
            password_env: Some("CAM_PASS".into()),
            expect: Some(SshState::Disabled),
            tags: "a;b".into(),
            ssh_port: Some(2222),
            extra: vec!["x,y".into(), String::new()],
        };
        let mut record = DeviceRecord::for_device(&device, Status::Ok);
        record.serial = Some(format!("ACCC8E{i:06}"));
        record.checked_at = "2026-12-04T03:00:00.000Z".into();
        let reading = SshReading {
            enabled: true,
            method: Method::SshCgi,
            api_version: sshfleet_axis::vapix::wire::ApiVersion::parse("1.1"),
            supported_versions: vec!["1.0".into(), "1.1".into()],
        };
        record.conclude(Finding::Read(&reading));
        PlannedWrite {
            device,
            reading,
            record,
        }
    }

    fn hold(held: &mut Held, writes: &[PlannedWrite]) {
        for w in writes {
            held.push(Encoded::of(w));
        }
    }

    fn same(a: &PlannedWrite, b: &PlannedWrite) -> bool {
        a.device == b.device && a.reading == b.reading && a.record == b.record
    }

    #[test]
    fn writes_read_back_whole_in_key_order_spread_over_sites() {
        let writes: Vec<PlannedWrite> = (0..9)
            .rev()
            .map(|i| write(i, if i < 6 { "big" } else { "small" }))
            .collect();
        for mut held in [Held::new(), Held::in_memory()] {
            hold(&mut held, &writes);
            let mut planned = held.into_order();
            assert_eq!(planned.len(), 9);
            let first: Vec<_> = planned.take(2).map(|w| w.unwrap()).collect();
            assert_eq!(planned.len(), 7);
            let rest: Vec<_> = planned.rest().map(|w| w.unwrap()).collect();
            assert!(planned.is_empty());
            let sites: Vec<&str> = first
                .iter()
                .chain(&rest)
                .map(|w| w.device.site.as_str())
                .collect();
            assert_eq!(
                sites,
                ["big", "small", "big", "small", "big", "small", "big", "big", "big"]
            );
            assert_eq!(first[0].device.line, 1, "cam-000 first");
            for got in first.iter().chain(&rest) {
                let want = writes.iter().find(|w| w.device == got.device).unwrap();
                assert!(same(got, want), "{got:?}");
            }
        }
    }

    #[test]
    fn a_failed_file_carries_what_it_held_into_memory() {
        let writes: Vec<PlannedWrite> = (0..4).map(|i| write(i, "s")).collect();
        let mut held = Held::new();
        hold(&mut held, &writes[..2]);
        held.fall_back_to_memory(&io::Error::other("disk full"));
        hold(&mut held, &writes[2..]);
        assert!(
            held.warning().unwrap().contains("disk full"),
            "{:?}",
            held.warning()
        );
        let got: Vec<_> = held.into_order().rest().map(|w| w.unwrap()).collect();
        assert_eq!(got.len(), 4);
        for (got, want) in got.iter().zip(&writes) {
            assert!(same(got, want));
        }
    }

    #[test]
    fn bytes_that_do_not_read_back_become_a_record_not_written() {
        let mut held = Held::in_memory();
        hold(&mut held, &[write(7, "lab")]);
        if let Store::Memory(buf) = &mut held.store {
            buf.truncate(10);
        }
        let unread = held.into_order().rest().next().unwrap().unwrap_err();
        let record = unread.record(SshState::Disabled);
        assert_eq!(record.address, "http://cam-007.example:80");
        assert_eq!(record.site, "lab");
        assert_eq!(record.ssh_enabled, Some(true));
        assert_eq!(record.compliant, Some(false));
        assert!(record.error.unwrap().starts_with("not written: "));
    }
}
