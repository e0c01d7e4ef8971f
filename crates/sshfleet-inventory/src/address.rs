//! Device addresses: the scheme, host and port of a camera, and the parsing of an inventory
//! `address` cell (IP literal, host name, `host:port`, or an `http(s)://` base URL).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::text::{quoted, Quoted};

/// Addresses longer than this are rejected: no real host name or URL comes close.
pub(crate) const MAX_ADDRESS_BYTES: usize = 2048;

/// RFC 1035 limits.
const MAX_NAME_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

/// How to talk to a device.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub(crate) fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`, any case, surrounding whitespace ignored.
    pub fn parse(s: &str) -> Option<Scheme> {
        let s = s.trim();
        [Scheme::Http, Scheme::Https]
            .into_iter()
            .find(|scheme| s.eq_ignore_ascii_case(scheme.as_str()))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Scheme, String> {
        Scheme::parse(s)
            .ok_or_else(|| format!("invalid scheme {} (expected http or https)", quoted(s)))
    }
}

/// A device host: an IP literal or a DNS name (validated, stored in lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    /// The bare host: IPv6 without brackets. Use [`Target::authority`] to build URLs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// Where a device answers: scheme, host and a resolved port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl Target {
    /// `host:port` with IPv6 in brackets: `10.1.2.3:80`, `[::1]:8443`, `cam.example:80`.
    pub fn authority(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            host => format!("{host}:{}", self.port),
        }
    }

    /// `scheme://authority`, always with the port: `http://10.1.2.3:80`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority())
    }

    /// The identity of a device for duplicate detection and sharding. Lowercase because host
    /// names are stored lowercase and IP literals print in canonical (RFC 5952) form.
    pub fn key(&self) -> String {
        self.base_url()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_url())
    }
}

/// What an address cell says. Scheme and port are `None` unless the cell spells them out,
/// so the `scheme`/`port` columns can fill them in or conflict with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub scheme: Option<Scheme>,
    pub host: Host,
    pub port: Option<u16>,
}

/// Parses a trimmed address cell.
pub(crate) fn parse_address(cell: &str) -> Result<Address, AddressError> {
    check_shape(cell)?;
    // Checked before anything echoes a part of the cell: the part may be a password.
    if cell.contains('@') {
        return Err(AddressError::Credentials);
    }
    if let Some((scheme, rest)) = cell.split_once("://") {
        // `=HYPERLINK("http://…` is no URL with an odd scheme; it gets the generic message.
        if scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
            return parse_url(scheme, rest);
        }
    }
    if cell.contains(['/', '?', '#']) {
        return Err(AddressError::NotAHost(Quoted::new(cell)));
    }
    let (host, port) = parse_authority(cell)?;
    Ok(Address {
        scheme: None,
        host,
        port,
    })
}

fn check_shape(cell: &str) -> Result<(), AddressError> {
    if cell.is_empty() {
        return Err(AddressError::Empty);
    }
    if cell.len() > MAX_ADDRESS_BYTES {
        return Err(AddressError::TooLong);
    }
    if cell.contains(['\n', '\r']) {
        return Err(AddressError::SpansLines);
    }
    if cell.chars().any(char::is_control) {
        return Err(AddressError::ControlCharacter);
    }
    if cell.chars().any(char::is_whitespace) {
        return Err(AddressError::Whitespace);
    }
    Ok(())
}

/// `http(s)://authority[/]`: a base URL. Paths, queries and fragments are refused because
/// the scanner adds its own paths; silently dropping one would hide a mistake.
fn parse_url(scheme: &str, rest: &str) -> Result<Address, AddressError> {
    let scheme = Scheme::parse(scheme)
        .ok_or_else(|| AddressError::UnsupportedScheme(Quoted::new(scheme)))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(AddressError::UrlPath(Quoted::new(tail)));
    }
    let (host, port) = parse_authority(authority)?;
    Ok(Address {
        scheme: Some(scheme),
        host,
        port,
    })
}

/// `host`, `host:port`, a bare IPv6 literal (never with a port: `::1:80` is an address), or
/// `[v6]` / `[v6]:port`.
fn parse_authority(s: &str) -> Result<(Host, Option<u16>), AddressError> {
    if s.is_empty() {
        return Err(AddressError::NoHost);
    }
    if let Some(inner) = s.strip_prefix('[') {
        return parse_bracketed(inner);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((Host::Ip(ip), None));
    }
    match s.split_once(':') {
        None => Ok((parse_host(s)?, None)),
        Some((host, port)) if !port.contains(':') => {
            Ok((parse_host(host)?, Some(address_port(port)?)))
        }
        Some(_) => Err(invalid_ipv6(s)),
    }
}

fn parse_bracketed(inner: &str) -> Result<(Host, Option<u16>), AddressError> {
    let (literal, after) = inner.split_once(']').ok_or(AddressError::UnclosedBracket)?;
    let ip = literal
        .parse::<Ipv6Addr>()
        .map_err(|_| invalid_ipv6(literal))?;
    let port = match after {
        "" => None,
        _ => {
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| AddressError::AfterBracket(Quoted::new(after)))?;
            Some(address_port(port)?)
        }
    };
    Ok((Host::Ip(IpAddr::V6(ip)), port))
}

fn invalid_ipv6(s: &str) -> AddressError {
    if s.contains('%') {
        return AddressError::Ipv6Zone(Quoted::new(s));
    }
    AddressError::InvalidIpv6(Quoted::new(s))
}

/// An IPv4 literal or a DNS name. A name whose last label is all digits is refused: it is a
/// mistyped IPv4 address (`10.0.0.256`, `010.0.0.1`), which resolvers read in surprising ways.
fn parse_host(s: &str) -> Result<Host, AddressError> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    // A trailing dot marks a fully qualified name; it is kept, but not a label of its own.
    let name = s.strip_suffix('.').unwrap_or(s);
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::InvalidIpv4(Quoted::new(s)));
    }
    check_host_name(name).map_err(|why| AddressError::InvalidHostName {
        name: Quoted::new(s),
        why,
    })?;
    Ok(Host::Name(s.to_ascii_lowercase()))
}

fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if !name.is_ascii() {
        return Err("not ASCII (write internationalised names in their xn-- form)");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("longer than 253 characters");
    }
    name.split('.').try_for_each(check_label)
}

fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty label");
    }
    if label.len() > MAX_LABEL_BYTES {
        return Err("a label is longer than 63 characters");
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err("only letters, digits, '-' and '.' are allowed");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a label starts or ends with '-'");
    }
    Ok(())
}

/// A port number, 1 to 65535, decimal digits only.
pub(crate) fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&port| port > 0)
}

fn address_port(s: &str) -> Result<u16, AddressError> {
    parse_port(s).ok_or_else(|| AddressError::InvalidPort(Quoted::new(s)))
}

/// Replaces the userinfo of an address (everything before its last `@`, after any `scheme://`)
/// so that an invalid row can show its address without showing a password.
pub(crate) fn redact_credentials(cell: &str) -> String {
    let Some(at) = cell.rfind('@') else {
        return cell.to_owned();
    };
    let start = cell.find("://").map_or(0, |i| i + 3);
    if start > at {
        return cell.to_owned();
    }
    format!("{}(redacted){}", &cell[..start], &cell[at..])
}

/// Why an address cell names no device. Messages quote the cell only after it is known
/// to hold no credentials.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than {max} bytes", max = MAX_ADDRESS_BYTES)]
    TooLong,
    #[error("address spans several lines (a stray '\"' in the row?)")]
    SpansLines,
    #[error("address contains a control character")]
    ControlCharacter,
    #[error("address contains whitespace")]
    Whitespace,
    /// `user:pass@` in the address. The message never echoes the cell: it holds a password.
    #[error("address must not contain credentials (user@ or user:password@); use the username and password_env columns")]
    Credentials,
    #[error("address {0} is not a host, host:port or http(s):// URL")]
    NotAHost(Quoted),
    #[error("unsupported URL scheme {0} (expected http or https)")]
    UnsupportedScheme(Quoted),
    #[error("URL path {0} is not allowed; give the device's base URL")]
    UrlPath(Quoted),
    #[error("address has no host")]
    NoHost,
    #[error("unclosed '[' in address")]
    UnclosedBracket,
    #[error("unexpected {0} after ']'")]
    AfterBracket(Quoted),
    #[error("invalid IPv6 address {0}: zone identifiers (%) are not supported")]
    Ipv6Zone(Quoted),
    #[error("invalid IPv6 address {0} (a port goes after brackets: [v6]:port)")]
    InvalidIpv6(Quoted),
    #[error("invalid IPv4 address {0}")]
    InvalidIpv4(Quoted),
    #[error("invalid host name {name}: {why}")]
    InvalidHostName { name: Quoted, why: &'static str },
    #[error("invalid port {0}")]
    InvalidPort(Quoted),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cell: &str) -> Address {
        match parse_address(cell) {
            Ok(address) => address,
            Err(why) => panic!("{cell:?} was refused: {why}"),
        }
    }

    fn refused(cell: &str) -> AddressError {
        match parse_address(cell) {
            Ok(address) => panic!("{cell:?} was accepted as {address:?}"),
            Err(why) => why,
        }
    }

    fn err(cell: &str) -> String {
        refused(cell).to_string()
    }

    fn ip(s: &str) -> Host {
        Host::Ip(s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }

    fn addr(scheme: Option<Scheme>, host: Host, port: Option<u16>) -> Address {
        Address { scheme, host, port }
    }

    #[test]
    fn ipv4_literal() {
        assert_eq!(ok("10.1.2.3"), addr(None, ip("10.1.2.3"), None));
        assert_eq!(ok("10.1.2.3:8080"), addr(None, ip("10.1.2.3"), Some(8080)));
    }

    #[test]
    fn ipv6_literal_bare_and_bracketed() {
        assert_eq!(ok("fe80::1"), addr(None, ip("fe80::1"), None));
        assert_eq!(ok("::1:80"), addr(None, ip("::1:80"), None));
        assert_eq!(ok("[::1]"), addr(None, ip("::1"), None));
        assert_eq!(ok("[::1]:8443"), addr(None, ip("::1"), Some(8443)));
        assert_eq!(
            ok("https://[2001:db8::7]:8443/"),
            addr(Some(Scheme::Https), ip("2001:db8::7"), Some(8443))
        );
    }

    #[test]
    fn host_names() {
        let name = |n: &str| Host::Name(n.to_owned());
        assert_eq!(
            ok("cam-01.site.example"),
            addr(None, name("cam-01.site.example"), None)
        );
        assert_eq!(
            ok("CAM.Example:81"),
            addr(None, name("cam.example"), Some(81))
        );
        assert_eq!(ok("cam.example."), addr(None, name("cam.example."), None));
        assert_eq!(ok("localhost"), addr(None, name("localhost"), None));
    }

    #[test]
    fn urls() {
        assert_eq!(
            ok("https://10.1.2.3:8443"),
            addr(Some(Scheme::Https), ip("10.1.2.3"), Some(8443))
        );
        assert_eq!(
            ok("HTTP://10.1.2.3/"),
            addr(Some(Scheme::Http), ip("10.1.2.3"), None)
        );
    }

    #[test]
    fn refuses_malformed_hosts() {
        use AddressError as E;
        let host_name = |cell: &str| match refused(cell) {
            E::InvalidHostName { name, why } => {
                assert_eq!(name, Quoted::new(cell));
                why
            }
            other => panic!("{cell:?}: {other:?}"),
        };
        assert!(matches!(refused("10.0.0.256"), E::InvalidIpv4(_)));
        assert!(matches!(refused("010.0.0.1"), E::InvalidIpv4(_)));
        assert!(matches!(refused("999"), E::InvalidIpv4(_)));
        assert!(host_name("cam_01.example").contains("only letters"));
        assert!(host_name("-cam.example").contains("starts or ends"));
        assert!(host_name("cam..example").contains("empty label"));
        assert!(host_name(&format!("{}.example", "a".repeat(64))).contains("63"));
        assert!(host_name(&"a.".repeat(130)).contains("253"));
        assert!(host_name("kamera.bücher.example").contains("ASCII"));
        assert!(matches!(refused("fe80::1::2"), E::InvalidIpv6(_)));
        assert!(matches!(refused("fe80::1%eth0"), E::Ipv6Zone(_)));
        assert!(matches!(refused("[fe80::1%25eth0]:80"), E::Ipv6Zone(_)));
        assert!(matches!(refused("[10.0.0.1]"), E::InvalidIpv6(_)));
        assert_eq!(refused("[::1"), E::UnclosedBracket);
        assert!(matches!(refused("[::1]8443"), E::AfterBracket(q) if q.as_str() == "8443"));
        assert!(matches!(refused("10.0.0.0/24"), E::NotAHost(_)));
        assert_eq!(refused(""), E::Empty);
        assert_eq!(refused("10.0.0.1 cam"), E::Whitespace);
        assert_eq!(refused("10.0.0.1\0"), E::ControlCharacter);
        assert_eq!(refused("10.0.0.1\n"), E::SpansLines);
        assert_eq!(refused(&"9".repeat(3000)), E::TooLong);
        // The messages reports carry.
        assert_eq!(err(""), "address is empty");
        assert_eq!(
            err("fe80::1%eth0"),
            "invalid IPv6 address \"fe80::1%eth0\": zone identifiers (%) are not supported"
        );
        assert_eq!(
            err("cam..example"),
            "invalid host name \"cam..example\": empty label"
        );
    }

    #[test]
    fn refuses_bad_ports() {
        assert_eq!(err("10.0.0.1:99999"), "invalid port \"99999\"");
        assert_eq!(err("10.0.0.1:0"), "invalid port \"0\"");
        assert_eq!(err("10.0.0.1:"), "invalid port \"\"");
        assert_eq!(err("10.0.0.1:+80"), "invalid port \"+80\"");
        assert_eq!(err("[::1]:65536"), "invalid port \"65536\"");
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("00080"), Some(80));
    }

    #[test]
    fn refuses_url_extras() {
        use AddressError as E;
        assert!(
            matches!(refused("ftp://10.0.0.1"), E::UnsupportedScheme(q) if q.as_str() == "ftp")
        );
        assert!(matches!(
            refused("=HYPERLINK(\"http://x\")"),
            E::NotAHost(_)
        ));
        assert!(matches!(
            refused("http://10.0.0.1/axis-cgi/ssh.cgi"),
            E::UrlPath(q) if q.as_str() == "/axis-cgi/ssh.cgi"
        ));
        assert!(matches!(refused("http://10.0.0.1?x=1"), E::UrlPath(_)));
        assert_eq!(refused("http://"), E::NoHost);
        assert_eq!(
            err("http://10.0.0.1?x=1"),
            "URL path \"?x=1\" is not allowed; give the device's base URL"
        );
    }

    #[test]
    fn credentials_are_refused_without_echo() {
        for cell in [
            "http://root:hunter2@10.0.0.1",
            "root:hunter2@10.0.0.1",
            "hunter2@cam",
        ] {
            assert_eq!(refused(cell), AddressError::Credentials);
            let why = err(cell);
            assert!(!why.contains("hunter2"), "{why}");
            assert!(why.contains("credentials"), "{why}");
        }
    }

    #[test]
    fn redaction_hides_userinfo() {
        assert_eq!(
            redact_credentials("https://root:p@ss@10.0.0.1:443"),
            "https://(redacted)@10.0.0.1:443"
        );
        assert_eq!(redact_credentials("root:pw@cam"), "(redacted)@cam");
        assert_eq!(redact_credentials("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn target_forms() {
        let target = |host: Host, port| Target {
            scheme: Scheme::Http,
            host,
            port,
        };
        assert_eq!(target(ip("10.1.2.3"), 80).authority(), "10.1.2.3:80");
        assert_eq!(target(ip("::1"), 8443).authority(), "[::1]:8443");
        assert_eq!(
            target(Host::Name("cam.example".into()), 80).base_url(),
            "http://cam.example:80"
        );
        assert_eq!(target(ip("::0001"), 80).key(), "http://[::1]:80");
    }

    #[test]
    fn scheme_parsing() {
        assert_eq!(Scheme::parse(" HTTPS "), Some(Scheme::Https));
        assert_eq!("http".parse::<Scheme>(), Ok(Scheme::Http));
        assert!("ftp".parse::<Scheme>().is_err());
        assert_eq!(Scheme::Https.to_string(), "https");
    }
}
