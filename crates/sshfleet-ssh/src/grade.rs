//! Grading a server's algorithms: `ok`, `weak` or `fail` against a policy (a built-in
//! baseline or a user's), and whether it is open to Terrapin (CVE-2023-48795).

use serde::{Deserialize, Serialize};

use crate::{Algorithms, HostKey, STRICT_KEX_SERVER};

/// The crypto grade of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crypto {
    Ok,
    Weak,
    Fail,
}

impl Crypto {
    pub fn as_str(self) -> &'static str {
        match self {
            Crypto::Ok => "ok",
            Crypto::Weak => "weak",
            Crypto::Fail => "fail",
        }
    }
}

/// Terrapin: a prefix-truncation attack on the handshake that works when the server offers
/// ChaCha20-Poly1305, or a CBC cipher with an encrypt-then-MAC MAC, without strict key
/// exchange. `None` (no field) when the server offers neither mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Terrapin {
    /// A prone mode is offered and strict key exchange is not.
    Vulnerable,
    /// A prone mode is offered, but the server enforces strict key exchange.
    Mitigated,
}

impl Terrapin {
    pub fn as_str(self) -> &'static str {
        match self {
            Terrapin::Vulnerable => "vulnerable",
            Terrapin::Mitigated => "mitigated",
        }
    }
}

/// Whether `algorithms` leave the server open to Terrapin.
pub fn terrapin(algorithms: &Algorithms) -> Option<Terrapin> {
    let chacha = algorithms
        .ciphers
        .iter()
        .any(|c| c == "chacha20-poly1305@openssh.com");
    let cbc = algorithms.ciphers.iter().any(|c| c.contains("-cbc"));
    let etm = algorithms
        .macs
        .iter()
        .any(|m| m.ends_with("-etm@openssh.com"));
    if !(chacha || (cbc && etm)) {
        return None;
    }
    if algorithms.kex.iter().any(|k| k == STRICT_KEX_SERVER) {
        Some(Terrapin::Mitigated)
    } else {
        Some(Terrapin::Vulnerable)
    }
}

/// Algorithm names, per kind; a name ending in `*` matches every name that starts with the
/// rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Names {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
}

/// How a policy treats algorithms it does not name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matching {
    /// Only the algorithms the policy names as `fail` or `weak` count against a server.
    #[default]
    Soft,
    /// Every offered algorithm must be in `allow`; any other is a `fail`.
    Strict,
}

/// A crypto policy: what fails a server, what makes it weak, and the host-key sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub matching: Matching,
    pub fail: Names,
    pub weak: Names,
    /// Used with `matching = "strict"`.
    pub allow: Names,
    /// RSA host keys below this many bits fail.
    pub rsa_fail_below: u32,
    /// RSA host keys below this many bits are weak.
    pub rsa_weak_below: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::baseline()
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|&n| n.to_owned()).collect()
}

impl Policy {
    /// The built-in baseline. `fail`: what is broken (RFC 9142's MUST NOTs, export and
    /// 64-bit-block ciphers, MD5 and truncated MACs, DSA keys). `weak`: what still works but
    /// should go (SHA-1 key exchange and signatures, CBC modes, 64-bit MAC tags, RSA keys
    /// under 2,048 bits).
    pub fn baseline() -> Policy {
        Policy {
            matching: Matching::Soft,
            fail: Names {
                kex: names(&[
                    "diffie-hellman-group1-sha1",
                    "gss-group1-sha1-*",
                    "rsa1024-sha1",
                ]),
                host_key: names(&["ssh-dss", "x509v3-sign-dss"]),
                ciphers: names(&[
                    "none",
                    "arcfour*",
                    "des-cbc*",
                    "3des-*",
                    "blowfish-*",
                    "cast128-*",
                    "idea-*",
                    "seed-*",
                ]),
                macs: names(&["none", "hmac-md5*", "hmac-sha1-96*", "umac-32*"]),
            },
            weak: Names {
                kex: names(&[
                    "diffie-hellman-group14-sha1",
                    "diffie-hellman-group-exchange-sha1",
                    "gss-group14-sha1-*",
                    "gss-gex-sha1-*",
                ]),
                host_key: names(&["ssh-rsa", "ssh-rsa-cert-v01@openssh.com"]),
                ciphers: names(&["aes128-cbc", "aes192-cbc", "aes256-cbc", "rijndael-cbc*"]),
                macs: names(&[
                    "hmac-sha1",
                    "hmac-sha1-etm@openssh.com",
                    "umac-64*",
                    "hmac-ripemd160*",
                ]),
            },
            allow: Names::default(),
            rsa_fail_below: 1024,
            rsa_weak_below: 2048,
        }
    }
}

/// A grade and the findings behind it (`"cipher 3des-cbc"`, `"RSA host key of 1024 bits"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Grade {
    pub crypto: Crypto,
    pub findings: Vec<String>,
}

/// Grades `algorithms` and the host key shown against `policy`.
pub fn grade(algorithms: &Algorithms, host_key: Option<&HostKey>, policy: &Policy) -> Grade {
    let mut grade = Grade {
        crypto: Crypto::Ok,
        findings: Vec::new(),
    };
    let kinds: [(&str, &[String], Pick); 4] = [
        ("key exchange", &algorithms.kex, |n| &n.kex),
        ("host key", &algorithms.host_key, |n| &n.host_key),
        ("cipher", &algorithms.ciphers, |n| &n.ciphers),
        ("MAC", &algorithms.macs, |n| &n.macs),
    ];
    for (kind, offered, pick) in kinds {
        for name in offered.iter().filter(|n| !is_marker(n)) {
            if let Some(level) = level_of(policy, pick, name) {
                grade.note(level, format!("{kind} {name}"));
            }
        }
    }
    if let Some(bits) = host_key
        .filter(|k| k.key_type == "ssh-rsa")
        .and_then(|k| k.bits)
    {
        if bits < policy.rsa_fail_below {
            grade.note(Crypto::Fail, format!("RSA host key of {bits} bits"));
        } else if bits < policy.rsa_weak_below {
            grade.note(Crypto::Weak, format!("RSA host key of {bits} bits"));
        }
    }
    grade
}

/// Picks one kind's names from a [`Names`].
type Pick = fn(&Names) -> &[String];

/// What `policy` says of one offered algorithm, `None` when nothing.
fn level_of(policy: &Policy, pick: Pick, name: &str) -> Option<Crypto> {
    let unlisted = policy.matching == Matching::Strict && !matches_any(pick(&policy.allow), name);
    if unlisted || matches_any(pick(&policy.fail), name) {
        Some(Crypto::Fail)
    } else if matches_any(pick(&policy.weak), name) {
        Some(Crypto::Weak)
    } else {
        None
    }
}

impl Grade {
    fn note(&mut self, level: Crypto, finding: String) {
        self.crypto = self.crypto.max(level);
        self.findings.push(finding);
    }
}

/// Pseudo-algorithms that announce extensions, not algorithms.
fn is_marker(name: &str) -> bool {
    name.starts_with("ext-info-") || name.starts_with("kex-strict-")
}

fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn algs(kex: &[&str], ciphers: &[&str], macs: &[&str]) -> Algorithms {
        Algorithms {
            kex: names(kex),
            host_key: names(&["ssh-ed25519"]),
            ciphers: names(ciphers),
            macs: names(macs),
            compression: names(&["none"]),
        }
    }

    #[test]
    fn chacha_without_strict_kex_is_terrapin_vulnerable() {
        let a = algs(
            &["curve25519-sha256"],
            &["chacha20-poly1305@openssh.com"],
            &["hmac-sha2-256"],
        );
        assert_eq!(terrapin(&a), Some(Terrapin::Vulnerable));
    }

    #[test]
    fn strict_kex_mitigates_and_gcm_only_is_not_prone() {
        let a = algs(
            &["curve25519-sha256", STRICT_KEX_SERVER],
            &["chacha20-poly1305@openssh.com"],
            &["hmac-sha2-256"],
        );
        assert_eq!(terrapin(&a), Some(Terrapin::Mitigated));
        let gcm = algs(
            &["curve25519-sha256"],
            &["aes128-gcm@openssh.com"],
            &["hmac-sha2-256-etm@openssh.com"],
        );
        assert_eq!(terrapin(&gcm), None);
    }

    #[test]
    fn cbc_with_an_etm_mac_is_prone_but_cbc_alone_is_not() {
        let both = algs(
            &["curve25519-sha256"],
            &["aes128-cbc"],
            &["hmac-sha2-256-etm@openssh.com"],
        );
        assert_eq!(terrapin(&both), Some(Terrapin::Vulnerable));
        let cbc = algs(&["curve25519-sha256"], &["aes128-cbc"], &["hmac-sha2-256"]);
        assert_eq!(terrapin(&cbc), None);
    }

    #[test]
    fn the_baseline_grades_modern_weak_and_broken_servers() {
        let p = Policy::baseline();
        let modern = algs(
            &["curve25519-sha256", "ext-info-s"],
            &["aes128-gcm@openssh.com"],
            &["hmac-sha2-256"],
        );
        assert_eq!(grade(&modern, None, &p).crypto, Crypto::Ok);
        let weak = algs(
            &["diffie-hellman-group14-sha1"],
            &["aes128-ctr"],
            &["hmac-sha1"],
        );
        let g = grade(&weak, None, &p);
        assert_eq!(g.crypto, Crypto::Weak);
        assert_eq!(
            g.findings,
            ["key exchange diffie-hellman-group14-sha1", "MAC hmac-sha1"]
        );
        let broken = algs(
            &["curve25519-sha256"],
            &["3des-cbc", "aes128-cbc"],
            &["hmac-md5"],
        );
        assert_eq!(grade(&broken, None, &p).crypto, Crypto::Fail);
    }

    #[test]
    fn small_rsa_host_keys_are_graded_by_size() {
        let p = Policy::baseline();
        let a = algs(&["curve25519-sha256"], &["aes128-ctr"], &["hmac-sha2-256"]);
        let key = |bits| HostKey {
            key_type: "ssh-rsa".to_owned(),
            fingerprint: String::new(),
            bits: Some(bits),
        };
        assert_eq!(grade(&a, Some(&key(1024)), &p).crypto, Crypto::Weak);
        assert_eq!(grade(&a, Some(&key(768)), &p).crypto, Crypto::Fail);
        assert_eq!(grade(&a, Some(&key(3072)), &p).crypto, Crypto::Ok);
    }

    #[test]
    fn strict_matching_fails_what_the_policy_does_not_allow() {
        let mut p = Policy::baseline();
        p.matching = Matching::Strict;
        p.allow = Names {
            kex: names(&["curve25519-sha256"]),
            host_key: names(&["ssh-ed25519"]),
            ciphers: names(&["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]),
            macs: names(&["hmac-sha2-*"]),
        };
        let a = algs(
            &["curve25519-sha256", "ecdh-sha2-nistp256"],
            &["aes128-gcm@openssh.com"],
            &["hmac-sha2-256"],
        );
        let g = grade(&a, None, &p);
        assert_eq!(g.crypto, Crypto::Fail);
        assert_eq!(g.findings, ["key exchange ecdh-sha2-nistp256"]);
    }
}
