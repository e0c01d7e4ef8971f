//! Host keys (RFC 4253 §6.6, RFC 5656, RFC 8709): the key blob's type and fingerprint as
//! `ssh-keygen -lf` prints them, and the check of the server's signature over the exchange
//! hash, which proves the server holds the key it showed.

use base64::Engine as _;
use ring::digest;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Serialize;

use crate::wire::Reader;
use crate::Malformed;

/// A server's host key as a report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HostKey {
    /// The key's type as its blob names it: `ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`…
    pub key_type: String,
    /// `SHA256:` and the unpadded base64 of the blob's SHA-256, as `ssh-keygen -lf` prints.
    pub fingerprint: String,
    /// The modulus size of an RSA key, the curve size of an ECDSA key, 256 for Ed25519.
    pub bits: Option<u32>,
}

/// What the signature over the exchange hash showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// The server signed the exchange hash with the key it showed.
    Verified,
    /// A key type this client reads but cannot check (`ecdsa-sha2-nistp521`, `ssh-dss`).
    Unchecked,
}

/// The key a blob holds, in the form its signatures are checked against.
enum PublicKey<'a> {
    Ed25519(&'a [u8]),
    Ecdsa { curve: Curve, point: &'a [u8] },
    Rsa { e: &'a [u8], n: &'a [u8] },
    Unchecked,
}

#[derive(Clone, Copy)]
enum Curve {
    P256,
    P384,
}

/// A parsed host-key blob.
pub(crate) struct Blob<'a> {
    pub(crate) key: HostKey,
    public: PublicKey<'a>,
}

/// Parses a host-key blob. Unknown key types are still fingerprinted: the fingerprint is over
/// the blob, whatever it holds.
pub(crate) fn parse(blob: &[u8]) -> Result<Blob<'_>, Malformed> {
    let mut r = Reader::new(blob);
    let key_type = r.string("host key type")?;
    let (public, bits) = match key_type {
        b"ssh-ed25519" => {
            let pk = r.string("ed25519 key")?;
            if pk.len() != 32 {
                return Err(Malformed::BadKey("ssh-ed25519"));
            }
            (PublicKey::Ed25519(pk), Some(256))
        }
        b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => {
            r.string("curve name")?;
            let point = r.string("ecdsa point")?;
            match key_type {
                b"ecdsa-sha2-nistp256" => (ecdsa(Curve::P256, point), Some(256)),
                b"ecdsa-sha2-nistp384" => (ecdsa(Curve::P384, point), Some(384)),
                _ => (PublicKey::Unchecked, Some(521)),
            }
        }
        b"ssh-rsa" => {
            let e = r.mpint("rsa exponent")?;
            let n = r.mpint("rsa modulus")?;
            (PublicKey::Rsa { e, n }, rsa_bits(n))
        }
        _ => (PublicKey::Unchecked, None),
    };
    Ok(Blob {
        key: HostKey {
            key_type: String::from_utf8_lossy(key_type)
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect(),
            fingerprint: fingerprint(blob),
            bits,
        },
        public,
    })
}

fn ecdsa(curve: Curve, point: &[u8]) -> PublicKey<'_> {
    PublicKey::Ecdsa { curve, point }
}

fn rsa_bits(n: &[u8]) -> Option<u32> {
    let top = *n.first()?;
    let len = u32::try_from(n.len()).ok()?;
    len.checked_sub(1)?
        .checked_mul(8)?
        .checked_add(8 - top.leading_zeros())
}

/// `SHA256:` and the unpadded base64 of the blob's digest: OpenSSH's fingerprint.
pub fn fingerprint(blob: &[u8]) -> String {
    let digest = digest::digest(&digest::SHA256, blob);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref())
    )
}

impl Blob<'_> {
    /// Checks `sig` (the reply's signature blob) over `hash` for the negotiated host-key
    /// algorithm `algorithm`.
    pub(crate) fn check(
        &self,
        algorithm: &str,
        sig: &[u8],
        hash: &[u8],
    ) -> Result<SignatureCheck, Malformed> {
        let mut r = Reader::new(sig);
        let named = r.string("signature algorithm")?;
        let raw = r.string("signature")?;
        if named != algorithm.as_bytes() {
            return Err(Malformed::Unexpected(
                "signature of the negotiated algorithm",
            ));
        }
        let checked = match &self.public {
            PublicKey::Unchecked => return Ok(SignatureCheck::Unchecked),
            PublicKey::Ed25519(pk) => {
                UnparsedPublicKey::new(&signature::ED25519, pk).verify(hash, raw)
            }
            PublicKey::Ecdsa { curve, point } => check_ecdsa(*curve, point, raw, hash)?,
            PublicKey::Rsa { e, n } => check_rsa(algorithm, e, n, raw, hash)?,
        };
        checked
            .map(|()| SignatureCheck::Verified)
            .map_err(|_| Malformed::BadSignature)
    }
}

/// An SSH ECDSA signature is two mpints; ring takes them as fixed-width `r || s`.
fn check_ecdsa(
    curve: Curve,
    point: &[u8],
    raw: &[u8],
    hash: &[u8],
) -> Result<Result<(), ring::error::Unspecified>, Malformed> {
    let (width, algorithm) = match curve {
        Curve::P256 => (32, &signature::ECDSA_P256_SHA256_FIXED),
        Curve::P384 => (48, &signature::ECDSA_P384_SHA384_FIXED),
    };
    let mut r = Reader::new(raw);
    let mut fixed = Vec::with_capacity(2 * width);
    for part in [r.mpint("ecdsa r")?, r.mpint("ecdsa s")?] {
        if part.len() > width {
            return Err(Malformed::BadSignature);
        }
        fixed.resize(fixed.len() + width - part.len(), 0);
        fixed.extend_from_slice(part);
    }
    Ok(UnparsedPublicKey::new(algorithm, point).verify(hash, &fixed))
}

fn check_rsa(
    algorithm: &str,
    e: &[u8],
    n: &[u8],
    raw: &[u8],
    hash: &[u8],
) -> Result<Result<(), ring::error::Unspecified>, Malformed> {
    // The legacy parameter sets take keys from 1,024 bits: old cameras have them, and their
    // size is graded, not refused here.
    let params = match algorithm {
        "rsa-sha2-512" => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        "rsa-sha2-256" => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        "ssh-rsa" => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        _ => return Err(Malformed::Unexpected("an RSA signature algorithm")),
    };
    // OpenSSH pads the signature to the modulus length; some servers drop leading zeros.
    if raw.len() > n.len() {
        return Err(Malformed::BadSignature);
    }
    let mut padded = vec![0u8; n.len() - raw.len()];
    padded.extend_from_slice(raw);
    Ok(RsaPublicKeyComponents { n, e }.verify(params, hash, &padded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Writer;

    #[test]
    fn the_fingerprint_is_openssh_s() {
        // ssh-keygen -lf of this key prints SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU
        // for the empty blob's digest; a real key is pinned against ssh-keygen in the
        // integration tests.
        assert_eq!(
            fingerprint(b""),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn rsa_bits_count_the_modulus() {
        assert_eq!(rsa_bits(&[0x80; 256]), Some(2048));
        assert_eq!(rsa_bits(&[0x01, 0]), Some(9));
        assert_eq!(rsa_bits(&[]), None);
    }

    #[test]
    fn an_ed25519_key_of_the_wrong_length_is_refused() {
        let mut w = Writer::new();
        w.string(b"ssh-ed25519").string(&[1; 31]);
        assert!(matches!(parse(&w.into_bytes()), Err(Malformed::BadKey(_))));
    }

    #[test]
    fn an_unknown_key_type_is_still_fingerprinted_and_unchecked() {
        let mut w = Writer::new();
        w.string(b"x-new-key@example.com").string(&[1; 8]);
        let blob = w.into_bytes();
        let Ok(parsed) = parse(&blob) else {
            panic!("parse")
        };
        assert_eq!(parsed.key.key_type, "x-new-key@example.com");
        assert_eq!(parsed.key.fingerprint, fingerprint(&blob));
        let mut sig = Writer::new();
        sig.string(b"x-new-key@example.com").string(b"sig");
        assert_eq!(
            parsed.check("x-new-key@example.com", &sig.into_bytes(), b"h"),
            Ok(SignatureCheck::Unchecked)
        );
    }
}
