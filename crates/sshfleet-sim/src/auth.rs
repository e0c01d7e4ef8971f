//! Device-side HTTP authentication like AXIS OS (Apache httpd): Basic or Digest per device,
//! expiring nonces answered with `stale=true`, `nc` replay checks, and the brute-force guard
//! (more than 20 failed logins in a second block the device for 10 s).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use tokio::time::Instant;

pub(crate) use super::digest::DigestKind;
use super::digest::{expected_response, make_nonce, nonce_time, parse_params, DigestInput};

/// Failed logins tolerated per one-second window before the device blocks.
const MAX_FAILURES_PER_SECOND: u32 = 20;
const BLOCK_FOR: Duration = Duration::from_secs(10);
/// Nonces whose `nc` the guard remembers, per device.
const TRACKED_NONCES: usize = 16;

/// What a device asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    None,
    Basic,
    Digest(DigestKind),
}

/// The outcome of checking a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// 401 with a fresh challenge; not a failed login (no or foreign credentials, stale nonce).
    Challenge(Nonce),
    /// 401: wrong user or password. Counts towards the brute-force block.
    Failed,
    /// 400: a malformed Authorization header or a `uri` that is not the request-target.
    BadRequest,
}

/// One device's view of authentication for one request, judged at `now_us`.
pub(crate) struct Authority<'a> {
    pub scheme: Scheme,
    pub realm: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub secret: &'a [u8],
    pub nonce_lifetime: Duration,
    pub now_us: u64,
}

/// Why a challenge is sent: a first one, or a new nonce for one that went stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nonce {
    Fresh,
    Stale,
}

impl Authority<'_> {
    /// The WWW-Authenticate value for a 401, `None` when the device does not authenticate.
    /// A Digest nonce is stamped `now_us`, when the answer is made.
    pub(crate) fn challenge(&self, why: Nonce, now_us: u64, guard: &Guard) -> Option<String> {
        let kind = match self.scheme {
            Scheme::None => return None,
            Scheme::Basic => return Some(format!("Basic realm=\"{}\"", self.realm)),
            Scheme::Digest(kind) => kind,
        };
        let nonce = make_nonce(self.secret, self.realm, guard.fresh_nonce_time(now_us));
        let mut value = format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}",
            self.realm,
            kind.algorithm()
        );
        if kind.offers_qop() {
            value.push_str(", qop=\"auth\"");
        }
        if why == Nonce::Stale {
            value.push_str(", stale=true");
        }
        Some(value)
    }

    pub(crate) fn verify(
        &self,
        method: &str,
        target: &str,
        header: Option<&str>,
        guard: &Guard,
    ) -> Verdict {
        let (kind, header) = match (self.scheme, header) {
            (Scheme::None, _) => return Verdict::Pass,
            (_, None) => return Verdict::Challenge(Nonce::Fresh),
            (scheme, Some(header)) => (scheme, header.trim()),
        };
        let (name, rest) = header.split_once(' ').unwrap_or((header, ""));
        match kind {
            Scheme::Basic if name.eq_ignore_ascii_case("basic") => self.verify_basic(rest),
            Scheme::Digest(kind) if name.eq_ignore_ascii_case("digest") => {
                let Some(params) = parse_params(rest) else {
                    return Verdict::BadRequest;
                };
                self.verify_digest(kind, method, target, &params, guard)
            }
            _ => Verdict::Challenge(Nonce::Fresh),
        }
    }

    fn verify_basic(&self, encoded: &str) -> Verdict {
        let decoded = BASE64
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((user, pass)) if user == self.username && pass == self.password => Verdict::Pass,
            _ => Verdict::Failed,
        }
    }

    fn verify_digest(
        &self,
        kind: DigestKind,
        method: &str,
        target: &str,
        params: &[(String, String)],
        guard: &Guard,
    ) -> Verdict {
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return Verdict::BadRequest;
        };
        if uri != target {
            return Verdict::BadRequest;
        }
        if !get("algorithm")
            .unwrap_or("MD5")
            .eq_ignore_ascii_case(kind.algorithm())
        {
            return Verdict::Challenge(Nonce::Fresh);
        }
        let qop = match qop_fields(kind, get("qop"), get("nc"), get("cnonce")) {
            Ok(qop) => qop,
            Err(verdict) => return verdict,
        };
        if username != self.username || realm != self.realm {
            return Verdict::Failed;
        }
        let input = DigestInput {
            username,
            realm,
            password: self.password,
            method,
            uri,
            nonce,
            qop,
        };
        if !expected_response(kind, &input).eq_ignore_ascii_case(response) {
            return Verdict::Failed;
        }
        self.check_nonce(nonce, qop.map(|(nc, _, _)| nc), guard)
    }

    /// Checked last, as Apache does, so that an otherwise valid old nonce gets `stale=true`.
    fn check_nonce(&self, nonce: &str, nc: Option<&str>, guard: &Guard) -> Verdict {
        let Some(issued) = nonce_time(self.secret, self.realm, nonce) else {
            return Verdict::Challenge(Nonce::Fresh);
        };
        let nc = nc.and_then(|nc| u32::from_str_radix(nc, 16).ok());
        if nc.is_some_and(|nc| !guard.accept_nc(issued, nc)) {
            return Verdict::Challenge(Nonce::Fresh);
        }
        let age = Duration::from_micros(self.now_us.saturating_sub(issued));
        if age > self.nonce_lifetime {
            return Verdict::Challenge(Nonce::Stale);
        }
        Verdict::Pass
    }
}

/// `(nc, cnonce, qop)` if the answer used qop, or the verdict for an inconsistent answer.
fn qop_fields<'a>(
    kind: DigestKind,
    qop: Option<&'a str>,
    nc: Option<&'a str>,
    cnonce: Option<&'a str>,
) -> Result<Option<(&'a str, &'a str, &'a str)>, Verdict> {
    match (qop, nc, cnonce) {
        (None, _, _) if kind.requires_qop() => Err(Verdict::BadRequest),
        (None, _, _) => Ok(None),
        (Some(_), _, _) if !kind.offers_qop() => Err(Verdict::BadRequest),
        (Some(q), Some(nc), Some(cnonce)) if q == "auth" && is_nc(nc) => Ok(Some((nc, cnonce, q))),
        (Some(_), _, _) => Err(Verdict::BadRequest),
    }
}

fn is_nc(nc: &str) -> bool {
    nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Per-device authentication state: nonce issue times, `nc` per nonce, failed-login window.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    state: Mutex<GuardState>,
}

#[derive(Debug, Default)]
struct GuardState {
    last_nonce_us: u64,
    /// (nonce issue time, highest nc seen), most recent last.
    ncs: VecDeque<(u64, u32)>,
    window_start: Option<Instant>,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A nonce time no earlier than now and unique on this device, so every challenge differs.
    pub(crate) fn fresh_nonce_time(&self, now_us: u64) -> u64 {
        let mut s = self.lock();
        s.last_nonce_us = now_us.max(s.last_nonce_us + 1);
        s.last_nonce_us
    }

    /// Accepts `nc` if it is above every nc seen with this nonce.
    fn accept_nc(&self, nonce_us: u64, nc: u32) -> bool {
        let mut s = self.lock();
        if let Some(entry) = s.ncs.iter_mut().find(|(t, _)| *t == nonce_us) {
            let fresh = nc > entry.1;
            entry.1 = entry.1.max(nc);
            return fresh;
        }
        if s.ncs.len() == TRACKED_NONCES {
            s.ncs.pop_front();
        }
        s.ncs.push_back((nonce_us, nc));
        true
    }

    pub(crate) fn is_blocked(&self, now: Instant) -> bool {
        self.lock().blocked_until.is_some_and(|until| now < until)
    }

    pub(crate) fn record_failure(&self, now: Instant) {
        let mut s = self.lock();
        let window_open = s
            .window_start
            .is_some_and(|start| now.saturating_duration_since(start) < Duration::from_secs(1));
        if !window_open {
            s.window_start = Some(now);
            s.failures = 0;
        }
        s.failures += 1;
        if s.failures > MAX_FAILURES_PER_SECOND {
            s.blocked_until = Some(now + BLOCK_FOR);
            s.window_start = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::md5_hex;

    const SECRET: &[u8] = b"0123456789abcdef";

    fn authority(scheme: Scheme, now_us: u64) -> Authority<'static> {
        Authority {
            scheme,
            realm: "AXIS_ACCC8E012345",
            username: "root",
            password: "pass",
            secret: SECRET,
            nonce_lifetime: Duration::from_secs(300),
            now_us,
        }
    }

    /// A client answer computed from the test's own MD5 helper.
    fn answer(nonce: &str, nc: &str, password: &str, uri: &str) -> String {
        let ha1 = md5_hex(&format!("root:AXIS_ACCC8E012345:{password}"));
        let ha2 = md5_hex("POST:/axis-cgi/ssh.cgi");
        let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:cn:auth:{ha2}"));
        format!(
            r#"Digest username="root", realm="AXIS_ACCC8E012345", nonce="{nonce}", uri="{uri}", algorithm=MD5, response="{response}", qop=auth, nc={nc}, cnonce="cn""#
        )
    }

    fn nonce_of(challenge: &str) -> String {
        let params = parse_params(challenge.trim_start_matches("Digest ")).unwrap_or_default();
        params
            .into_iter()
            .find(|(k, _)| k == "nonce")
            .map(|(_, v)| v)
            .unwrap_or_default()
    }

    #[test]
    fn digest_challenge_then_pass_then_replay() {
        let guard = Guard::default();
        let t0 = 1_700_000_000_000_000;
        let auth = authority(Scheme::Digest(DigestKind::Md5), t0);
        let target = "/axis-cgi/ssh.cgi";
        assert_eq!(
            auth.verify("POST", target, None, &guard),
            Verdict::Challenge(Nonce::Fresh)
        );
        let challenge = auth
            .challenge(Nonce::Fresh, auth.now_us, &guard)
            .unwrap_or_default();
        assert!(
            challenge.ends_with(r#"algorithm=MD5, qop="auth""#),
            "{challenge}"
        );
        let nonce = nonce_of(&challenge);
        let ok = answer(&nonce, "00000001", "pass", target);
        assert_eq!(
            auth.verify("POST", target, Some(&ok), &guard),
            Verdict::Pass
        );
        assert_eq!(
            auth.verify("POST", target, Some(&ok), &guard),
            Verdict::Challenge(Nonce::Fresh)
        );
        let next = answer(&nonce, "00000002", "pass", target);
        assert_eq!(
            auth.verify("POST", target, Some(&next), &guard),
            Verdict::Pass
        );
        let wrong = answer(&nonce, "00000003", "guess", target);
        assert_eq!(
            auth.verify("POST", target, Some(&wrong), &guard),
            Verdict::Failed
        );
        let moved = answer(&nonce, "00000004", "pass", "/other");
        assert_eq!(
            auth.verify("POST", target, Some(&moved), &guard),
            Verdict::BadRequest
        );
        let later = authority(Scheme::Digest(DigestKind::Md5), t0 + 301_000_000);
        let old = answer(&nonce, "00000005", "pass", target);
        assert_eq!(
            later.verify("POST", target, Some(&old), &guard),
            Verdict::Challenge(Nonce::Stale)
        );
    }

    #[test]
    fn no_qop_devices_refuse_qop_answers() {
        let guard = Guard::default();
        let auth = authority(Scheme::Digest(DigestKind::NoQop), 1);
        let challenge = auth
            .challenge(Nonce::Fresh, auth.now_us, &guard)
            .unwrap_or_default();
        assert!(!challenge.contains("qop"), "{challenge}");
        let with_qop = answer(
            &nonce_of(&challenge),
            "00000001",
            "pass",
            "/axis-cgi/ssh.cgi",
        );
        let verdict = auth.verify("POST", "/axis-cgi/ssh.cgi", Some(&with_qop), &guard);
        assert_eq!(verdict, Verdict::BadRequest);
    }

    #[test]
    fn basic_checks_user_and_password() {
        let guard = Guard::default();
        let auth = authority(Scheme::Basic, 1);
        let good = format!("Basic {}", BASE64.encode("root:pass"));
        let bad = format!("Basic {}", BASE64.encode("root:nope"));
        assert_eq!(auth.verify("GET", "/", Some(&good), &guard), Verdict::Pass);
        assert_eq!(auth.verify("GET", "/", Some(&bad), &guard), Verdict::Failed);
        assert_eq!(
            auth.verify("GET", "/", Some("Digest x=1"), &guard),
            Verdict::Challenge(Nonce::Fresh)
        );
        assert_eq!(
            auth.challenge(Nonce::Fresh, auth.now_us, &guard).as_deref(),
            Some(r#"Basic realm="AXIS_ACCC8E012345""#)
        );
    }

    #[test]
    fn more_than_twenty_failures_in_a_second_block_for_ten_seconds() {
        let guard = Guard::default();
        let t0 = Instant::now();
        for i in 0..20 {
            guard.record_failure(t0 + Duration::from_millis(i * 10));
        }
        assert!(!guard.is_blocked(t0 + Duration::from_millis(500)));
        guard.record_failure(t0 + Duration::from_millis(900));
        assert!(guard.is_blocked(t0 + Duration::from_millis(901)));
        assert!(guard.is_blocked(t0 + Duration::from_millis(10_899)));
        assert!(!guard.is_blocked(t0 + Duration::from_millis(10_901)));
    }

    #[test]
    fn failures_spread_over_seconds_do_not_block() {
        let guard = Guard::default();
        let t0 = Instant::now();
        for i in 0..100 {
            guard.record_failure(t0 + Duration::from_millis(i * 100));
        }
        assert!(!guard.is_blocked(t0 + Duration::from_secs(10)));
    }
}
