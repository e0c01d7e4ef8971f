//! The report's columns: which ones a report has, their names, and each record's cells in
//! column order, typed so that every format renders them the same way.

use std::collections::HashSet;

use serde::{Serialize, Serializer};

use sshfleet_ssh::Algorithms;

use super::record::{
    DeviceRecord, Remediation, WaiverTag, ADDED_COLUMNS, ADVISORY_COLUMNS, COLUMNS,
    EVIDENCE_COLUMNS, LATER_COLUMNS, REMEDIATION_COLUMNS,
};

/// Which columns a report has beyond the fixed ones (and `LATER_COLUMNS`, always there).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// Append `action, before, after, verified`.
    pub remediation: bool,
    /// Inventory passthrough columns (`Inventory::extra_columns`), appended last.
    pub extra_columns: Vec<String>,
}

impl Schema {
    /// Every column name in output order, as the CSV header spells them (the JSON keys
    /// add `ssh_kexinit`, an object no CSV cell holds).
    pub fn columns(&self) -> Vec<String> {
        self.layout().header().map(str::to_owned).collect()
    }

    /// The passthrough columns as the report names them (see [`Schema::columns`]).
    pub fn extra_keys(&self) -> Vec<String> {
        extra_keys(&self.extra_columns)
    }

    pub(crate) fn layout(&self) -> Layout {
        Layout {
            remediation: self.remediation,
            extra_keys: extra_keys(&self.extra_columns),
        }
    }
}

/// Passthrough names that collide with a record column (case-insensitively) get an
/// `inventory_` prefix, so no key is ever ambiguous. Remediation columns count as taken in
/// scan reports too: a column keeps one name in every report of the same inventory.
fn extra_keys(extra: &[String]) -> Vec<String> {
    let mut taken: HashSet<String> = COLUMNS
        .iter()
        .chain(REMEDIATION_COLUMNS.iter())
        .chain(ADDED_COLUMNS.iter())
        .chain(LATER_COLUMNS.iter())
        .chain(EVIDENCE_COLUMNS.iter())
        .chain(ADVISORY_COLUMNS.iter())
        .map(|c| (*c).to_owned())
        .collect();
    extra
        .iter()
        .map(|name| {
            let mut key = name.clone();
            while taken.contains(&key.to_ascii_lowercase()) {
                key = format!("inventory_{key}");
            }
            taken.insert(key.to_ascii_lowercase());
            key
        })
        .collect()
}

/// A resolved schema, owned by one writer.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    remediation: bool,
    extra_keys: Vec<String>,
}

impl Layout {
    /// Calls `f(key, cell)` for every column of `rec`, in column order.
    pub(crate) fn for_each_cell<E>(
        &self,
        rec: &DeviceRecord,
        mut f: impl FnMut(&str, Cell<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for (key, cell) in COLUMNS.iter().zip(record_cells(rec)) {
            f(key, cell)?;
        }
        if self.remediation {
            let cells = remediation_cells(rec.remediation.as_ref());
            for (key, cell) in REMEDIATION_COLUMNS.iter().zip(cells) {
                f(key, cell)?;
            }
        }
        for (key, cell) in ADDED_COLUMNS.iter().zip(added_cells(rec)) {
            f(key, cell)?;
        }
        for (key, cell) in LATER_COLUMNS.iter().zip(later_cells(rec)) {
            f(key, cell)?;
        }
        for (key, cell) in EVIDENCE_COLUMNS.iter().zip(evidence_cells(rec)) {
            f(key, cell)?;
        }
        for (key, cell) in ADVISORY_COLUMNS.iter().zip(advisory_cells(rec)) {
            f(key, cell)?;
        }
        for (i, key) in self.extra_keys.iter().enumerate() {
            // A record built without passthrough values still gets every column.
            let value = rec.extra.get(i).map_or("", String::as_str);
            f(key, Cell::Text(Some(value)))?;
        }
        Ok(())
    }

    /// The header, in the order of `for_each_cell`.
    pub(crate) fn header(&self) -> impl Iterator<Item = &str> {
        let remediation = REMEDIATION_COLUMNS.iter().filter(|_| self.remediation);
        COLUMNS
            .iter()
            .chain(remediation)
            .chain(ADDED_COLUMNS.iter())
            .chain(LATER_COLUMNS.iter())
            .chain(EVIDENCE_COLUMNS.iter().filter(|c| !is_json_only(c)))
            .chain(ADVISORY_COLUMNS.iter())
            .copied()
            .chain(self.extra_keys.iter().map(String::as_str))
    }
}

/// A column whose value is an object: in JSON reports, never a CSV column.
fn is_json_only(column: &str) -> bool {
    column == "ssh_kexinit"
}

/// One cell. `Text` came from a device or an input and may be hostile (CSV neutralises it);
/// `Word` is our own fixed vocabulary; `Algorithms` is JSON only (CSV writers skip it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell<'a> {
    Text(Option<&'a str>),
    Word(Option<&'static str>),
    Bool(Option<bool>),
    Unsigned(Option<u64>),
    Signed(Option<i64>),
    List(&'a [String]),
    Algorithms(Option<&'a Algorithms>),
}

/// The fixed columns of `rec`; the array length ties it to [`COLUMNS`].
fn record_cells(rec: &DeviceRecord) -> [Cell<'_>; COLUMNS.len()] {
    [
        Cell::Text(Some(&rec.address)),
        Cell::Text(Some(&rec.name)),
        Cell::Text(Some(&rec.site)),
        Cell::Word(Some(rec.status.as_str())),
        Cell::Bool(rec.ssh_enabled),
        Cell::Word(rec.expect.map(|e| e.as_str())),
        Cell::Bool(rec.compliant),
        Cell::Word(rec.method.map(|m| m.as_str())),
        Cell::Text(rec.api_version.as_deref()),
        Cell::List(&rec.supported_versions),
        Cell::Unsigned(rec.http_status.map(u64::from)),
        Cell::Signed(rec.error_code),
        Cell::Text(rec.error.as_deref()),
        Cell::Unsigned(Some(u64::from(rec.attempts))),
        Cell::Unsigned(Some(rec.elapsed_ms)),
        Cell::Text(rec.tls_fingerprint.as_deref()),
        Cell::Text(Some(&rec.checked_at)),
    ]
}

fn added_cells(rec: &DeviceRecord) -> [Cell<'_>; ADDED_COLUMNS.len()] {
    let drift = rec.drift.as_ref();
    [
        Cell::Text(rec.serial.as_deref()),
        Cell::Word(drift.map(|d| d.change.as_str())),
        Cell::Text(drift.map(|d| d.first_seen.as_str())),
        Cell::Text(drift.map(|d| d.state_since.as_str())),
        Cell::Text(rec.waiver.as_ref().map(WaiverTag::as_str)),
    ]
}

fn remediation_cells(rem: Option<&Remediation>) -> [Cell<'static>; REMEDIATION_COLUMNS.len()] {
    [
        Cell::Word(rem.map(|r| r.action.as_str())),
        Cell::Bool(rem.and_then(|r| r.before)),
        Cell::Bool(rem.and_then(|r| r.after)),
        Cell::Bool(rem.and_then(|r| r.verified)),
    ]
}

/// The columns of [`LATER_COLUMNS`]; the banner, model and firmware came from a device, so
/// they are `Text`.
fn later_cells(rec: &DeviceRecord) -> [Cell<'_>; LATER_COLUMNS.len()] {
    [
        Cell::Word(rec.ssh_port.map(|p| p.as_str())),
        Cell::Text(rec.ssh_banner.as_deref()),
        Cell::Word(rec.exposure.map(|e| e.as_str())),
        Cell::Text(rec.model.as_deref()),
        Cell::Text(rec.firmware.as_deref()),
    ]
}

/// The columns of [`EVIDENCE_COLUMNS`]; the host key's text came from a device.
fn evidence_cells(rec: &DeviceRecord) -> [Cell<'_>; EVIDENCE_COLUMNS.len()] {
    let ssh = &rec.ssh;
    [
        Cell::Text(ssh.host_key.as_deref()),
        Cell::Text(ssh.host_key_type.as_deref()),
        Cell::Algorithms(ssh.kexinit.as_ref()),
        Cell::Word(ssh.crypto.map(|c| c.as_str())),
        Cell::Word(ssh.terrapin.map(|t| t.as_str())),
        Cell::Unsigned(ssh.key_shared),
        Cell::Word(ssh.host_key_change.map(|c| c.as_str())),
    ]
}

/// The columns of [`ADVISORY_COLUMNS`]: the ids that apply, `null` (JSON) or empty (CSV)
/// when not asked or the AXIS OS version is unknown.
fn advisory_cells(rec: &DeviceRecord) -> [Cell<'_>; ADVISORY_COLUMNS.len()] {
    match &rec.advisories {
        Some(crate::advisory::AdvisoryCheck::Matched { ids, .. }) => [Cell::List(ids)],
        Some(crate::advisory::AdvisoryCheck::VersionUnknown) | None => [Cell::Text(None)],
    }
}

/// JSON rendering: typed values, `null` for unknown, text as is (formula neutralising is
/// for spreadsheets only).
impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Cell::Text(Some(text)) => s.serialize_str(text),
            Cell::Word(Some(word)) => s.serialize_str(word),
            Cell::Bool(Some(b)) => s.serialize_bool(b),
            Cell::Unsigned(Some(n)) => s.serialize_u64(n),
            Cell::Signed(Some(n)) => s.serialize_i64(n),
            Cell::List(items) => s.collect_seq(items),
            Cell::Algorithms(Some(algorithms)) => algorithms.serialize(s),
            Cell::Algorithms(None)
            | Cell::Text(None)
            | Cell::Word(None)
            | Cell::Bool(None)
            | Cell::Unsigned(None)
            | Cell::Signed(None) => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_passthrough_names_are_prefixed() {
        let schema = Schema {
            remediation: false,
            extra_columns: vec![
                "owner".into(),
                "Status".into(),
                "inventory_status".into(),
                "action".into(),
                "Serial".into(),
                "Exposure".into(),
            ],
        };
        let columns = schema.columns();
        assert_eq!(&columns[..COLUMNS.len()], COLUMNS);
        let added = COLUMNS.len() + ADDED_COLUMNS.len();
        assert_eq!(&columns[COLUMNS.len()..added], ADDED_COLUMNS);
        let later = added + LATER_COLUMNS.len();
        assert_eq!(&columns[added..later], LATER_COLUMNS);
        let after = later + 7;
        assert_eq!(
            &columns[later..after],
            [
                "ssh_host_key",
                "ssh_host_key_type",
                "ssh_crypto",
                "ssh_terrapin",
                "ssh_key_shared",
                "ssh_host_key_change",
                "advisories"
            ]
        );
        assert_eq!(
            &columns[after..],
            [
                "owner",
                "inventory_Status",
                "inventory_inventory_status",
                "inventory_action",
                "inventory_Serial",
                "inventory_Exposure"
            ]
        );
    }

    #[test]
    fn remediation_columns_follow_the_fixed_ones() {
        let schema = Schema {
            remediation: true,
            extra_columns: vec!["rack".into()],
        };
        let columns = schema.columns();
        assert_eq!(columns.len(), COLUMNS.len() + 22);
        assert_eq!(
            &columns[COLUMNS.len()..],
            [
                "action",
                "before",
                "after",
                "verified",
                "serial",
                "change",
                "first_seen",
                "state_since",
                "waiver",
                "ssh_port",
                "ssh_banner",
                "exposure",
                "model",
                "firmware",
                "ssh_host_key",
                "ssh_host_key_type",
                "ssh_crypto",
                "ssh_terrapin",
                "ssh_key_shared",
                "ssh_host_key_change",
                "advisories",
                "rack"
            ]
        );
        assert!(schema
            .layout()
            .header()
            .eq(columns.iter().map(String::as_str)));
    }
}
