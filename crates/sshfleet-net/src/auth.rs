//! HTTP authentication as cameras do it: Digest (MD5, MD5-sess, SHA-256, with or without
//! qop) and Basic, with a per-device cached challenge so later requests skip the 401.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use md5::Md5;
use sha2::Sha256;

use sshfleet_core::hash::push_hex;
use sshfleet_core::secret::Secret;

/// The account a device is read with.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// Hex digest of the parts joined by `:`.
    fn hash(self, parts: &[&str]) -> String {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => hex_digest::<Md5>(parts),
            Algorithm::Sha256 | Algorithm::Sha256Sess => hex_digest::<Sha256>(parts),
        }
    }

    fn strength(self) -> u8 {
        match self {
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
        }
    }
}

fn hex_digest<D: md5::Digest>(parts: &[&str]) -> String {
    let mut hasher = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    let mut out = String::with_capacity(2 * <D as md5::Digest>::output_size());
    push_hex(&mut out, &hasher.finalize());
    out
}

/// A parsed `WWW-Authenticate: Digest …` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `true` when the server offers `qop=auth`; `false` is RFC 2069 style.
    pub qop_auth: bool,
    pub stale: bool,
}

/// What a device asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Digest(DigestChallenge),
    Basic { realm: String },
}

impl Challenge {
    pub fn realm(&self) -> &str {
        match self {
            Challenge::Digest(c) => &c.realm,
            Challenge::Basic { realm } => realm,
        }
    }
}

/// Picks the strongest usable challenge among all `WWW-Authenticate` headers.
pub fn parse_challenges(headers: &HeaderMap) -> Option<Challenge> {
    let mut best: Option<Challenge> = None;
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        for challenge in split_challenges(text) {
            best = match (best, challenge) {
                (None, c) => Some(c),
                (Some(Challenge::Basic { .. }), c) => Some(c),
                (Some(Challenge::Digest(a)), Challenge::Digest(b))
                    if b.algorithm.strength() > a.algorithm.strength() =>
                {
                    Some(Challenge::Digest(b))
                }
                (Some(old), _) => Some(old),
            };
        }
    }
    best
}

/// One header may carry several challenges (`Digest …, Basic realm="x"`).
fn split_challenges(text: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut scheme: Option<&str> = None;
    let mut params: Vec<(String, String)> = Vec::new();
    for token in AuthParams::new(text) {
        match token {
            Token::Scheme(s) => {
                if let Some(prev) = scheme.replace(s) {
                    out.extend(build_challenge(prev, std::mem::take(&mut params)));
                }
            }
            Token::Param(k, v) => params.push((k, v)),
        }
    }
    if let Some(prev) = scheme {
        out.extend(build_challenge(prev, params));
    }
    out
}

fn build_challenge(scheme: &str, params: Vec<(String, String)>) -> Option<Challenge> {
    if scheme.eq_ignore_ascii_case("basic") {
        let realm = params
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("realm"))
            .map(|(_, v)| v)
            .unwrap_or_default();
        return Some(Challenge::Basic { realm });
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut c = DigestChallenge {
        realm: String::new(),
        nonce: String::new(),
        opaque: None,
        algorithm: Algorithm::Md5,
        qop_auth: false,
        stale: false,
    };
    for (key, value) in params {
        let is = |name: &str| key.eq_ignore_ascii_case(name);
        if is("realm") {
            c.realm = value;
        } else if is("nonce") {
            c.nonce = value;
        } else if is("opaque") {
            c.opaque = Some(value);
        } else if is("algorithm") {
            c.algorithm = Algorithm::parse(&value)?;
        } else if is("qop") {
            c.qop_auth = value
                .split(',')
                .any(|q| q.trim().eq_ignore_ascii_case("auth"));
        } else if is("stale") {
            c.stale = value.eq_ignore_ascii_case("true");
        }
    }
    (!c.nonce.is_empty()).then_some(Challenge::Digest(c))
}

enum Token<'a> {
    Scheme(&'a str),
    Param(String, String),
}

/// Tokenises `Scheme k=v, k="quoted \" v", Scheme2 …` per RFC 7235.
struct AuthParams<'a> {
    rest: &'a str,
}

impl<'a> AuthParams<'a> {
    fn new(text: &'a str) -> Self {
        AuthParams { rest: text }
    }
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let s = self.rest.trim_start_matches([' ', '\t', ',']);
            if s.is_empty() {
                return None;
            }
            let end = find_any(s, b" \t,=").unwrap_or(s.len());
            if end == 0 {
                // A stray '=' (token68 padding such as `abc==`): skip it.
                self.rest = &s[1..];
                continue;
            }
            let word = &s[..end];
            let after = s[end..].trim_start_matches([' ', '\t']);
            // `k=v` is a parameter; `word==` is token68 padding, not a parameter.
            if let Some(value) = after.strip_prefix('=').filter(|v| !v.starts_with('=')) {
                let (value, rest) = read_value(value.trim_start_matches([' ', '\t']));
                self.rest = rest;
                return Some(Token::Param(word.to_owned(), value));
            }
            self.rest = &s[end..];
            return Some(Token::Scheme(word));
        }
    }
}

/// A quoted string (with `\` escapes) or a token, and what follows it.
fn read_value(s: &str) -> (String, &str) {
    if let Some(body) = s.strip_prefix('"') {
        // Nonces and realms rarely hold escapes: copy them whole rather than char by char.
        if let Some(end) = find_any(body, b"\"\\").filter(|&i| body.as_bytes()[i] == b'"') {
            return (body[..end].to_owned(), &body[end + 1..]);
        }
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, esc)) = chars.next() {
                        out.push(esc);
                    }
                }
                '"' => return (out, &body[i + 1..]),
                _ => out.push(c),
            }
        }
        return (out, "");
    }
    let end = find_any(s, b", \t").unwrap_or(s.len());
    (s[..end].to_owned(), &s[end..])
}

/// The first position of any of the ASCII bytes `set`: a byte scan, several times cheaper
/// than a `[char]` pattern on header-sized text, and always a char boundary.
fn find_any(s: &str, set: &[u8]) -> Option<usize> {
    s.bytes().position(|b| set.contains(&b))
}

/// Per-device authentication state: the cached challenge and the nonce count.
#[derive(Debug, Default)]
pub struct AuthSession {
    challenge: Option<DigestChallenge>,
    /// `H(A1)` for the cached challenge (session key for `-sess`).
    ha1: String,
    cnonce: String,
    nc: u32,
    basic: bool,
    /// The realm of the last challenge seen, whether or not it could be answered.
    realm: Option<String>,
}

/// Whether the connection to the device is encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls,
}

/// Whether a Basic challenge may be answered over plain HTTP (`--allow-basic-http`), where
/// the password travels in clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BasicOverHttp {
    #[default]
    Refuse,
    Allow,
}

impl BasicOverHttp {
    /// From the command line's `--allow-basic-http` switch.
    pub fn from_flag(allowed: bool) -> BasicOverHttp {
        if allowed {
            BasicOverHttp::Allow
        } else {
            BasicOverHttp::Refuse
        }
    }
}

/// Why no credentials can be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the device asks for Basic authentication over plain HTTP; refusing to send the password in clear (allow it with --allow-basic-http)")]
    BasicOverHttp,
    #[error("the device sent no usable authentication challenge")]
    NoChallenge,
}

impl AuthSession {
    /// Adopts the challenge of a 401 received over `transport`.
    pub fn adopt(
        &mut self,
        headers: &HeaderMap,
        creds: &Credentials,
        transport: Transport,
        basic: BasicOverHttp,
    ) -> Result<(), AuthError> {
        let challenge = parse_challenges(headers);
        if let Some(c) = &challenge {
            self.realm = Some(c.realm().to_owned());
        }
        match challenge {
            Some(Challenge::Digest(c)) => {
                self.cnonce.clear();
                push_hex(&mut self.cnonce, &fastrand::u64(..).to_be_bytes());
                self.nc = 0;
                let base = c
                    .algorithm
                    .hash(&[&creds.username, &c.realm, creds.password.expose()]);
                self.ha1 = if c.algorithm.is_sess() {
                    c.algorithm.hash(&[&base, &c.nonce, &self.cnonce])
                } else {
                    base
                };
                self.challenge = Some(c);
                self.basic = false;
                Ok(())
            }
            Some(Challenge::Basic { .. })
                if transport == Transport::Tls || basic == BasicOverHttp::Allow =>
            {
                self.challenge = None;
                self.basic = true;
                Ok(())
            }
            Some(Challenge::Basic { .. }) => Err(AuthError::BasicOverHttp),
            None => Err(AuthError::NoChallenge),
        }
    }

    /// The realm of the last challenge the device sent (AXIS OS puts its serial there).
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// The adopted scheme, for logs: `Basic`, or `Digest` with its algorithm. Never the
    /// nonce, the cnonce or anything derived from the credentials.
    pub fn scheme(&self) -> Option<&'static str> {
        match &self.challenge {
            Some(c) => Some(match c.algorithm {
                Algorithm::Md5 => "Digest MD5",
                Algorithm::Md5Sess => "Digest MD5-sess",
                Algorithm::Sha256 => "Digest SHA-256",
                Algorithm::Sha256Sess => "Digest SHA-256-sess",
            }),
            None if self.basic => Some("Basic"),
            None => None,
        }
    }

    /// Whether the last adopted challenge said `stale=true`.
    pub fn is_stale(&self) -> bool {
        self.challenge.as_ref().is_some_and(|c| c.stale)
    }

    /// The `Authorization` header for the next request, if a challenge is cached.
    /// `uri` must be the exact request-target bytes sent (path and query).
    pub fn authorization(
        &mut self,
        method: &str,
        uri: &str,
        creds: &Credentials,
    ) -> Option<HeaderValue> {
        if self.basic {
            return Some(basic_header(creds));
        }
        let c = self.challenge.as_ref()?;
        self.nc = self.nc.wrapping_add(1);
        let ha2 = c.algorithm.hash(&[method, uri]);
        let mut header = String::with_capacity(
            200 + creds.username.len() + c.realm.len() + c.nonce.len() + uri.len(),
        );
        header.push_str("Digest username=\"");
        header.push_str(&quote(&creds.username));
        header.push('"');
        push_quoted(&mut header, "realm", &c.realm);
        push_quoted(&mut header, "nonce", &c.nonce);
        push_quoted(&mut header, "uri", uri);
        push_token(&mut header, "algorithm", c.algorithm.name());
        let response = if c.qop_auth {
            let mut nc = String::with_capacity(8);
            push_hex(&mut nc, &self.nc.to_be_bytes());
            let response =
                c.algorithm
                    .hash(&[&self.ha1, &c.nonce, &nc, &self.cnonce, "auth", &ha2]);
            push_token(&mut header, "qop", "auth");
            push_token(&mut header, "nc", &nc);
            push_quoted(&mut header, "cnonce", &self.cnonce);
            response
        } else {
            c.algorithm.hash(&[&self.ha1, &c.nonce, &ha2])
        };
        push_quoted(&mut header, "response", &response);
        if let Some(opaque) = &c.opaque {
            push_quoted(&mut header, "opaque", opaque);
        }
        HeaderValue::from_str(&header).ok().map(sensitive)
    }
}

fn basic_header(creds: &Credentials) -> HeaderValue {
    let raw = format!("{}:{}", creds.username, creds.password.expose());
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    HeaderValue::from_str(&format!("Basic {encoded}"))
        .map(sensitive)
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

/// Appends `, key="value"`, escaping the value as a quoted-string.
fn push_quoted(header: &mut String, key: &str, value: &str) {
    push_key(header, key);
    header.push('"');
    header.push_str(&quote(value));
    header.push('"');
}

/// Appends `, key=value` for a value that is a token (`algorithm`, `qop`, `nc`).
fn push_token(header: &mut String, key: &str, value: &str) {
    push_key(header, key);
    header.push_str(value);
}

fn push_key(header: &mut String, key: &str) {
    header.push_str(", ");
    header.push_str(key);
    header.push('=');
}

/// Escapes `"` and `\` inside a quoted-string.
fn quote(s: &str) -> std::borrow::Cow<'_, str> {
    if find_any(s, b"\"\\").is_some() {
        s.replace('\\', "\\\\").replace('"', "\\\"").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(http::header::WWW_AUTHENTICATE, v);
            }
        }
        h
    }

    fn creds(user: &str, pass: &str) -> Credentials {
        Credentials {
            username: user.into(),
            password: Secret::new(pass),
        }
    }

    /// Pulls `key="value"` or `key=value` out of an Authorization header.
    fn field(header: &HeaderValue, key: &str) -> String {
        let text = header.to_str().unwrap_or_default();
        AuthParams::new(text)
            .filter_map(|t| match t {
                Token::Param(k, v) if k == key => Some(v),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rfc2617_example_response() {
        let mut session = AuthSession::default();
        let h = headers(&[
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        ]);
        let c = creds("Mufasa", "Circle Of Life");
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Refuse),
            Ok(())
        );
        session.cnonce = "0a4f113b".into();
        let header = session.authorization("GET", "/dir/index.html", &c);
        let header = header.unwrap_or_else(|| HeaderValue::from_static(""));
        assert_eq!(
            field(&header, "response"),
            "6629fae49393a05397450978507c4ef1"
        );
        assert_eq!(field(&header, "nc"), "00000001");
        assert_eq!(field(&header, "opaque"), "5ccc069c403ebaf9f0171e9517f40e41");
        assert!(header.is_sensitive());
    }

    #[test]
    fn nonce_count_increases_on_cached_challenge() {
        let mut session = AuthSession::default();
        let h = headers(&[r#"Digest realm="r", nonce="n", qop="auth""#]);
        let c = creds("root", "pass");
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Refuse),
            Ok(())
        );
        let first = session.authorization("POST", "/axis-cgi/ssh.cgi", &c);
        let second = session.authorization("POST", "/axis-cgi/ssh.cgi", &c);
        assert_eq!(first.map(|h| field(&h, "nc")), Some("00000001".into()));
        assert_eq!(second.map(|h| field(&h, "nc")), Some("00000002".into()));
    }

    #[test]
    fn rfc2069_without_qop() {
        let mut session = AuthSession::default();
        let h = headers(&[
            r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#,
        ]);
        let c = creds("Mufasa", "Circle Of Life");
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Refuse),
            Ok(())
        );
        let header = session.authorization("GET", "/dir/index.html", &c);
        let header = header.unwrap_or_else(|| HeaderValue::from_static(""));
        // H(H(A1):nonce:H(A2)) computed independently.
        let ha1 = hex_digest::<Md5>(&["Mufasa", "testrealm@host.com", "Circle Of Life"]);
        let ha2 = hex_digest::<Md5>(&["GET", "/dir/index.html"]);
        let expect = hex_digest::<Md5>(&[&ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", &ha2]);
        assert_eq!(field(&header, "response"), expect);
        assert_eq!(field(&header, "nc"), "");
    }

    #[test]
    fn rfc7616_sha256_example() {
        let mut session = AuthSession::default();
        let h = headers(&[
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v""#,
        ]);
        let c = creds("Mufasa", "Circle of Life");
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Refuse),
            Ok(())
        );
        session.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into();
        let header = session.authorization("GET", "/dir/index.html", &c);
        let header = header.unwrap_or_else(|| HeaderValue::from_static(""));
        assert_eq!(
            field(&header, "response"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn basic_only_over_tls_unless_allowed() {
        let h = headers(&[r#"Basic realm="AXIS""#]);
        let c = creds("root", "pass");
        let mut session = AuthSession::default();
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Refuse),
            Err(AuthError::BasicOverHttp)
        );
        assert_eq!(session.realm(), Some("AXIS"), "known even when refused");
        assert_eq!(
            session.authorization("GET", "/", &c),
            None,
            "nothing adopted"
        );
        assert_eq!(
            session.adopt(&h, &c, Transport::Plain, BasicOverHttp::Allow),
            Ok(()),
            "--allow-basic-http"
        );
        let header = session.authorization("GET", "/", &c);
        assert_eq!(
            header.as_ref().and_then(|h| h.to_str().ok()),
            Some("Basic cm9vdDpwYXNz")
        );
        let mut session = AuthSession::default();
        assert_eq!(
            session.adopt(&h, &c, Transport::Tls, BasicOverHttp::Refuse),
            Ok(())
        );
        let header = session.authorization("GET", "/", &c);
        assert_eq!(
            header.as_ref().and_then(|h| h.to_str().ok()),
            Some("Basic cm9vdDpwYXNz")
        );
    }

    #[test]
    fn prefers_digest_over_basic_in_one_header() {
        let h = headers(&[r#"Basic realm="x", Digest realm="y", nonce="abc", qop=auth"#]);
        assert!(matches!(parse_challenges(&h), Some(Challenge::Digest(_))));
    }

    #[test]
    fn escapes_in_quoted_values_round_trip() {
        let h = headers(&[r#"Digest realm="a\"b\\c", nonce="n", qop="auth", ALGORITHM=md5-SESS"#]);
        let Some(Challenge::Digest(c)) = parse_challenges(&h) else {
            panic!("digest challenge expected");
        };
        assert_eq!(c.realm, r#"a"b\c"#);
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        let mut session = AuthSession::default();
        assert_eq!(
            session.adopt(
                &h,
                &creds("ro\"ot", "p"),
                Transport::Plain,
                BasicOverHttp::Refuse
            ),
            Ok(())
        );
        let header = session.authorization("GET", "/", &creds("ro\"ot", "p"));
        let text = header.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
        assert!(
            text.starts_with(r#"Digest username="ro\"ot", realm="a\"b\\c", "#),
            "{text}"
        );
        assert_eq!(header.map(|h| field(&h, "realm")), Some(r#"a"b\c"#.into()));
    }

    #[test]
    fn stale_flag_is_read() {
        let h = headers(&[r#"Digest realm="y", nonce="abc", stale=TRUE, qop="auth""#]);
        let mut session = AuthSession::default();
        assert_eq!(
            session.adopt(
                &h,
                &creds("a", "b"),
                Transport::Plain,
                BasicOverHttp::Refuse
            ),
            Ok(())
        );
        assert!(session.is_stale());
    }

    #[test]
    fn garbage_challenges_are_not_usable() {
        for text in [
            "",
            "Digest",
            "Negotiate abc==",
            "Digest realm=\"unterminated",
            "Digest algorithm=ROT13, nonce=\"x\"",
        ] {
            assert_eq!(parse_challenges(&headers(&[text])), None, "{text}");
        }
    }

    /// Random header text made of the grammar's pieces: parsing always ends, and whatever
    /// challenge comes back is one the text asked for (its scheme, a nonce for Digest, every
    /// realm character from the text).
    #[test]
    fn random_header_text_parses_only_to_challenges_it_holds() {
        let pieces = [
            "Digest",
            "Basic",
            "realm=",
            "nonce=",
            "\"",
            "\\",
            ",",
            " ",
            "\t",
            "qop=auth",
            "stale=true",
            "=",
            "x",
            "cam",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut digests, mut basics) = (0, 0);
        for _ in 0..5_000 {
            let len = rng.usize(0..24);
            let text: String = (0..len)
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let Some(challenge) = parse_challenges(&headers(&[&text])) else {
                continue;
            };
            assert!(
                challenge.realm().chars().all(|c| text.contains(c)),
                "{text}"
            );
            match challenge {
                Challenge::Digest(c) => {
                    digests += 1;
                    assert!(text.contains("Digest") && text.contains("nonce="), "{text}");
                    assert!(!c.nonce.is_empty(), "{text}");
                    assert!(!c.qop_auth || text.contains("qop=auth"), "{text}");
                    assert!(!c.stale || text.contains("stale=true"), "{text}");
                }
                Challenge::Basic { .. } => {
                    basics += 1;
                    assert!(text.contains("Basic"), "{text}");
                }
            }
        }
        assert!(
            digests > 0 && basics > 0,
            "{digests} digest, {basics} basic"
        );
    }
}
