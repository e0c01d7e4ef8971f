//! Device addresses: the scheme, host and port of a camera, and the parsing of an inventory
//! `address` cell (IP literal, host name, `host:port`, or an `http(s)://` base URL).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::quoted;

/// Addresses longer than this are rejected: no real host name or URL comes close.
pub(crate) const MAX_ADDRESS_BYTES: usize = 2048;

/// RFC 1035 limits.
const MAX_NAME_BYTES: usize = 253;
const MAX_LABEL_BYTES: usize = 63;

/// The message for `user:pass@` in an address. It never echoes the cell: it holds a password.
const CREDENTIALS_IN_ADDRESS: &str =
    "address must not contain credentials (user@ or user:password@); use the username and password_env columns";

/// How to talk to a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

    pub fn default_port(self) -> u16 {
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

/// Parses a trimmed address cell. The error is a reason fit for `line N: <reason>`.
pub(crate) fn parse_address(cell: &str) -> Result<Address, String> {
    check_shape(cell)?;
    // Checked before anything echoes a part of the cell: the part may be a password.
    if cell.contains('@') {
        return Err(CREDENTIALS_IN_ADDRESS.to_owned());
    }
    if let Some((scheme, rest)) = cell.split_once("://") {
        // `=HYPERLINK("http://…` is no URL with an odd scheme; it gets the generic message.
        if scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
            return parse_url(scheme, rest);
        }
    }
    if cell.contains(['/', '?', '#']) {
        return Err(format!(
            "address {} is not a host, host:port or http(s):// URL",
            quoted(cell)
        ));
    }
    let (host, port) = parse_authority(cell)?;
    Ok(Address {
        scheme: None,
        host,
        port,
    })
}

fn check_shape(cell: &str) -> Result<(), String> {
    if cell.is_empty() {
        return Err("address is empty".to_owned());
    }
    if cell.len() > MAX_ADDRESS_BYTES {
        return Err(format!("address is longer than {MAX_ADDRESS_BYTES} bytes"));
    }
    if cell.contains(['\n', '\r']) {
        return Err("address spans several lines (a stray '\"' in the row?)".to_owned());
    }
    if cell.chars().any(char::is_control) {
        return Err("address contains a control character".to_owned());
    }
    if cell.chars().any(char::is_whitespace) {
        return Err("address contains whitespace".to_owned());
    }
    Ok(())
}

/// `http(s)://authority[/]`: a base URL. Paths, queries and fragments are refused because
/// the scanner adds its own paths; silently dropping one would hide a mistake.
fn parse_url(scheme: &str, rest: &str) -> Result<Address, String> {
    let scheme = Scheme::parse(scheme).ok_or_else(|| {
        format!(
            "unsupported URL scheme {} (expected http or https)",
            quoted(scheme)
        )
    })?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "URL path {} is not allowed; give the device's base URL",
            quoted(tail)
        ));
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
fn parse_authority(s: &str) -> Result<(Host, Option<u16>), String> {
    if s.is_empty() {
        return Err("address has no host".to_owned());
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
            Ok((parse_host(host)?, Some(parse_port(port)?)))
        }
        Some(_) => Err(invalid_ipv6(s)),
    }
}

fn parse_bracketed(inner: &str) -> Result<(Host, Option<u16>), String> {
    let (literal, after) = inner
        .split_once(']')
        .ok_or_else(|| "unclosed '[' in address".to_owned())?;
    let ip = literal
        .parse::<Ipv6Addr>()
        .map_err(|_| invalid_ipv6(literal))?;
    let port = match after {
        "" => None,
        _ => {
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("unexpected {} after ']'", quoted(after)))?;
            Some(parse_port(port)?)
        }
    };
    Ok((Host::Ip(IpAddr::V6(ip)), port))
}

fn invalid_ipv6(s: &str) -> String {
    if s.contains('%') {
        return format!(
            "invalid IPv6 address {}: zone identifiers (%) are not supported",
            quoted(s)
        );
    }
    format!(
        "invalid IPv6 address {} (a port goes after brackets: [v6]:port)",
        quoted(s)
    )
}

/// An IPv4 literal or a DNS name. A name whose last label is all digits is refused: it is a
/// mistyped IPv4 address (`10.0.0.256`, `010.0.0.1`), which resolvers read in surprising ways.
fn parse_host(s: &str) -> Result<Host, String> {
    if let Ok(ip) = s.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    // A trailing dot marks a fully qualified name; it is kept, but not a label of its own.
    let name = s.strip_suffix('.').unwrap_or(s);
    let last = name.rsplit('.').next().unwrap_or(name);
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid IPv4 address {}", quoted(s)));
    }
    check_host_name(name).map_err(|why| format!("invalid host name {}: {why}", quoted(s)))?;
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
pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
    let invalid = || format!("invalid port {}", quoted(s));
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match s.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(invalid()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cell: &str) -> Address {
        match parse_address(cell) {
            Ok(address) => address,
            Err(why) => panic!("{cell:?} was refused: {why}"),
        }
    }

    fn err(cell: &str) -> String {
        match parse_address(cell) {
            Ok(address) => panic!("{cell:?} was accepted as {address:?}"),
            Err(why) => why,
        }
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
        assert!(err("10.0.0.256").contains("invalid IPv4"));
        assert!(err("010.0.0.1").contains("invalid IPv4"));
        assert!(err("999").contains("invalid IPv4"));
        assert!(err("cam_01.example").contains("invalid host name"));
        assert!(err("-cam.example").contains("starts or ends"));
        assert!(err("cam..example").contains("empty label"));
        assert!(err(&format!("{}.example", "a".repeat(64))).contains("63"));
        assert!(err(&"a.".repeat(130)).contains("253"));
        assert!(err("kamera.bücher.example").contains("ASCII"));
        assert!(err("fe80::1::2").contains("IPv6"));
        assert!(err("fe80::1%eth0").contains("zone"));
        assert!(err("[fe80::1%25eth0]:80").contains("zone"));
        assert!(err("[10.0.0.1]").contains("IPv6"));
        assert!(err("[::1").contains("unclosed"));
        assert!(err("[::1]8443").contains("after ']'"));
        assert!(err("10.0.0.0/24").contains("not a host"));
        assert_eq!(err(""), "address is empty");
        assert!(err("10.0.0.1 cam").contains("whitespace"));
        assert!(err("10.0.0.1\0").contains("control"));
    }

    #[test]
    fn refuses_bad_ports() {
        assert_eq!(err("10.0.0.1:99999"), "invalid port \"99999\"");
        assert_eq!(err("10.0.0.1:0"), "invalid port \"0\"");
        assert_eq!(err("10.0.0.1:"), "invalid port \"\"");
        assert_eq!(err("10.0.0.1:+80"), "invalid port \"+80\"");
        assert_eq!(err("[::1]:65536"), "invalid port \"65536\"");
        assert_eq!(parse_port("65535"), Ok(65535));
        assert_eq!(parse_port("00080"), Ok(80));
    }

    #[test]
    fn refuses_url_extras() {
        assert!(err("ftp://10.0.0.1").contains("unsupported URL scheme"));
        assert!(err("=HYPERLINK(\"http://x\")").contains("not a host"));
        assert!(err("http://10.0.0.1/axis-cgi/ssh.cgi").contains("URL path"));
        assert!(err("http://10.0.0.1?x=1").contains("URL path"));
        assert!(err("http://").contains("no host"));
    }

    #[test]
    fn credentials_are_refused_without_echo() {
        for cell in [
            "http://root:hunter2@10.0.0.1",
            "root:hunter2@10.0.0.1",
            "hunter2@cam",
        ] {
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
