//! SSH_MSG_KEXINIT (RFC 4253 §7.1): the server's algorithm lists, read without waiting for
//! ours, and the client's, which asks only for what this crate can check.

use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Serialize;

use crate::wire::{Reader, Writer};
use crate::Malformed;

pub(crate) const MSG_KEXINIT: u8 = 20;

/// The pseudo-algorithm a server lists when it enforces strict key exchange, the
/// countermeasure to Terrapin (CVE-2023-48795).
pub const STRICT_KEX_SERVER: &str = "kex-strict-s-v00@openssh.com";

/// A server's KEXINIT as it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KexInit {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub ciphers_c2s: Vec<String>,
    pub ciphers_s2c: Vec<String>,
    pub macs_c2s: Vec<String>,
    pub macs_s2c: Vec<String>,
    pub compression_c2s: Vec<String>,
    pub compression_s2c: Vec<String>,
    pub first_kex_follows: bool,
}

/// What a report keeps of a server's KEXINIT: each kind of algorithm once, in the server's
/// order of preference (both directions joined, client-to-server first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Algorithms {
    pub kex: Vec<String>,
    pub host_key: Vec<String>,
    pub ciphers: Vec<String>,
    pub macs: Vec<String>,
    pub compression: Vec<String>,
}

impl KexInit {
    /// Parses a KEXINIT payload, message number included.
    pub fn parse(payload: &[u8]) -> Result<KexInit, Malformed> {
        let mut r = Reader::new(payload);
        if r.byte("message number")? != MSG_KEXINIT {
            return Err(Malformed::Unexpected("KEXINIT"));
        }
        r.bytes(16, "cookie")?;
        let kex = r.name_list("kex_algorithms")?;
        let host_key = r.name_list("server_host_key_algorithms")?;
        let ciphers_c2s = r.name_list("encryption_algorithms_client_to_server")?;
        let ciphers_s2c = r.name_list("encryption_algorithms_server_to_client")?;
        let macs_c2s = r.name_list("mac_algorithms_client_to_server")?;
        let macs_s2c = r.name_list("mac_algorithms_server_to_client")?;
        let compression_c2s = r.name_list("compression_algorithms_client_to_server")?;
        let compression_s2c = r.name_list("compression_algorithms_server_to_client")?;
        r.name_list("languages_client_to_server")?;
        r.name_list("languages_server_to_client")?;
        let first_kex_follows = r.boolean("first_kex_packet_follows")?;
        r.u32("reserved")?;
        Ok(KexInit {
            kex,
            host_key,
            ciphers_c2s,
            ciphers_s2c,
            macs_c2s,
            macs_s2c,
            compression_c2s,
            compression_s2c,
            first_kex_follows,
        })
    }

    /// The lists a report keeps.
    pub fn algorithms(&self) -> Algorithms {
        Algorithms {
            kex: self.kex.clone(),
            host_key: self.host_key.clone(),
            ciphers: joined(&self.ciphers_c2s, &self.ciphers_s2c),
            macs: joined(&self.macs_c2s, &self.macs_s2c),
            compression: joined(&self.compression_c2s, &self.compression_s2c),
        }
    }
}

/// Each name of `first` then `second` once, in order.
fn joined(first: &[String], second: &[String]) -> Vec<String> {
    let mut all: Vec<String> = Vec::with_capacity(first.len());
    for name in first.iter().chain(second) {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    all
}

/// The key exchanges this client can complete, in order of preference.
pub(crate) const CLIENT_KEX: &[&str] = &[
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
];

/// The host-key algorithms asked for, in order of preference. The same order every run, so a
/// server with several host keys shows the same one each time. The last two are read and
/// fingerprinted but their signatures cannot be checked here.
pub(crate) const CLIENT_HOST_KEYS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
    "ecdsa-sha2-nistp521",
    "ssh-dss",
];

/// Ciphers, MACs and compression are never used (the connection ends before NEWKEYS), but a
/// server refuses a KEXINIT it shares none with, so the lists are broad.
const CLIENT_CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
    "aes128-cbc",
    "aes256-cbc",
    "3des-cbc",
];
const CLIENT_MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
    "hmac-sha1-etm@openssh.com",
    "hmac-sha1",
];
const CLIENT_COMPRESSION: &[&str] = &["none", "zlib@openssh.com", "zlib"];

/// This client's KEXINIT payload.
pub(crate) fn client_kexinit() -> Vec<u8> {
    let mut cookie = [0u8; 16];
    // A fixed cookie is what is left without system randomness; it only makes the exchange
    // hash predictable, and nothing here relies on it being secret.
    let _ = SystemRandom::new().fill(&mut cookie);
    let mut w = Writer::new();
    w.byte(MSG_KEXINIT)
        .raw(&cookie)
        .name_list(CLIENT_KEX)
        .name_list(CLIENT_HOST_KEYS)
        .name_list(CLIENT_CIPHERS)
        .name_list(CLIENT_CIPHERS)
        .name_list(CLIENT_MACS)
        .name_list(CLIENT_MACS)
        .name_list(CLIENT_COMPRESSION)
        .name_list(CLIENT_COMPRESSION)
        .name_list::<&str>(&[])
        .name_list::<&str>(&[])
        .byte(0)
        .u32(0);
    w.into_bytes()
}

/// RFC 4253 §7.1: the first algorithm on the client's list that the server also offers.
pub(crate) fn negotiate<'a>(client: &[&'a str], server: &[String]) -> Option<&'a str> {
    client
        .iter()
        .copied()
        .find(|name| server.iter().any(|offered| offered == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_kexinit_parses_as_a_kexinit() {
        let parsed = KexInit::parse(&client_kexinit());
        let Ok(parsed) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(parsed.kex, CLIENT_KEX);
        assert_eq!(parsed.host_key, CLIENT_HOST_KEYS);
        assert!(!parsed.first_kex_follows);
    }

    #[test]
    fn negotiation_follows_the_clients_order() {
        let server = vec![
            "ecdh-sha2-nistp256".to_owned(),
            "curve25519-sha256".to_owned(),
        ];
        assert_eq!(negotiate(CLIENT_KEX, &server), Some("curve25519-sha256"));
        assert_eq!(
            negotiate(CLIENT_KEX, &["diffie-hellman-group1-sha1".to_owned()]),
            None
        );
    }

    #[test]
    fn the_report_lists_join_both_directions_once() {
        let mut k = KexInit::parse(&client_kexinit()).unwrap_or_else(|e| panic!("{e}"));
        k.ciphers_s2c.push("aes128-cbc".to_owned());
        k.ciphers_s2c.push("arcfour".to_owned());
        let a = k.algorithms();
        assert_eq!(a.ciphers.iter().filter(|c| *c == "aes128-cbc").count(), 1);
        assert_eq!(a.ciphers.last().map(String::as_str), Some("arcfour"));
    }
}
