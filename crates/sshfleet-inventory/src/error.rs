//! Every way an inventory can be wrong: a file that is no usable inventory at all
//! ([`InventoryError`]), a row that names no device it can scan ([`RowError`]), and an
//! address cell that names no device (`address::AddressError`, beside its parser). The
//! messages are part of the interface: they go into reports as `line N: <reason>`.

use std::path::PathBuf;

use super::address::{AddressError, Scheme};
use super::text::Quoted;
use super::MAX_CELL_BYTES;

/// A file that cannot be used as an inventory at all. Row problems are never errors: they
/// become invalid rows.
#[derive(thiserror::Error, Debug)]
pub enum InventoryError {
    #[error("cannot read inventory {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read inventory")]
    Io(#[source] std::io::Error),
    #[error("inventory is empty")]
    Empty,
    #[error("inventory has no header row (only blank lines and comments)")]
    NoHeader,
    #[error("inventory header has no address column (found: {found}); the first row must name the columns, one of them `address` (or `ip`, `ip address`, `host`, `hostname`), or name it with --address-column")]
    NoAddressColumn { found: String },
    #[error("inventory header has no column {name} (--address-column; found: {found})")]
    NoSuchAddressColumn { name: String, found: String },
    #[error("inventory header has several address columns ({found}); name the one to use with --address-column")]
    SeveralAddressColumns { found: String },
    #[error("inventory header names column {name:?} twice (columns {first} and {second})")]
    DuplicateColumn {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("inventory header (line {line}) has an unterminated quoted field")]
    UnterminatedHeader { line: u64 },
    #[error("inventory is not a UTF-8 CSV file: {reason}")]
    NotText { reason: &'static str },
    /// Latin-1 or Windows-1252 (older spreadsheet exports): refused whole rather than read as
    /// rows that turn invalid or names that print as `Troms�`.
    #[error("inventory is not UTF-8: line {line} holds the byte 0x{byte:02X}, which is not UTF-8 there (Latin-1 or Windows-1252?); save it as \"CSV UTF-8\", or convert it: iconv -f latin1 -t utf-8 inventory.csv > inventory-utf8.csv")]
    NotUtf8 { line: u64, byte: u8 },
    #[error("inventory cannot be parsed as CSV")]
    Csv(#[source] csv::Error),
}

/// Why a row is invalid. Values are kept quoted and short ([`Quoted`]); a password pasted
/// into a cell is never kept.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum RowError {
    #[error("unterminated quoted field (a stray '\"'?)")]
    UnterminatedQuote,
    #[error("{fields} fields, but the header has {width}")]
    TooManyFields { fields: usize, width: usize },
    /// `column` is the header's name for the cell (`column "name"`, `column 3`).
    #[error("{column} is not valid UTF-8")]
    NotUtf8 { column: String },
    #[error("{column} is longer than {max} bytes", max = MAX_CELL_BYTES)]
    CellTooLong { column: String },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("invalid scheme {0} (expected http or https)")]
    InvalidScheme(Quoted),
    #[error("invalid port {0}")]
    InvalidPort(Quoted),
    #[error("scheme column says {column} but the address is an {url} URL")]
    SchemeConflict { column: Scheme, url: Scheme },
    #[error("port column says {column} but the address has port {address}")]
    PortConflict { column: u16, address: u16 },
    #[error("username contains a control character")]
    UsernameControl,
    #[error("username must not contain ':'")]
    UsernameColon,
    /// The value is never kept: people do paste passwords into this column.
    #[error("password_env must be the name of an environment variable (letters, digits and _, not starting with a digit); the value is not shown")]
    PasswordEnvName,
    #[error("invalid ssh_port {0} (expected a port number, 1-65535)")]
    InvalidSshPort(Quoted),
    #[error("invalid expect {0} (expected enabled or disabled)")]
    InvalidExpect(Quoted),
    /// A device whose `password_env` names a variable the environment does not have.
    #[error("password_env {var} is not set in the environment")]
    PasswordEnvUnset { var: String },
    /// A row that parsed when the inventory was loaded and not when it was read again.
    #[error("the row could not be read a second time: {0}")]
    Reread(Box<RowError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reasons as reports spell them: these strings are what users (and their scripts)
    /// see in the `error` column.
    #[test]
    fn row_errors_say_what_reports_have_always_said() {
        let q = Quoted::new;
        let cases: [(RowError, &str); 17] = [
            (
                RowError::UnterminatedQuote,
                "unterminated quoted field (a stray '\"'?)",
            ),
            (
                RowError::TooManyFields {
                    fields: 4,
                    width: 3,
                },
                "4 fields, but the header has 3",
            ),
            (
                RowError::NotUtf8 {
                    column: "column \"name\"".into(),
                },
                "column \"name\" is not valid UTF-8",
            ),
            (
                RowError::CellTooLong {
                    column: "column 2".into(),
                },
                "column 2 is longer than 2048 bytes",
            ),
            (
                AddressError::TooLong.into(),
                "address is longer than 2048 bytes",
            ),
            (
                RowError::InvalidScheme(q("ftp")),
                "invalid scheme \"ftp\" (expected http or https)",
            ),
            (RowError::InvalidPort(q("99999")), "invalid port \"99999\""),
            (
                RowError::SchemeConflict {
                    column: Scheme::Http,
                    url: Scheme::Https,
                },
                "scheme column says http but the address is an https URL",
            ),
            (
                RowError::PortConflict {
                    column: 443,
                    address: 8443,
                },
                "port column says 443 but the address has port 8443",
            ),
            (
                RowError::UsernameControl,
                "username contains a control character",
            ),
            (RowError::UsernameColon, "username must not contain ':'"),
            (
                RowError::PasswordEnvName,
                "password_env must be the name of an environment variable (letters, digits and _, not starting with a digit); the value is not shown",
            ),
            (
                RowError::InvalidSshPort(q("0")),
                "invalid ssh_port \"0\" (expected a port number, 1-65535)",
            ),
            (
                RowError::InvalidExpect(q("maybe")),
                "invalid expect \"maybe\" (expected enabled or disabled)",
            ),
            (
                RowError::PasswordEnvUnset {
                    var: "CAM_PW".into(),
                },
                "password_env CAM_PW is not set in the environment",
            ),
            (
                RowError::Reread(Box::new(RowError::UsernameColon)),
                "the row could not be read a second time: username must not contain ':'",
            ),
            (
                AddressError::InvalidHostName {
                    name: q("a_b"),
                    why: "empty label",
                }
                .into(),
                "invalid host name \"a_b\": empty label",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message, "{error:?}");
        }
    }
}
