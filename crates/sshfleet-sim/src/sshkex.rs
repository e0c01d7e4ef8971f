//! The cameras' SSH transport, as far as a client that never logs in sees it: after the
//! identification lines, the server's KEXINIT, then one curve25519 key exchange answered
//! with the camera's Ed25519 host key and its signature over the exchange hash (RFC 4253
//! §6–8, RFC 8731, RFC 8709). Written from the RFCs for the simulator alone: it shares no
//! code with the client's SSH reader, so a misreading on one side shows on the other.

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// What a camera's SSH server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Offer {
    /// Current OpenSSH defaults, with strict key exchange: graded `ok`, Terrapin mitigated.
    Modern,
    /// SHA-1 key exchange, CBC ciphers and SHA-1 MACs beside the good ones: graded `weak`.
    Weak,
    /// ChaCha20-Poly1305 without strict key exchange: Terrapin `vulnerable`.
    TerrapinProne,
}

impl Offer {
    /// The grade a client that knows today's weak algorithms gives this offer: the
    /// simulator's own statement of it, for the truth file.
    pub(crate) fn crypto(self) -> &'static str {
        match self {
            Offer::Modern | Offer::TerrapinProne => "ok",
            Offer::Weak => "weak",
        }
    }

    /// Terrapin as this offer stands: strict key exchange mitigates the Modern offer's
    /// ChaCha20; the Weak offer has CBC without encrypt-then-MAC, which is not prone.
    pub(crate) fn terrapin(self) -> Option<&'static str> {
        match self {
            Offer::Modern => Some("mitigated"),
            Offer::Weak => None,
            Offer::TerrapinProne => Some("vulnerable"),
        }
    }

    fn lists(self) -> [&'static str; 4] {
        // kex, ciphers, macs, host keys; both directions get the same list.
        match self {
            Offer::Modern => [
                "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ext-info-s,kex-strict-s-v00@openssh.com",
                "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr",
                "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha2-256,hmac-sha2-512",
                "ssh-ed25519",
            ],
            Offer::Weak => [
                "curve25519-sha256,diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,kex-strict-s-v00@openssh.com",
                "aes128-ctr,aes128-cbc,aes256-cbc",
                "hmac-sha2-256,hmac-sha1",
                "ssh-ed25519",
            ],
            Offer::TerrapinProne => [
                "curve25519-sha256,curve25519-sha256@libssh.org,ext-info-s",
                "chacha20-poly1305@openssh.com,aes128-ctr",
                "hmac-sha2-256,hmac-sha2-512",
                "ssh-ed25519",
            ],
        }
    }

    /// The server's KEXINIT payload.
    pub(crate) fn kexinit(self) -> Vec<u8> {
        let [kex, ciphers, macs, host_keys] = self.lists();
        let mut m = vec![KEXINIT];
        m.extend_from_slice(&[0x5a; 16]);
        for list in [
            kex, host_keys, ciphers, ciphers, macs, macs, "none", "none", "", "",
        ] {
            put_string(&mut m, list.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&[0; 4]);
        m
    }
}

const DISCONNECT: u8 = 1;
const KEXINIT: u8 = 20;
const KEX_ECDH_INIT: u8 = 30;
const KEX_ECDH_REPLY: u8 = 31;

/// The largest packet the simulator takes from a client.
const MAX_PACKET: usize = 35_000;
/// The longest client identification line.
const MAX_LINE: usize = 255;

/// A camera's host key: Ed25519, derived from a 32-byte seed so that the same seed gives
/// the same key in every run (and cameras given one seed share one key).
pub(crate) struct HostKey {
    pair: Ed25519KeyPair,
}

impl HostKey {
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Option<HostKey> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .ok()
            .map(|pair| HostKey { pair })
    }

    /// The public key blob (`string "ssh-ed25519", string key`).
    pub(crate) fn blob(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(51);
        put_string(&mut b, b"ssh-ed25519");
        put_string(&mut b, self.pair.public_key().as_ref());
        b
    }

    /// What `ssh-keygen -lf` prints for this key: `SHA256:` and the unpadded base64 digest.
    pub(crate) fn fingerprint(&self) -> String {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.blob());
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_ref());
        format!("SHA256:{b64}")
    }
}

/// A camera's SSH server: what it offers and the seed of the key it shows. The key pair is
/// made from the seed on each connection (tens of microseconds), so a fleet of 100,000
/// cameras starts without making 100,000 keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SshServer {
    pub offer: Offer,
    pub key_seed: [u8; 32],
    /// The fleet's seed and the camera's index, so that [`SshServer::at_epoch`] can tell
    /// its key at another epoch.
    seed: u64,
    index: usize,
    /// The key epoch it is at (`--key-epoch`): 0 unless re-keyed.
    pub epoch: u16,
    /// Its key differs from the one it showed at the epoch before (a re-flashed camera).
    pub rekeyed: bool,
}

/// Of the cameras, the share whose host key changes at each key epoch: one in twenty (5 %).
pub(crate) const REKEYED_EVERY: u8 = 20;

impl SshServer {
    /// Camera `index`'s server in the fleet seeded `seed`, the same in every run of that
    /// fleet. The simulator's own mix: 70 % [`Offer::Modern`], 20 % [`Offer::Weak`], 10 %
    /// [`Offer::TerrapinProne`]; 2 % of cameras show a key that one of three "cloned images"
    /// share, every other camera a key of its own.
    pub(crate) fn for_camera(seed: u64, index: usize) -> SshServer {
        let pick = digest32(b"sshfleet-sim ssh mix", seed, index);
        let offer = match pick[0] % 10 {
            0 => Offer::TerrapinProne,
            1 | 2 => Offer::Weak,
            _ => Offer::Modern,
        };
        let key_seed = if pick[1] % 50 == 0 {
            digest32(b"sshfleet-sim cloned image", seed, usize::from(pick[2] % 3))
        } else {
            digest32(b"sshfleet-sim host key", seed, index)
        };
        SshServer {
            offer,
            key_seed,
            seed,
            index,
            epoch: 0,
            rekeyed: false,
        }
    }

    /// The same server at key epoch `epoch` (`sshfleet sim --key-epoch`): at each epoch
    /// after 0, one camera in [`REKEYED_EVERY`] (seeded, per camera and epoch) is re-flashed
    /// and shows a new key of its own from then on (a camera of a cloned image leaves the
    /// image); the others keep theirs. Its serial and everything else stay as they were.
    pub(crate) fn at_epoch(self, epoch: u16) -> SshServer {
        let base = SshServer::for_camera(self.seed, self.index);
        let generation = (1..=epoch)
            .filter(|&e| rekeyed_at(self.seed, self.index, e))
            .count();
        let key_seed = match generation {
            0 => base.key_seed,
            g => {
                let label = format!("sshfleet-sim host key, generation {g}");
                digest32(label.as_bytes(), self.seed, self.index)
            }
        };
        SshServer {
            key_seed,
            epoch,
            rekeyed: epoch > 0 && rekeyed_at(self.seed, self.index, epoch),
            ..base
        }
    }

    pub(crate) fn key(&self) -> Option<HostKey> {
        HostKey::from_seed(&self.key_seed)
    }
}

/// Whether camera `index` gets a new host key at key epoch `epoch`.
fn rekeyed_at(seed: u64, index: usize, epoch: u16) -> bool {
    let label = format!("sshfleet-sim key epoch {epoch}");
    digest32(label.as_bytes(), seed, index)[0] % REKEYED_EVERY == 0
}

fn digest32(label: &[u8], seed: u64, index: usize) -> [u8; 32] {
    let mut material = label.to_vec();
    material.extend_from_slice(&seed.to_be_bytes());
    material.extend_from_slice(&u64::try_from(index).unwrap_or(u64::MAX).to_be_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &material);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest.as_ref()[..32]);
    out
}

/// Why a conversation ended early; the simulator only logs it.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The client closed, or said nothing more (the plain probe reads the line and leaves).
    ClientLeft,
    Io(std::io::Error),
    /// The client sent something this server does not take.
    Refused(&'static str),
}

impl From<std::io::Error> for Ended {
    fn from(e: std::io::Error) -> Ended {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Ended::ClientLeft
        } else {
            Ended::Io(e)
        }
    }
}

/// Everything after the server's identification line `ident` (already sent, without CR LF):
/// the client's line, KEXINIT both ways, one curve25519 exchange. Returns once the reply is
/// sent; the caller then waits for the client to leave.
pub(crate) async fn exchange<S>(
    io: &mut S,
    ident: &[u8],
    offer: Offer,
    key: &HostKey,
) -> Result<(), Ended>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let client_ident = read_line(io).await?;
    let server_kexinit = offer.kexinit();
    io.write_all(&frame(&server_kexinit)).await?;
    let client_kexinit = read_packet(io).await?;
    if client_kexinit.first() != Some(&KEXINIT) {
        return Err(Ended::Refused("a KEXINIT"));
    }
    let init = read_packet(io).await?;
    let client_public = ecdh_init(&init)?;
    let rng = SystemRandom::new();
    let ours = EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| Ended::Refused("randomness"))?;
    let our_public = ours
        .compute_public_key()
        .map_err(|_| Ended::Refused("randomness"))?;
    let blob = key.blob();
    let peer = UnparsedPublicKey::new(&agreement::X25519, client_public);
    let hash = agreement::agree_ephemeral(ours, &peer, |secret| {
        let mut h = Vec::new();
        put_string(&mut h, &client_ident);
        put_string(&mut h, ident);
        put_string(&mut h, &client_kexinit);
        put_string(&mut h, &server_kexinit);
        put_string(&mut h, &blob);
        put_string(&mut h, client_public);
        put_string(&mut h, our_public.as_ref());
        put_mpint(&mut h, secret);
        ring::digest::digest(&ring::digest::SHA256, &h)
    })
    .map_err(|_| Ended::Refused("a valid curve25519 point"))?;
    let signature = key.pair.sign(hash.as_ref());
    let mut sig = Vec::new();
    put_string(&mut sig, b"ssh-ed25519");
    put_string(&mut sig, signature.as_ref());
    let mut reply = vec![KEX_ECDH_REPLY];
    put_string(&mut reply, &blob);
    put_string(&mut reply, our_public.as_ref());
    put_string(&mut reply, &sig);
    io.write_all(&frame(&reply)).await?;
    Ok(())
}

/// The client's public value from KEX_ECDH_INIT, which must be 32 bytes.
fn ecdh_init(payload: &[u8]) -> Result<&[u8], Ended> {
    match payload {
        [KEX_ECDH_INIT, a, b, c, d, rest @ ..]
            if u32::from_be_bytes([*a, *b, *c, *d]) == 32 && rest.len() == 32 =>
        {
            Ok(rest)
        }
        [DISCONNECT, ..] => Err(Ended::ClientLeft),
        _ => Err(Ended::Refused("a curve25519 KEX_ECDH_INIT")),
    }
}

async fn read_line<S: AsyncRead + Unpin>(io: &mut S) -> Result<Vec<u8>, Ended> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() <= MAX_LINE {
        io.read_exact(&mut byte).await?;
        if byte[0] == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(line);
        }
        line.push(byte[0]);
    }
    Err(Ended::Refused(
        "an identification line of at most 255 bytes",
    ))
}

async fn read_packet<S: AsyncRead + Unpin>(io: &mut S) -> Result<Vec<u8>, Ended> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if !(6..=MAX_PACKET).contains(&len) {
        return Err(Ended::Refused("a packet of a sane length"));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    let padding = usize::from(body[0]);
    let end = len.checked_sub(padding).filter(|&end| end > 1);
    match end {
        Some(end) => Ok(body[1..end].to_vec()),
        None => Err(Ended::Refused("padding that fits its packet")),
    }
}

/// One unencrypted packet: length, padding length, payload, zero padding to 8 bytes.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut padding = 8 - (5 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let total = 1 + payload.len() + padding;
    let mut p = Vec::with_capacity(4 + total);
    p.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
    p.push(u8::try_from(padding).unwrap_or(4));
    p.extend_from_slice(payload);
    p.resize(p.len() + padding, 0);
    p
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// An unsigned big-endian number as an mpint: no leading zeros, a zero byte before a set top bit.
fn put_mpint(out: &mut Vec<u8>, magnitude: &[u8]) {
    let digits: &[u8] = match magnitude.iter().position(|&b| b != 0) {
        Some(first) => &magnitude[first..],
        None => &[],
    };
    let pad = digits.first().is_some_and(|&b| b >= 0x80);
    let len = digits.len() + usize::from(pad);
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The product's reader against this server: each side written apart, so agreement here
    /// means both read the RFCs the same way.
    async fn read(offer: Offer, seed: u8) -> (sshfleet_ssh::Evidence, String) {
        let Some(key) = HostKey::from_seed(&[seed; 32]) else {
            panic!("key")
        };
        let fingerprint = key.fingerprint();
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let ident = b"SSH-2.0-OpenSSH_8.9";
        let serving = tokio::spawn(async move {
            let mut line = ident.to_vec();
            line.extend_from_slice(b"\r\n");
            server.write_all(&line).await.map_err(Ended::from)?;
            exchange(&mut server, ident, offer, &key).await
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let evidence = sshfleet_ssh::read_evidence(client, deadline).await;
        assert!(matches!(serving.await, Ok(Ok(()))));
        (evidence, fingerprint)
    }

    #[tokio::test]
    async fn the_client_verifies_the_simulators_exchange_for_each_offer() {
        use sshfleet_ssh::grade::{self, Crypto, Terrapin};
        for (offer, crypto, terrapin) in [
            (Offer::Modern, Crypto::Ok, Some(Terrapin::Mitigated)),
            (Offer::Weak, Crypto::Weak, None),
            (Offer::TerrapinProne, Crypto::Ok, Some(Terrapin::Vulnerable)),
        ] {
            let (e, fingerprint) = read(offer, 7).await;
            assert_eq!(e.failure, None, "{offer:?}: {e:?}");
            assert_eq!(e.signature, Some(sshfleet_ssh::SignatureCheck::Verified));
            assert_eq!(e.host_key.map(|k| k.fingerprint), Some(fingerprint));
            let Some(algs) = e.algorithms else {
                panic!("no lists")
            };
            assert_eq!(
                grade::grade(&algs, None, &grade::Policy::baseline()).crypto,
                crypto,
                "{offer:?}"
            );
            assert_eq!(grade::terrapin(&algs), terrapin, "{offer:?}");
        }
    }

    #[tokio::test]
    async fn one_seed_one_key_and_another_seed_another() {
        let (a, fa) = read(Offer::Modern, 1).await;
        let (b, fb) = read(Offer::Modern, 1).await;
        let (_, fc) = read(Offer::Modern, 2).await;
        assert_eq!(fa, fb);
        assert_ne!(fa, fc);
        assert_eq!(a.host_key, b.host_key);
    }

    #[test]
    fn mpints_drop_leading_zeros_and_add_a_sign_byte() {
        let mut out = Vec::new();
        put_mpint(&mut out, &[0, 0, 0x80, 1]);
        put_mpint(&mut out, &[0, 0x7f]);
        put_mpint(&mut out, &[0, 0]);
        assert_eq!(out, [0, 0, 0, 3, 0, 0x80, 1, 0, 0, 0, 1, 0x7f, 0, 0, 0, 0]);
    }

    #[test]
    fn a_key_epoch_rekeys_about_one_camera_in_twenty_and_keeps_the_rest() {
        let cameras = 2000;
        let mut rekeyed = 0;
        for index in 0..cameras {
            let base = SshServer::for_camera(7, index);
            assert_eq!(base.at_epoch(0), base);
            let next = base.at_epoch(1);
            assert_eq!(next.offer, base.offer);
            assert_eq!(
                next.rekeyed,
                next.key_seed != base.key_seed,
                "camera {index}"
            );
            rekeyed += usize::from(next.rekeyed);
            // The same epoch reached again gives the same key; epochs add up.
            assert_eq!(next.at_epoch(1), next);
            let later = base.at_epoch(2);
            assert_eq!(
                later.rekeyed,
                later.key_seed != next.key_seed,
                "camera {index}"
            );
        }
        assert!(
            (60..=140).contains(&rekeyed),
            "{rekeyed} of {cameras} re-keyed"
        );
    }
}
