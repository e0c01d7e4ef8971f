//! Digest arithmetic and nonces as Apache's mod_auth_digest does them: MD5, MD5-sess,
//! RFC 2069 (no qop) and SHA-256 responses, timestamped keyed nonces, and the parameter list.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use md5::Md5;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

/// Length of the base64 timestamp at the start of a nonce (8 bytes → 12 characters).
const NONCE_TIME_LEN: usize = 12;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigestKind {
    Md5,
    Md5Sess,
    /// RFC 2069: no qop, nc or cnonce.
    NoQop,
    Sha256,
}

impl DigestKind {
    pub(crate) fn algorithm(self) -> &'static str {
        match self {
            DigestKind::Md5 | DigestKind::NoQop => "MD5",
            DigestKind::Md5Sess => "MD5-sess",
            DigestKind::Sha256 => "SHA-256",
        }
    }

    pub(crate) fn offers_qop(self) -> bool {
        self != DigestKind::NoQop
    }

    /// Apache accepts an RFC 2069 answer to a plain MD5 challenge; the others need qop.
    pub(crate) fn requires_qop(self) -> bool {
        matches!(self, DigestKind::Md5Sess | DigestKind::Sha256)
    }

    fn hex(self, data: &str) -> String {
        match self {
            DigestKind::Sha256 => hex(&Sha256::digest(data.as_bytes())),
            _ => hex(&Md5::digest(data.as_bytes())),
        }
    }
}

/// The fields of a Digest answer that enter the response hash.
pub(crate) struct DigestInput<'a> {
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `(nc, cnonce, qop)` when the client used qop.
    pub qop: Option<(&'a str, &'a str, &'a str)>,
}

/// The response value a client with the right password sends (RFC 2617 / RFC 7616).
pub(crate) fn expected_response(kind: DigestKind, d: &DigestInput<'_>) -> String {
    let mut ha1 = kind.hex(&format!("{}:{}:{}", d.username, d.realm, d.password));
    if kind == DigestKind::Md5Sess {
        let cnonce = d.qop.map_or("", |(_, c, _)| c);
        ha1 = kind.hex(&format!("{ha1}:{}:{cnonce}", d.nonce));
    }
    let ha2 = kind.hex(&format!("{}:{}", d.method, d.uri));
    match d.qop {
        Some((nc, cnonce, qop)) => {
            kind.hex(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", d.nonce))
        }
        None => kind.hex(&format!("{ha1}:{}:{ha2}", d.nonce)),
    }
}

/// Lower-case hex, two digits a byte.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unix microseconds that follow tokio's clock, so paused-time tests can age nonces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base_unix_us: u64,
    base: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            base_unix_us: since.as_micros() as u64,
            base: Instant::now(),
        }
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.base_unix_us + self.base.elapsed().as_micros() as u64
    }
}

/// A nonce in Apache's shape: base64 of the time in µs, then 40 hex digits of a keyed hash.
pub(crate) fn make_nonce(secret: &[u8], realm: &str, time_us: u64) -> String {
    let stamp = BASE64.encode(time_us.to_le_bytes());
    let tag = nonce_tag(secret, realm, &stamp);
    format!("{stamp}{tag}")
}

/// The time a nonce was issued at, if this device issued it.
pub(crate) fn nonce_time(secret: &[u8], realm: &str, nonce: &str) -> Option<u64> {
    let (stamp, tag) = (nonce.get(..NONCE_TIME_LEN)?, nonce.get(NONCE_TIME_LEN..)?);
    if nonce_tag(secret, realm, stamp) != tag {
        return None;
    }
    let bytes: [u8; 8] = BASE64.decode(stamp).ok()?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn nonce_tag(secret: &[u8], realm: &str, stamp: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(realm.as_bytes());
    h.update(stamp.as_bytes());
    let mut tag = hex(&h.finalize());
    tag.truncate(40);
    tag
}

/// Splits `k=v, k="quoted, \"v\""` auth parameters; keys lowercase. `None` if malformed.
pub(crate) fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains([',', ' ', '"']) {
            return None;
        }
        let (value, after) = parse_value(after.trim_start())?;
        out.push((key, value));
        rest = after
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(after)
            .trim_start();
    }
    Some(out)
}

fn parse_value(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find(',').unwrap_or(s.len());
        return Some((s[..end].trim().to_owned(), &s[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &quoted[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef";

    fn md5_hex(s: &str) -> String {
        hex(&Md5::digest(s.as_bytes()))
    }

    #[test]
    fn rfc2617_md5_example() {
        let d = DigestInput {
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some(("00000001", "0a4f113b", "auth")),
        };
        assert_eq!(
            expected_response(DigestKind::Md5, &d),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc7616_sha256_and_md5_examples() {
        let d = DigestInput {
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some((
                "00000001",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                "auth",
            )),
        };
        assert_eq!(
            expected_response(DigestKind::Sha256, &d),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(
            expected_response(DigestKind::Md5, &d),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn md5_sess_and_rfc2069_forms() {
        let mut d = DigestInput {
            username: "u",
            realm: "r",
            password: "p",
            method: "POST",
            uri: "/x",
            nonce: "n",
            qop: Some(("00000002", "c", "auth")),
        };
        let ha1 = md5_hex(&format!("{}:n:c", md5_hex("u:r:p")));
        let ha2 = md5_hex("POST:/x");
        assert_eq!(
            expected_response(DigestKind::Md5Sess, &d),
            md5_hex(&format!("{ha1}:n:00000002:c:auth:{ha2}"))
        );
        d.qop = None;
        assert_eq!(
            expected_response(DigestKind::NoQop, &d),
            md5_hex(&format!("{}:n:{ha2}", md5_hex("u:r:p")))
        );
    }

    #[test]
    fn parses_quoted_and_bare_parameters() {
        let p = parse_params(r#"username="a\"b", uri="/x?y=1,2", nc=00000001 , qop=auth"#);
        let p = p.unwrap_or_default();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], ("username".to_owned(), "a\"b".to_owned()));
        assert_eq!(p[1].1, "/x?y=1,2");
        assert_eq!(p[2].1, "00000001");
        assert!(parse_params(r#"username="unterminated"#).is_none());
    }

    #[test]
    fn nonces_look_like_apache_and_carry_their_time() {
        let nonce = make_nonce(SECRET, "AXIS_X", 1_700_000_000_123_456);
        assert_eq!(nonce.len(), 52);
        assert_eq!(nonce.as_bytes()[11], b'=');
        assert_eq!(
            nonce_time(SECRET, "AXIS_X", &nonce),
            Some(1_700_000_000_123_456)
        );
        assert_eq!(nonce_time(SECRET, "AXIS_Y", &nonce), None);
        assert_eq!(nonce_time(SECRET, "AXIS_X", "short"), None);
        assert_eq!(nonce_time(SECRET, "AXIS_X", &"é".repeat(30)), None);
    }
}
