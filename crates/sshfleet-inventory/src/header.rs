//! The inventory header: which column is which, case-insensitively, with passthrough
//! columns kept in their original spelling.

use std::collections::HashMap;

use csv::ByteRecord;

use super::error::InventoryError;
use super::text::quoted;

/// The known columns, in the order of [`Header::known`].
const KNOWN_COLUMNS: [&str; 10] = [
    "address",
    "name",
    "site",
    "scheme",
    "port",
    "username",
    "password_env",
    "expect",
    "tags",
    "ssh_port",
];

#[derive(Clone, Copy)]
pub(super) enum Known {
    Address,
    Name,
    Site,
    Scheme,
    Port,
    Username,
    PasswordEnv,
    Expect,
    Tags,
    SshPort,
}

/// Where each column lives in a record.
pub(super) struct Header {
    pub address: usize,
    pub known: [Option<usize>; KNOWN_COLUMNS.len()],
    /// Passthrough columns: (record index, name as spelled in the header).
    pub extra: Vec<(usize, String)>,
    /// Columns whose header cell is empty; their values are ignored.
    pub unnamed: Vec<usize>,
    /// Display names of all columns, for messages.
    pub names: Vec<String>,
}

/// Other names inventories give the address column (normalised), where none is `address`.
const ADDRESS_ALIASES: [&str; 4] = ["ip", "ip_address", "host", "hostname"];

impl Header {
    /// The header `record`; `address_column` names the address column when it is not
    /// `address` or one of [`ADDRESS_ALIASES`] (`--address-column`).
    pub(crate) fn parse(
        record: &ByteRecord,
        address_column: Option<&str>,
    ) -> Result<Header, InventoryError> {
        let names = header_names(record)?;
        let address = address_index(&names, address_column)?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut known = [None; KNOWN_COLUMNS.len()];
        known[Known::Address as usize] = Some(address);
        let mut extra = Vec::new();
        let mut unnamed = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                unnamed.push(i);
                continue;
            }
            let key = normalise_column(name);
            let column = KNOWN_COLUMNS.iter().position(|k| *k == key);
            match column {
                // The address column was chosen above; another one named `address` (beside
                // `--address-column`) is carried through like any unknown column.
                _ if i == address => {}
                Some(k) if k == Known::Address as usize => extra.push((i, name.clone())),
                // `tags` is read (Device::tags) and also carried into the report: the record
                // has no field of its own for it, so it goes with the passthrough columns,
                // in inventory order, under its documented name.
                Some(k) if k == Known::Tags as usize => {
                    known[k] = Some(i);
                    extra.push((i, KNOWN_COLUMNS[k].to_owned()));
                }
                Some(k) => known[k] = Some(i),
                None => extra.push((i, name.clone())),
            }
            if let Some(first) = seen.insert(key, i) {
                return Err(InventoryError::DuplicateColumn {
                    name: name.clone(),
                    first: first + 1,
                    second: i + 1,
                });
            }
        }
        Ok(Header {
            address,
            known,
            extra,
            unnamed,
            names,
        })
    }

    pub(crate) fn index(&self, column: Known) -> Option<usize> {
        self.known[column as usize]
    }

    pub(crate) fn width(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, index: usize) -> String {
        match self.names.get(index).map(String::as_str) {
            Some("") | None => format!("column {}", index + 1),
            Some(name) => format!("column {}", quoted(name)),
        }
    }
}

/// The address column: the one `explicit` names, else `address`, else the one column named
/// like an address ([`ADDRESS_ALIASES`]); several of those are refused, not guessed between.
fn address_index(names: &[String], explicit: Option<&str>) -> Result<usize, InventoryError> {
    let keys: Vec<String> = names.iter().map(|n| normalise_column(n)).collect();
    let found = || found_list(names);
    if let Some(wanted) = explicit {
        let wanted_key = normalise_column(wanted);
        return keys.iter().position(|k| *k == wanted_key).ok_or_else(|| {
            InventoryError::NoSuchAddressColumn {
                name: quoted(wanted),
                found: found(),
            }
        });
    }
    if let Some(i) = keys.iter().position(|k| k == "address") {
        return Ok(i);
    }
    let aliases: Vec<usize> = (0..keys.len())
        .filter(|&i| ADDRESS_ALIASES.contains(&keys[i].as_str()))
        .collect();
    match aliases.as_slice() {
        [one] => Ok(*one),
        [] => Err(InventoryError::NoAddressColumn { found: found() }),
        several => Err(InventoryError::SeveralAddressColumns {
            found: several
                .iter()
                .map(|&i| quoted(&names[i]))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn header_names(record: &ByteRecord) -> Result<Vec<String>, InventoryError> {
    record
        .iter()
        .map(|cell| {
            let text = std::str::from_utf8(cell).map_err(|_| InventoryError::NotText {
                reason: "the header row is not valid UTF-8 (save it as CSV UTF-8)",
            })?;
            if text.contains('\0') {
                return Err(InventoryError::NotText {
                    reason: "the header row contains NUL bytes (is it UTF-16 or binary?)",
                });
            }
            Ok(text.trim().to_owned())
        })
        .collect()
}

/// Column names match case-insensitively; `Password Env` and `password-env` also match.
fn normalise_column(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn found_list(names: &[String]) -> String {
    let named: Vec<String> = names
        .iter()
        .filter(|n| !n.is_empty())
        .take(10)
        .map(|n| quoted(n))
        .collect();
    if named.is_empty() {
        "no named columns".to_owned()
    } else {
        named.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_columns_are_indexed_in_name_order() {
        let order = [
            (Known::Address, "address"),
            (Known::Name, "name"),
            (Known::Site, "site"),
            (Known::Scheme, "scheme"),
            (Known::Port, "port"),
            (Known::Username, "username"),
            (Known::PasswordEnv, "password_env"),
            (Known::Expect, "expect"),
            (Known::Tags, "tags"),
            (Known::SshPort, "ssh_port"),
        ];
        for (column, name) in order {
            assert_eq!(KNOWN_COLUMNS[column as usize], name);
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    #[expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
    fn the_address_column_is_address_else_the_one_named_like_an_address() {
        let find = |list: &[&str], explicit| address_index(&names(list), explicit);
        assert_eq!(find(&["name", "Address", "ip"], None).unwrap(), 1);
        for alias in ["IP", "IP Address", "ip_address", "Host", "HOSTNAME"] {
            assert_eq!(find(&["name", alias], None).unwrap(), 1, "{alias}");
        }
        assert_eq!(find(&["name", "Camera IP"], Some("camera ip")).unwrap(), 1);
        assert_eq!(find(&["address", "mgmt"], Some("MGMT")).unwrap(), 1);
        let several = find(&["ip", "hostname"], None).unwrap_err();
        assert_eq!(
            several.to_string(),
            "inventory header has several address columns (\"ip\", \"hostname\"); name the one to use with --address-column"
        );
        assert!(matches!(
            find(&["ip"], Some("mgmt")).unwrap_err(),
            InventoryError::NoSuchAddressColumn { .. }
        ));
        assert!(matches!(
            find(&["name", "mac"], None).unwrap_err(),
            InventoryError::NoAddressColumn { .. }
        ));
    }

    #[test]
    fn column_names_are_normalised() {
        assert_eq!(normalise_column(" Password Env "), "password_env");
        assert_eq!(normalise_column("PASSWORD-ENV"), "password_env");
    }
}
