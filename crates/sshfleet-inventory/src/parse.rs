//! One inventory record into a [`Device`], or into an [`InvalidRow`] saying why not: cells
//! checked for shape, size and encoding, the address resolved with the `scheme` and `port`
//! columns, and every other known column validated.

use csv::ByteRecord;

use super::address::{parse_address, parse_port, redact_credentials, Address};
use super::error::RowError;
use super::header::{Header, Known};
use super::reader::RawRow;
use super::text::{echo_cell, Quoted};
use super::{Device, InvalidRow, Scheme, Target, MAX_CELL_BYTES};
use sshfleet_core::model::SshState;

/// Parses the records of one inventory, given its header.
pub(super) struct RowParser {
    pub header: Header,
    /// The scheme of rows whose address and `scheme` column give none.
    pub default_scheme: Scheme,
    /// The field separator the records were read with.
    pub delimiter: u8,
}

impl RowParser {
    pub(crate) fn device(&self, raw: &RawRow) -> Result<Device, RowError> {
        if raw.unterminated {
            return Err(RowError::UnterminatedQuote);
        }
        let cells = Cells::new(&self.header, &raw.record)?;
        let parsed = parse_address(cells.get(Some(self.header.address)))?;
        let target = resolve_target(parsed, &cells, self.default_scheme)?;
        Ok(Device {
            line: raw.line,
            address: cells.get(Some(self.header.address)).to_owned(),
            target,
            name: cells.known(Known::Name).to_owned(),
            site: cells.known(Known::Site).to_owned(),
            username: parse_username(cells.known(Known::Username))?,
            password_env: parse_password_env(cells.known(Known::PasswordEnv))?,
            expect: parse_expect(cells.known(Known::Expect))?,
            tags: cells.known(Known::Tags).to_owned(),
            ssh_port: parse_ssh_port(cells.known(Known::SshPort))?,
            extra: cells.extra(),
        })
    }

    /// An invalid row that still lets people find the row: address (credentials
    /// redacted), name, site and passthrough values, cleaned and truncated.
    pub(crate) fn invalid(&self, raw: &RawRow, reason: RowError) -> InvalidRow {
        let echo = |index: Option<usize>| echo_cell(index.and_then(|i| raw.record.get(i)));
        InvalidRow {
            line: raw.line,
            address: redact_credentials(&echo(Some(self.header.address))),
            name: echo(self.header.index(Known::Name)),
            site: echo(self.header.index(Known::Site)),
            expect: None,
            extra: self
                .header
                .extra
                .iter()
                .map(|(i, _)| echo(Some(*i)))
                .collect(),
            reason,
        }
    }
}

/// The trimmed UTF-8 cells of one record, checked for shape and size.
struct Cells<'a> {
    header: &'a Header,
    cells: Vec<&'a str>,
}

impl<'a> Cells<'a> {
    fn new(header: &'a Header, record: &'a ByteRecord) -> Result<Cells<'a>, RowError> {
        let surplus = record.iter().skip(header.width());
        // Trailing empty cells (`a,b,,`) are harmless export noise; values are not.
        if surplus.clone().any(|cell| !cell.trim_ascii().is_empty()) {
            return Err(RowError::TooManyFields {
                fields: record.len(),
                width: header.width(),
            });
        }
        let cells = (0..header.width())
            .map(|i| decode_cell(header, i, record.get(i).unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        Ok(Cells { header, cells })
    }

    fn get(&self, index: Option<usize>) -> &'a str {
        index
            .and_then(|i| self.cells.get(i).copied())
            .unwrap_or_default()
    }

    fn known(&self, column: Known) -> &'a str {
        self.get(self.header.index(column))
    }

    fn extra(&self) -> Vec<String> {
        self.header
            .extra
            .iter()
            .map(|(i, _)| self.get(Some(*i)).to_owned())
            .collect()
    }
}

fn decode_cell<'a>(header: &Header, index: usize, cell: &'a [u8]) -> Result<&'a str, RowError> {
    let text = std::str::from_utf8(cell)
        .map_err(|_| RowError::NotUtf8 {
            column: header.name(index),
        })?
        .trim();
    if text.len() > MAX_CELL_BYTES {
        return Err(RowError::CellTooLong {
            column: header.name(index),
        });
    }
    Ok(text)
}

/// Combines what the address says with the `scheme` and `port` columns; they may fill in
/// what the address leaves out, never contradict it.
fn resolve_target(
    parsed: Address,
    cells: &Cells<'_>,
    default_scheme: Scheme,
) -> Result<Target, RowError> {
    let column_scheme = parse_scheme_column(cells.known(Known::Scheme))?;
    let column_port = match cells.known(Known::Port) {
        "" => None,
        port => Some(parse_port(port).ok_or_else(|| RowError::InvalidPort(Quoted::new(port)))?),
    };
    if let (Some(url), Some(column)) = (parsed.scheme, column_scheme) {
        if url != column {
            return Err(RowError::SchemeConflict { column, url });
        }
    }
    if let (Some(address), Some(column)) = (parsed.port, column_port) {
        if address != column {
            return Err(RowError::PortConflict { column, address });
        }
    }
    let scheme = parsed.scheme.or(column_scheme).unwrap_or(default_scheme);
    let port = parsed.port.or(column_port).unwrap_or(scheme.default_port());
    Ok(Target {
        scheme,
        host: parsed.host,
        port,
    })
}

fn parse_scheme_column(cell: &str) -> Result<Option<Scheme>, RowError> {
    match cell {
        "" => Ok(None),
        _ => Scheme::parse(cell)
            .map(Some)
            .ok_or_else(|| RowError::InvalidScheme(Quoted::new(cell))),
    }
}

/// Usernames go into `Authorization` headers: no control characters, and no `:` (Basic
/// auth cannot carry one).
fn parse_username(cell: &str) -> Result<Option<String>, RowError> {
    if cell.is_empty() {
        return Ok(None);
    }
    if cell.chars().any(char::is_control) {
        return Err(RowError::UsernameControl);
    }
    if cell.contains(':') {
        return Err(RowError::UsernameColon);
    }
    Ok(Some(cell.to_owned()))
}

/// The value is never echoed: people do paste passwords into this column.
fn parse_password_env(cell: &str) -> Result<Option<String>, RowError> {
    if cell.is_empty() {
        return Ok(None);
    }
    let mut bytes = cell.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(RowError::PasswordEnvName);
    }
    Ok(Some(cell.to_owned()))
}

fn parse_ssh_port(cell: &str) -> Result<Option<u16>, RowError> {
    match cell {
        "" => Ok(None),
        _ => parse_port(cell)
            .map(Some)
            .ok_or_else(|| RowError::InvalidSshPort(Quoted::new(cell))),
    }
}

fn parse_expect(cell: &str) -> Result<Option<SshState>, RowError> {
    match cell {
        "" => Ok(None),
        _ => SshState::parse(cell)
            .map(Some)
            .ok_or_else(|| RowError::InvalidExpect(Quoted::new(cell))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::address::AddressError;
    use super::super::test_support::{
        devices, errors, invalid, inventory, inventory_with, reasons, urls,
    };
    use super::*;

    fn q(value: &str) -> Quoted {
        Quoted::new(value)
    }
    #[test]
    fn every_address_form_becomes_a_target() {
        let inv = inventory(
            "address\n10.1.2.3\n10.1.2.4:8080\nfe80::1\n[::1]:8443\n[2001:db8::1]\nCam-1.Example\n\
             cam-2.example:81\nhttps://10.0.0.9\nhttp://[::2]:8080/\nhttps://cam-3.example/\n",
        );
        assert_eq!(
            urls(&inv),
            [
                "http://10.1.2.3:80",
                "http://10.1.2.4:8080",
                "http://[fe80::1]:80",
                "http://[::1]:8443",
                "http://[2001:db8::1]:80",
                "http://cam-1.example:80",
                "http://cam-2.example:81",
                "https://10.0.0.9:443",
                "http://[::2]:8080",
                "https://cam-3.example:443",
            ]
        );
        let first = devices(&inv).remove(5);
        assert_eq!(first.address, "Cam-1.Example");
        assert_eq!(first.line, 7);
        assert!(inv.warnings.is_empty());
    }

    #[test]
    fn scheme_and_port_columns_fill_in_what_the_address_lacks() {
        let inv = inventory(
            "address,scheme,port\n10.0.0.1,https,\n10.0.0.2,,8080\n10.0.0.3,HTTPS,8443\n\
             https://10.0.0.4,https,443\n10.0.0.5:81,,81\n",
        );
        assert_eq!(
            urls(&inv),
            [
                "https://10.0.0.1:443",
                "http://10.0.0.2:8080",
                "https://10.0.0.3:8443",
                "https://10.0.0.4:443",
                "http://10.0.0.5:81",
            ]
        );
    }

    #[test]
    fn default_scheme_comes_from_options() {
        let opts = super::super::InventoryOptions {
            default_scheme: Scheme::Https,
            ..Default::default()
        };
        let inv = inventory_with("address\n10.0.0.1\nhttp://10.0.0.2\n", &opts);
        assert_eq!(urls(&inv), ["https://10.0.0.1:443", "http://10.0.0.2:80"]);
    }

    #[test]
    fn conflicting_scheme_or_port_makes_the_row_invalid() {
        let inv = inventory(
            "address,scheme,port\nhttps://10.0.0.1,http,\n10.0.0.2:8443,,443\n\
             https://10.0.0.3:8443,,443\n10.0.0.4,ftp,\n10.0.0.5,,99999\n",
        );
        let conflict = RowError::PortConflict {
            column: 443,
            address: 8443,
        };
        assert_eq!(
            reasons(&inv),
            [
                (
                    2,
                    RowError::SchemeConflict {
                        column: Scheme::Http,
                        url: Scheme::Https
                    }
                ),
                (3, conflict.clone()),
                (4, conflict),
                (5, RowError::InvalidScheme(q("ftp"))),
                (6, RowError::InvalidPort(q("99999"))),
            ]
        );
    }

    #[test]
    fn bad_address_is_an_invalid_row_with_its_line() {
        let inv = inventory("address,name,site\n10.0.0.1,a,s\n10.0.0.1:99999,b,hq\n10.0.0.3,c,s\n");
        assert_eq!(devices(&inv).len(), 2);
        let row = invalid(&inv).remove(0);
        assert_eq!(row.address, "10.0.0.1:99999");
        assert_eq!((row.name.as_str(), row.site.as_str()), ("b", "hq"));
        assert_eq!(
            row.reason,
            RowError::Address(AddressError::InvalidPort(q("99999")))
        );
        // The message reports carry, line first.
        assert_eq!(row.to_string(), "line 3: invalid port \"99999\"");
        // File order is kept: the invalid row sits between the two devices.
        assert!(matches!(
            inv.rows.iter().nth(1),
            Some(super::super::Row::Invalid(_))
        ));
    }
    #[test]
    fn header_is_case_insensitive_and_keeps_passthrough_spelling_and_carries_tags() {
        let inv = inventory(
            " Address ,NAME,Site, Owner ,Password Env,EXPECT,Tags,Rack\n\
             10.0.0.1,cam,hq,alice,CAM_PW,off,a;b,R1\n",
        );
        assert_eq!(inv.extra_columns, ["Owner", "tags", "Rack"]);
        let device = devices(&inv).remove(0);
        assert_eq!(device.name, "cam");
        assert_eq!(device.site, "hq");
        assert_eq!(device.password_env.as_deref(), Some("CAM_PW"));
        assert_eq!(device.expect, Some(SshState::Disabled));
        assert_eq!(device.tags, "a;b");
        assert_eq!(device.extra, ["alice", "a;b", "R1"]);
    }

    #[test]
    fn all_known_columns_are_read() {
        let inv = inventory(
            "address,name,site,scheme,port,username,password_env,expect,tags\n\
             10.0.0.1, cam , hq ,https,8443,admin,PW_HQ,enabled,outdoor\n",
        );
        let device = devices(&inv).remove(0);
        assert_eq!(device.target.base_url(), "https://10.0.0.1:8443");
        assert_eq!(device.name, "cam");
        assert_eq!(device.username.as_deref(), Some("admin"));
        assert_eq!(device.expect, Some(SshState::Enabled));
        assert_eq!(device.tags, "outdoor");
        assert_eq!(device.address, "10.0.0.1");
    }

    #[test]
    fn short_rows_are_padded_and_long_rows_are_invalid() {
        let inv = inventory("address,name,site\n10.0.0.1\n10.0.0.2,b,s,extra\n10.0.0.3,c,s,,\n");
        assert_eq!(urls(&inv), ["http://10.0.0.1:80", "http://10.0.0.3:80"]);
        assert_eq!(
            reasons(&inv),
            [(
                3,
                RowError::TooManyFields {
                    fields: 4,
                    width: 3
                }
            )]
        );
    }

    #[test]
    fn hostile_cells_stay_in_their_row() {
        let huge = "9".repeat(3000);
        let text = format!(
            "address,name\n10.0.0.1,=HYPERLINK(\"http://evil\")\n10.0.0.2\0,nul\n{huge},big\n10.0.0.4,{}\n",
            "n".repeat(3000)
        );
        let inv = inventory(text);
        assert_eq!(devices(&inv)[0].name, "=HYPERLINK(\"http://evil\")");
        let too_long = |column: &str| RowError::CellTooLong {
            column: column.to_owned(),
        };
        assert_eq!(
            reasons(&inv),
            [
                (3, RowError::Address(AddressError::ControlCharacter)),
                (4, too_long("column \"address\"")),
                (5, too_long("column \"name\"")),
            ]
        );
        let bad = invalid(&inv);
        assert_eq!(bad[0].address, "10.0.0.2\\u{0}", "shown as an escape");
        assert_eq!(bad[1].address.chars().count(), 256);
        assert!(bad[1].address.ends_with('…'));
        assert_eq!(
            bad[1].to_string(),
            "line 4: column \"address\" is longer than 2048 bytes"
        );
    }

    #[test]
    fn credentials_in_the_address_are_never_echoed() {
        let inv = inventory("address\nhttps://root:hunter2@10.0.0.1\n");
        let row = invalid(&inv).remove(0);
        assert_eq!(row.address, "https://(redacted)@10.0.0.1");
        assert_eq!(row.reason, RowError::Address(AddressError::Credentials));
        assert!(!row.to_string().contains("hunter2"));
    }

    #[test]
    fn password_env_must_be_a_variable_name() {
        let inv =
            inventory("address,password_env\n10.0.0.1,CAM_PW\n10.0.0.2,hunter2!\n10.0.0.3,2PW\n");
        assert_eq!(devices(&inv).len(), 1);
        assert_eq!(
            reasons(&inv),
            [
                (3, RowError::PasswordEnvName),
                (4, RowError::PasswordEnvName)
            ]
        );
        for error in errors(&inv) {
            assert!(error.contains("name of an environment variable"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn expect_and_username_are_validated() {
        let inv = inventory(
            "address,expect,username\n10.0.0.1,maybe,\n10.0.0.2,,ro:ot\n10.0.0.3,OFF,root\n10.0.0.4,,a\u{7}b\n",
        );
        assert_eq!(
            reasons(&inv),
            [
                (2, RowError::InvalidExpect(q("maybe"))),
                (3, RowError::UsernameColon),
                (5, RowError::UsernameControl),
            ]
        );
        assert_eq!(devices(&inv)[0].expect, Some(SshState::Disabled));
    }

    #[test]
    fn ssh_port_is_a_port_number_or_the_row_is_invalid() {
        let inv = inventory(
            "address,SSH Port\n10.0.0.1,2222\n10.0.0.2,\n10.0.0.3,0\n10.0.0.4,65536\n10.0.0.5,22x\n10.0.0.6, 65535 \n",
        );
        let ports: Vec<Option<u16>> = devices(&inv).iter().map(|d| d.ssh_port).collect();
        assert_eq!(ports, [Some(2222), None, Some(65535)]);
        assert!(
            inv.extra_columns.is_empty(),
            "ssh_port is not passed through"
        );
        assert_eq!(
            reasons(&inv),
            [
                (4, RowError::InvalidSshPort(q("0"))),
                (5, RowError::InvalidSshPort(q("65536"))),
                (6, RowError::InvalidSshPort(q("22x"))),
            ]
        );
        assert_eq!(
            errors(&inv)[0],
            "line 4: invalid ssh_port \"0\" (expected a port number, 1-65535)"
        );
    }

    #[test]
    fn invalid_rows_keep_passthrough_values() {
        let inv = inventory("address,owner,name\nnot a host,alice,cam\n");
        let row = invalid(&inv).remove(0);
        assert_eq!(row.extra, ["alice"]);
        assert_eq!(row.name, "cam");
        assert_eq!(row.expect, None);
        assert_eq!(row.reason, RowError::Address(AddressError::Whitespace));
    }
}
