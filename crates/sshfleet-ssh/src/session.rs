//! The one connection: our identification line, the server's, its KEXINIT, ours, one key
//! exchange, the reply's host key and signature, then SSH_MSG_DISCONNECT. Never a second
//! connection, never authentication; every read bounded in size and by the deadline.

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::time::{timeout_at, Instant};

use crate::exchange::{self, Ephemeral, Method, Transcript};
use crate::hostkey;
use crate::kexinit::{self, KexInit, CLIENT_HOST_KEYS, CLIENT_KEX};
use crate::packet;
use crate::{Evidence, Failure, Malformed, Stage};

/// What this client says it is.
pub const CLIENT_IDENT: &[u8] = b"SSH-2.0-sshfleet_evidence";

/// The longest identification line RFC 4253 §4.2 allows, CR LF included.
pub const MAX_IDENT_BYTES: usize = 255;

/// Lines a server may send before its identification line (RFC 4253 §4.2), and how long each.
pub const MAX_PRE_IDENT_LINES: usize = 16;
const MAX_PRE_IDENT_LINE_BYTES: usize = 1024;

/// The read buffer of one conversation.
const READ_BUFFER_BYTES: usize = 2048;

/// Packets skipped (IGNORE, DEBUG) while waiting for the one that is expected.
const MAX_SKIPPED_PACKETS: usize = 16;

const MSG_DISCONNECT: u8 = 1;
const MSG_IGNORE: u8 = 2;
const MSG_DEBUG: u8 = 4;
const DISCONNECT_BY_APPLICATION: u32 = 11;

/// Reads a server's evidence over `stream` (already connected) by `deadline`. Whatever was
/// learned before a failure is kept; the failure says where and why it stopped.
pub async fn read_evidence<S>(stream: S, deadline: Instant) -> Evidence
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut evidence = Evidence::default();
    let mut conn = Conn {
        // A server's identification line and KEXINIT fit in 2 KiB (OpenSSH's KEXINIT is about
        // 1.1 KiB); a larger packet is read past the buffer. The default 8 KiB, zeroed for
        // each of thousands of conversations, showed in the profile.
        io: BufReader::with_capacity(READ_BUFFER_BYTES, stream),
        deadline,
        speaks_ssh: false,
    };
    if let Err(failure) = converse(&mut conn, &mut evidence).await {
        evidence.failure = Some(failure);
    }
    conn.goodbye().await;
    evidence
}

struct Conn<S> {
    io: BufReader<S>,
    deadline: Instant,
    /// Set once the server's identification line is read: only then is a DISCONNECT packet
    /// something the peer understands.
    speaks_ssh: bool,
}

async fn converse<S>(conn: &mut Conn<S>, evidence: &mut Evidence) -> Result<(), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hello = CLIENT_IDENT.to_vec();
    hello.extend_from_slice(b"\r\n");
    conn.write(&hello, Stage::Identification).await?;
    let server_ident = conn.read_ident().await?;
    evidence.banner = Some(crate::printable(&server_ident, MAX_IDENT_BYTES));
    if !(server_ident.starts_with(b"SSH-2.0-") || server_ident.starts_with(b"SSH-1.99-")) {
        return Err(Failure::NotSsh2);
    }
    conn.speaks_ssh = true;

    let server_kexinit = conn.read_payload(Stage::KexInit).await?;
    let theirs =
        KexInit::parse(&server_kexinit).map_err(|m| Failure::Malformed(Stage::KexInit, m))?;
    evidence.algorithms = Some(theirs.algorithms());
    let client_kexinit = kexinit::client_kexinit();
    // Our KEXINIT and, when a key exchange is in common, our KEX_ECDH_INIT go out in one
    // write (the server's KEXINIT is read, so the choice is known): one segment and one
    // wake-up of the server instead of two. Without one, our KEXINIT alone, as before.
    let chosen = choose(&theirs);
    let mut outgoing = packet::frame(&client_kexinit);
    if let Ok(chosen) = &chosen {
        outgoing.extend_from_slice(&packet::frame(&chosen.ours.init_payload()));
    }
    conn.write(&outgoing, Stage::KexInit).await?;
    let Chosen {
        kex,
        host_key_alg,
        ours,
    } = chosen?;
    evidence.kex = Some(kex.to_owned());

    let reply_payload = conn.read_payload(Stage::KeyExchange).await?;
    let malformed = |m| Failure::Malformed(Stage::KeyExchange, m);
    let reply = exchange::parse_reply(&reply_payload).map_err(malformed)?;
    let blob = hostkey::parse(reply.host_key).map_err(malformed)?;
    evidence.host_key = Some(blob.key.clone());
    let transcript = Transcript {
        client_ident: CLIENT_IDENT,
        server_ident: &server_ident,
        client_kexinit: &client_kexinit,
        server_kexinit: &server_kexinit,
    };
    let hash = ours.exchange_hash(&transcript, &reply).map_err(malformed)?;
    let checked = blob
        .check(host_key_alg, reply.signature, &hash)
        .map_err(malformed)?;
    evidence.signature = Some(checked);
    Ok(())
}

/// The key exchange and host-key algorithm agreed with the server, and our half of it.
struct Chosen {
    kex: &'static str,
    host_key_alg: &'static str,
    ours: Ephemeral,
}

fn choose(theirs: &KexInit) -> Result<Chosen, Failure> {
    let kex = kexinit::negotiate(CLIENT_KEX, &theirs.kex).ok_or(Failure::NoCommonKex)?;
    let host_key_alg =
        kexinit::negotiate(CLIENT_HOST_KEYS, &theirs.host_key).ok_or(Failure::NoCommonHostKey)?;
    let method = Method::from_name(kex).ok_or(Failure::NoCommonKex)?;
    let ours =
        Ephemeral::generate(method).map_err(|m| Failure::Malformed(Stage::KeyExchange, m))?;
    Ok(Chosen {
        kex,
        host_key_alg,
        ours,
    })
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn write(&mut self, bytes: &[u8], stage: Stage) -> Result<(), Failure> {
        match timeout_at(self.deadline, self.io.get_mut().write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure::Io(stage, e.kind())),
            Err(_) => Err(Failure::Timeout(stage)),
        }
    }

    /// The server's identification line, without CR LF, after at most
    /// [`MAX_PRE_IDENT_LINES`] other lines.
    async fn read_ident(&mut self) -> Result<Vec<u8>, Failure> {
        for _ in 0..=MAX_PRE_IDENT_LINES {
            let line = self.read_line(MAX_PRE_IDENT_LINE_BYTES).await?;
            if line.starts_with(b"SSH-") {
                if line.len() + 2 > MAX_IDENT_BYTES {
                    return Err(Failure::Malformed(
                        Stage::Identification,
                        Malformed::IdentTooLong,
                    ));
                }
                return Ok(line);
            }
        }
        Err(Failure::NotSsh2)
    }

    /// One line, at most `cap` bytes before its LF; the LF and a CR before it are dropped.
    async fn read_line(&mut self, cap: usize) -> Result<Vec<u8>, Failure> {
        let stage = Stage::Identification;
        let mut line = Vec::new();
        loop {
            let chunk = match timeout_at(self.deadline, self.io.fill_buf()).await {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => return Err(Failure::Io(stage, e.kind())),
                Err(_) => return Err(Failure::Timeout(stage)),
            };
            if chunk.is_empty() {
                return Err(Failure::Closed(stage));
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            if line.len() + take > cap + 2 {
                return Err(Failure::Malformed(stage, Malformed::IdentTooLong));
            }
            line.extend_from_slice(&chunk[..take]);
            self.io.consume(take);
            if done {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
        }
    }

    /// The next packet's payload that is neither IGNORE nor DEBUG. A DISCONNECT ends the
    /// conversation with the server's reason.
    async fn read_payload(&mut self, stage: Stage) -> Result<Vec<u8>, Failure> {
        for _ in 0..=MAX_SKIPPED_PACKETS {
            let payload = self.read_packet(stage).await?;
            match payload.first() {
                Some(&MSG_IGNORE | &MSG_DEBUG) => continue,
                Some(&MSG_DISCONNECT) => return Err(crate::disconnected(&payload)),
                _ => return Ok(payload),
            }
        }
        Err(Failure::Malformed(stage, Malformed::TooManyPackets))
    }

    async fn read_packet(&mut self, stage: Stage) -> Result<Vec<u8>, Failure> {
        let mut header = [0u8; 4];
        self.read_exact(&mut header, stage).await?;
        let len = packet::announced_len(header).map_err(|m| Failure::Malformed(stage, m))?;
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, stage).await?;
        packet::payload(&body)
            .map(<[u8]>::to_vec)
            .map_err(|m| Failure::Malformed(stage, m))
    }

    async fn read_exact(&mut self, buf: &mut [u8], stage: Stage) -> Result<(), Failure> {
        match timeout_at(self.deadline, self.io.read_exact(buf)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(Failure::Closed(stage))
            }
            Ok(Err(e)) => Err(Failure::Io(stage, e.kind())),
            Err(_) => Err(Failure::Timeout(stage)),
        }
    }

    /// SSH_MSG_DISCONNECT "by application", then the TCP close: the polite way out, tried
    /// within the same deadline and never waited on past it.
    async fn goodbye(&mut self) {
        if !self.speaks_ssh {
            let stream = self.io.get_mut();
            let _ = timeout_at(self.deadline, stream.shutdown()).await;
            return;
        }
        let mut w = crate::wire::Writer::new();
        w.byte(MSG_DISCONNECT)
            .u32(DISCONNECT_BY_APPLICATION)
            .string(b"evidence read; no login")
            .string(b"");
        let bye = packet::frame(&w.into_bytes());
        let stream = self.io.get_mut();
        let _ = timeout_at(self.deadline, async {
            stream.write_all(&bye).await?;
            stream.shutdown().await
        })
        .await;
    }
}
