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

impl Header {
    pub fn parse(record: &ByteRecord) -> Result<Header, InventoryError> {
        let names = header_names(record)?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut known = [None; KNOWN_COLUMNS.len()];
        let mut extra = Vec::new();
        let mut unnamed = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() {
                unnamed.push(i);
                continue;
            }
            let key = normalise_column(name);
            match KNOWN_COLUMNS.iter().position(|k| *k == key) {
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
        let address =
            known[Known::Address as usize].ok_or_else(|| InventoryError::NoAddressColumn {
                found: found_list(&names),
            })?;
        Ok(Header {
            address,
            known,
            extra,
            unnamed,
            names,
        })
    }

    pub fn index(&self, column: Known) -> Option<usize> {
        self.known[column as usize]
    }

    pub fn width(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, index: usize) -> String {
        match self.names.get(index).map(String::as_str) {
            Some("") | None => format!("column {}", index + 1),
            Some(name) => format!("column {}", quoted(name)),
        }
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

    #[test]
    fn column_names_are_normalised() {
        assert_eq!(normalise_column(" Password Env "), "password_env");
        assert_eq!(normalise_column("PASSWORD-ENV"), "password_env");
    }
}
