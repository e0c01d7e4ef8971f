//! SSH server evidence in one polite connection: the identification line, the server's
//! KEXINIT, one key exchange (our X25519 key is kept for 1,024 of them), the host key and a
//! check of its signature, then a DISCONNECT. It never authenticates and never opens a
//! second connection.
//!
//! The caller connects (and classifies refused or filtered ports); [`read_evidence`] does the
//! rest within one deadline and returns what it learned, with the reason it stopped early.

mod exchange;
#[doc(hidden)]
pub mod fuzzing;
pub mod grade;
mod hostkey;
mod kexinit;
mod packet;
mod session;
mod wire;

use serde::Serialize;

pub use hostkey::{fingerprint, HostKey, SignatureCheck};
pub use kexinit::{Algorithms, KexInit, STRICT_KEX_SERVER};
pub use packet::MAX_PACKET_BYTES;
pub use session::{read_evidence, CLIENT_IDENT, MAX_IDENT_BYTES, MAX_PRE_IDENT_LINES};

/// The longest name-list read (a real server's longest is well under 2 KiB).
pub const MAX_NAME_LIST_BYTES: usize = 8 * 1024;

/// What one connection learned about a server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// The server's identification line, printable ASCII only.
    pub banner: Option<String>,
    /// The server's algorithm lists.
    pub algorithms: Option<Algorithms>,
    /// The key exchange used.
    pub kex: Option<String>,
    /// The host key the server showed.
    pub host_key: Option<HostKey>,
    /// Whether the server proved it holds that key.
    pub signature: Option<SignatureCheck>,
    /// Why the conversation stopped before the end, if it did.
    pub failure: Option<Failure>,
}

/// Where the conversation was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Identification,
    KexInit,
    KeyExchange,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Identification => "the identification line",
            Stage::KexInit => "the server's KEXINIT",
            Stage::KeyExchange => "the key exchange",
        })
    }
}

/// Why a conversation stopped early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Failure {
    #[error("no answer within the deadline while reading {0}")]
    Timeout(Stage),
    #[error("the server closed the connection during {0}")]
    Closed(Stage),
    #[error("connection error during {0}: {1}")]
    Io(Stage, #[serde(skip)] std::io::ErrorKind),
    #[error("not an SSH-2 server (no SSH-2.0 identification line)")]
    NotSsh2,
    #[error("malformed {0}: {1}")]
    Malformed(Stage, Malformed),
    #[error("the server disconnected (reason {code}): {description}")]
    Disconnected { code: u32, description: String },
    #[error("no key exchange in common (curve25519 or ECDH over NIST P-256/P-384)")]
    NoCommonKex,
    #[error("no host-key algorithm in common")]
    NoCommonHostKey,
}

/// A message that breaks the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Malformed {
    #[error("{0} runs past the end of its message")]
    Truncated(&'static str),
    #[error("{0} is too long")]
    TooLong(&'static str),
    #[error("{0} holds an empty or non-printable name")]
    BadName(&'static str),
    #[error("{0} is negative")]
    Negative(&'static str),
    #[error("expected {0}")]
    Unexpected(&'static str),
    #[error("a packet longer than {MAX_PACKET_BYTES} bytes")]
    PacketTooLong,
    #[error("a packet too short to hold a message")]
    PacketTooShort,
    #[error("padding that does not fit its packet")]
    BadPadding,
    #[error("an identification line longer than 255 bytes")]
    IdentTooLong,
    #[error("more than 16 IGNORE or DEBUG packets in a row")]
    TooManyPackets,
    #[error("a malformed {0} host key")]
    BadKey(&'static str),
    #[error("a host-key signature that does not verify")]
    BadSignature,
    #[error("the server's public value is not a valid point")]
    BadServerPublicKey,
    #[error("the system gave no randomness for the key exchange")]
    NoRandomness,
}

/// A DISCONNECT payload as a failure, its description made printable and short.
fn disconnected(payload: &[u8]) -> Failure {
    let mut r = wire::Reader::new(payload.get(1..).unwrap_or_default());
    let code = r.u32("reason code").unwrap_or(0);
    let description = r.string("description").unwrap_or_default();
    Failure::Disconnected {
        code,
        description: printable(description, 200),
    }
}

/// `bytes` as printable ASCII (others become `?`), at most `cap` characters: a string from
/// a server is inert wherever it is shown.
pub fn printable(bytes: &[u8], cap: usize) -> String {
    bytes
        .iter()
        .take(cap)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}
