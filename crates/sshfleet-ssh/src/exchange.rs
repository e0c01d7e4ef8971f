//! One ephemeral elliptic-curve key exchange (RFC 5656 §4, RFC 8731): our public value out,
//! the server's reply in, the shared secret and the exchange hash H that the server signs.

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::digest;
use ring::rand::SystemRandom;

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

    fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Method::Curve25519 | Method::Curve25519Libssh => &agreement::X25519,
            Method::EcdhP256 => &agreement::ECDH_P256,
            Method::EcdhP384 => &agreement::ECDH_P384,
        }
    }

    fn hash(self) -> &'static digest::Algorithm {
        match self {
            Method::EcdhP384 => &digest::SHA384,
            _ => &digest::SHA256,
        }
    }
}

/// Our half of an exchange in progress.
pub(crate) struct Ephemeral {
    method: Method,
    private: EphemeralPrivateKey,
    public: Vec<u8>,
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
        let rng = SystemRandom::new();
        let private = EphemeralPrivateKey::generate(method.agreement(), &rng)
            .map_err(|_| Malformed::NoRandomness)?;
        let public = private
            .compute_public_key()
            .map_err(|_| Malformed::NoRandomness)?
            .as_ref()
            .to_vec();
        Ok(Ephemeral {
            method,
            private,
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
        let peer = UnparsedPublicKey::new(self.method.agreement(), reply.server_public);
        let hash = self.method.hash();
        let public = self.public;
        agreement::agree_ephemeral(self.private, &peer, |shared| {
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
        })
        .map_err(|_| Malformed::BadServerPublicKey)
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
