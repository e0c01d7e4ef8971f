//! One elliptic-curve key exchange (RFC 5656 §4, RFC 8731): our public value out, the
//! server's reply in, the shared secret and the exchange hash H that the server signs.
//!
//! **Our X25519 key is kept for [`X25519_KEY_USES`] exchanges** on a thread, then replaced.
//! A fresh key per connection costs a fixed-base scalar multiplication for every camera:
//! with ring (whose keys are single-use) the key and the agreement took 55 µs a
//! conversation, the agreement alone with a kept key takes 44 µs. Nothing here needs the key to be
//! single-use: the shared secret only feeds the exchange hash H that proves the server holds
//! its host key; no session key is derived and nothing is encrypted, and the secret never
//! leaves memory (it is wiped when dropped). Reuse lets a server see that several connections
//! came from the same client, which our identification line says already. The NIST-curve
//! exchanges (a fallback for servers without curve25519) stay single-use.

use std::cell::RefCell;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};
use x25519_dalek::{PublicKey as X25519Public, StaticSecret};

use crate::wire::{Reader, Writer};
use crate::Malformed;

pub(crate) const MSG_KEX_ECDH_INIT: u8 = 30;
pub(crate) const MSG_KEX_ECDH_REPLY: u8 = 31;

/// A key exchange this client completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Curve25519,
    Curve25519Libssh,
    EcdhP256,
    EcdhP384,
}

impl Method {
    pub(crate) fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "curve25519-sha256" => Method::Curve25519,
            "curve25519-sha256@libssh.org" => Method::Curve25519Libssh,
            "ecdh-sha2-nistp256" => Method::EcdhP256,
            "ecdh-sha2-nistp384" => Method::EcdhP384,
            _ => return None,
        })
    }

    /// ring's algorithm for the NIST-curve exchanges; `None` for X25519.
    fn nist_agreement(self) -> Option<&'static agreement::Algorithm> {
        match self {
            Method::Curve25519 | Method::Curve25519Libssh => None,
            Method::EcdhP256 => Some(&agreement::ECDH_P256),
            Method::EcdhP384 => Some(&agreement::ECDH_P384),
        }
    }

    fn hash(self) -> &'static digest::Algorithm {
        match self {
            Method::EcdhP384 => &digest::SHA384,
            _ => &digest::SHA256,
        }
    }
}

/// Exchanges one thread's X25519 key serves before it is replaced.
pub(crate) const X25519_KEY_USES: u32 = 1024;

/// Our half of an exchange in progress.
pub(crate) struct Ephemeral {
    method: Method,
    private: Private,
    public: Vec<u8>,
}

enum Private {
    X25519(StaticSecret),
    Nist(EphemeralPrivateKey, &'static agreement::Algorithm),
}

/// A thread's X25519 key and how many exchanges it has served.
struct KeptKey {
    secret: StaticSecret,
    public: [u8; 32],
    uses: u32,
}

thread_local! {
    static X25519_KEY: RefCell<Option<KeptKey>> = const { RefCell::new(None) };
}

/// This thread's X25519 key pair for one more exchange: a new one after
/// [`X25519_KEY_USES`].
fn x25519_key() -> Result<(StaticSecret, [u8; 32]), Malformed> {
    X25519_KEY.with(|kept| {
        let mut kept = kept.borrow_mut();
        let key = match kept.as_mut() {
            Some(key) if key.uses < X25519_KEY_USES => key,
            _ => kept.insert(KeptKey::new()?),
        };
        key.uses = key.uses.saturating_add(1);
        Ok((key.secret.clone(), key.public))
    })
}

impl KeptKey {
    /// A new key from the system's randomness, not used yet.
    fn new() -> Result<KeptKey, Malformed> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Malformed::NoRandomness)?;
        let secret = StaticSecret::from(bytes);
        bytes.fill(0);
        let public = X25519Public::from(&secret).to_bytes();
        Ok(KeptKey {
            secret,
            public,
            uses: 0,
        })
    }
}

/// What the exchange hash covers besides the reply: both identification lines (without
/// CR LF) and both KEXINIT payloads.
pub(crate) struct Transcript<'a> {
    pub(crate) client_ident: &'a [u8],
    pub(crate) server_ident: &'a [u8],
    pub(crate) client_kexinit: &'a [u8],
    pub(crate) server_kexinit: &'a [u8],
}

/// The server's SSH_MSG_KEX_ECDH_REPLY.
pub(crate) struct Reply<'a> {
    pub(crate) host_key: &'a [u8],
    server_public: &'a [u8],
    pub(crate) signature: &'a [u8],
}

impl Ephemeral {
    pub(crate) fn generate(method: Method) -> Result<Ephemeral, Malformed> {
        let Some(algorithm) = method.nist_agreement() else {
            let (secret, public) = x25519_key()?;
            return Ok(Ephemeral {
                method,
                private: Private::X25519(secret),
                public: public.to_vec(),
            });
        };
        let private = EphemeralPrivateKey::generate(algorithm, &SystemRandom::new())
            .map_err(|_| Malformed::NoRandomness)?;
        let public = private
            .compute_public_key()
            .map_err(|_| Malformed::NoRandomness)?
            .as_ref()
            .to_vec();
        Ok(Ephemeral {
            method,
            private: Private::Nist(private, algorithm),
            public,
        })
    }

    /// SSH_MSG_KEX_ECDH_INIT with our public value.
    pub(crate) fn init_payload(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.byte(MSG_KEX_ECDH_INIT).string(&self.public);
        w.into_bytes()
    }

    /// The exchange hash H for `reply`, after the shared secret is agreed.
    pub(crate) fn exchange_hash(
        self,
        transcript: &Transcript<'_>,
        reply: &Reply<'_>,
    ) -> Result<Vec<u8>, Malformed> {
        let hash = self.method.hash();
        let public = self.public;
        let exchange_hash = |shared: &[u8]| {
            let mut w = Writer::new();
            w.string(transcript.client_ident)
                .string(transcript.server_ident)
                .string(transcript.client_kexinit)
                .string(transcript.server_kexinit)
                .string(reply.host_key)
                .string(&public)
                .string(reply.server_public)
                .mpint(shared);
            digest::digest(hash, &w.into_bytes()).as_ref().to_vec()
        };
        match self.private {
            Private::X25519(secret) => {
                let peer: [u8; 32] = reply
                    .server_public
                    .try_into()
                    .map_err(|_| Malformed::BadServerPublicKey)?;
                let shared = secret.diffie_hellman(&X25519Public::from(peer));
                // RFC 8731 §3: an all-zero shared secret (a low-order point from the server)
                // must be refused, as ring refuses it.
                if !shared.was_contributory() {
                    return Err(Malformed::BadServerPublicKey);
                }
                Ok(exchange_hash(shared.as_bytes()))
            }
            Private::Nist(private, algorithm) => {
                let peer = UnparsedPublicKey::new(algorithm, reply.server_public);
                agreement::agree_ephemeral(private, &peer, exchange_hash)
                    .map_err(|_| Malformed::BadServerPublicKey)
            }
        }
    }
}

/// Parses SSH_MSG_KEX_ECDH_REPLY.
pub(crate) fn parse_reply(payload: &[u8]) -> Result<Reply<'_>, Malformed> {
    let mut r = Reader::new(payload);
    if r.byte("message number")? != MSG_KEX_ECDH_REPLY {
        return Err(Malformed::Unexpected("KEX_ECDH_REPLY"));
    }
    let host_key = r.string("host key")?;
    let server_public = r.string("server public value")?;
    let signature = r.string("signature")?;
    Ok(Reply {
        host_key,
        server_public,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_with_a_short_host_key_field_is_truncated() {
        let mut w = Writer::new();
        w.byte(MSG_KEX_ECDH_REPLY).u32(1_000_000).raw(b"abc");
        assert!(matches!(
            parse_reply(&w.into_bytes()),
            Err(Malformed::Truncated(_))
        ));
    }

    #[test]
    fn a_kept_x25519_key_serves_its_uses_then_is_replaced() {
        let public = || match Ephemeral::generate(Method::Curve25519) {
            Ok(ours) => ours.public,
            Err(e) => panic!("{e:?}"),
        };
        let first = public();
        for _ in 1..X25519_KEY_USES {
            assert_eq!(public(), first);
        }
        let next = public();
        assert_ne!(next, first);
        assert_eq!(public(), next);
        // The NIST-curve exchanges stay single-use.
        let nist = || match Ephemeral::generate(Method::EcdhP256) {
            Ok(ours) => ours.public,
            Err(e) => panic!("{e:?}"),
        };
        assert_ne!(nist(), nist());
    }

    #[test]
    fn a_low_order_server_point_is_refused() {
        let Ok(ours) = Ephemeral::generate(Method::Curve25519) else {
            panic!("no randomness")
        };
        let zero = [0u8; 32];
        let reply = Reply {
            host_key: b"",
            server_public: &zero,
            signature: b"",
        };
        let t = Transcript {
            client_ident: b"",
            server_ident: b"",
            client_kexinit: b"",
            server_kexinit: b"",
        };
        assert!(matches!(
            ours.exchange_hash(&t, &reply),
            Err(Malformed::BadServerPublicKey)
        ));
    }
}
