//! Hostile and broken servers: each ends as evidence with a failure, within the deadline,
//! without reading or allocating past the caps. Time is paused: a server that trickles bytes
//! costs the test nothing.

use std::time::Duration;

use sshfleet_ssh::{read_evidence, Evidence, Failure, Malformed, Stage};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(5);

/// Runs `server` against the client on an in-memory pipe; returns the evidence and how long
/// (in paused time) the client took.
async fn against<F, Fut>(server: F) -> (Evidence, Duration)
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(server(server_end));
    let start = Instant::now();
    let evidence = read_evidence(client, start + DEADLINE).await;
    let took = start.elapsed();
    task.abort();
    (evidence, took)
}

fn packet(payload: &[u8]) -> Vec<u8> {
    let padding = 8 - (5 + payload.len()) % 8 + 8;
    let len = u32::try_from(1 + payload.len() + padding).unwrap_or(u32::MAX);
    let mut p = len.to_be_bytes().to_vec();
    p.push(u8::try_from(padding).unwrap_or(0));
    p.extend_from_slice(payload);
    p.resize(p.len() + padding, 0);
    p
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out_at_the_deadline() {
    let (e, took) = against(|s| async move {
        let _keep = s;
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(e.failure, Some(Failure::Timeout(Stage::Identification)));
    assert!(took <= DEADLINE + Duration::from_millis(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_trickling_server_ends_at_the_deadline_with_what_it_said() {
    let (e, took) = against(|mut s| async move {
        for b in b"SSH-2.0-Slow\r\n".iter().chain(std::iter::repeat(&0u8)) {
            if s.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert_eq!(e.banner.as_deref(), Some("SSH-2.0-Slow"));
    assert_eq!(e.failure, Some(Failure::Timeout(Stage::KexInit)));
    assert!(took <= DEADLINE + Duration::from_millis(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_server_that_is_not_ssh_is_said_so() {
    let (e, _) = against(|mut s| async move {
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        let _ = s.write_all(&b"junk\r\n".repeat(40)).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(e.failure, Some(Failure::NotSsh2));
    assert_eq!(e.banner, None);
}

#[tokio::test(start_paused = true)]
async fn an_endless_line_is_cut_at_the_cap() {
    let (e, _) = against(|mut s| async move {
        let _ = s.write_all(&vec![b'A'; 60_000]).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(
        e.failure,
        Some(Failure::Malformed(
            Stage::Identification,
            Malformed::IdentTooLong
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn a_huge_packet_length_is_refused_before_it_is_read() {
    let (e, _) = against(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-Huge\r\n").await;
        let _ = s.write_all(&0x7fff_ffffu32.to_be_bytes()).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(
        e.failure,
        Some(Failure::Malformed(Stage::KexInit, Malformed::PacketTooLong))
    );
}

#[tokio::test(start_paused = true)]
async fn a_name_list_longer_than_its_packet_is_truncated() {
    let (e, _) = against(|mut s| async move {
        let mut kexinit = vec![20u8];
        kexinit.extend_from_slice(&[0; 16]);
        kexinit.extend_from_slice(&500u32.to_be_bytes());
        kexinit.extend_from_slice(b"curve25519-sha256");
        let _ = s.write_all(b"SSH-2.0-Liar\r\n").await;
        let _ = s.write_all(&packet(&kexinit)).await;
        std::future::pending::<()>().await;
    })
    .await;
    assert!(
        matches!(
            e.failure,
            Some(Failure::Malformed(Stage::KexInit, Malformed::Truncated(_)))
        ),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_is_reported_with_an_inert_reason() {
    let (e, _) = against(|mut s| async move {
        let mut bye = vec![1u8];
        bye.extend_from_slice(&2u32.to_be_bytes());
        let reason = b"go away \x1b[2J<script>";
        bye.extend_from_slice(&u32::try_from(reason.len()).unwrap_or(0).to_be_bytes());
        bye.extend_from_slice(reason);
        bye.extend_from_slice(&0u32.to_be_bytes());
        let _ = s.write_all(b"SSH-2.0-Rude\r\n").await;
        let _ = s.write_all(&packet(&bye)).await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    })
    .await;
    assert_eq!(
        e.failure,
        Some(Failure::Disconnected {
            code: 2,
            description: "go away ?[2J<script>".to_owned()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn endless_ignore_packets_are_cut_off() {
    let (e, _) = against(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-Chatty\r\n").await;
        let ignore = packet(&[2, 0, 0, 0, 0]);
        for _ in 0..1000 {
            if s.write_all(&ignore).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    })
    .await;
    assert_eq!(
        e.failure,
        Some(Failure::Malformed(
            Stage::KexInit,
            Malformed::TooManyPackets
        ))
    );
}

fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A server that offers curve25519 and Ed25519, then answers our exchange with
/// `server_public` as its public value (and an Ed25519 host key and a signature that are
/// never reached).
async fn answers_with_public_value(mut s: DuplexStream, server_public: Vec<u8>) {
    let mut kexinit = vec![20u8];
    kexinit.extend_from_slice(&[0; 16]);
    for list in [
        &b"curve25519-sha256"[..],
        b"ssh-ed25519",
        b"aes128-ctr",
        b"aes128-ctr",
        b"hmac-sha2-256",
        b"hmac-sha2-256",
        b"none",
        b"none",
        b"",
        b"",
    ] {
        string(&mut kexinit, list);
    }
    kexinit.extend_from_slice(&[0, 0, 0, 0, 0]);
    let _ = s.write_all(b"SSH-2.0-LowOrder\r\n").await;
    let _ = s.write_all(&packet(&kexinit)).await;
    // Our identification line, KEXINIT and KEX_ECDH_INIT arrive; the reply follows them.
    let mut seen = vec![0u8; 4096];
    let _ = s.read(&mut seen).await;
    let mut host_key = Vec::new();
    string(&mut host_key, b"ssh-ed25519");
    string(&mut host_key, &[9; 32]);
    let mut signature = Vec::new();
    string(&mut signature, b"ssh-ed25519");
    string(&mut signature, &[1; 64]);
    let mut reply = vec![31u8];
    string(&mut reply, &host_key);
    string(&mut reply, &server_public);
    string(&mut reply, &signature);
    let _ = s.write_all(&packet(&reply)).await;
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink).await;
}

/// A low-order point makes the X25519 shared secret all zeros, which RFC 8731 §3 says to
/// refuse; a value of the wrong length is no point at all. Either ends the exchange as a
/// malformed server public key, with the host key it showed kept as evidence.
#[tokio::test(start_paused = true)]
async fn a_low_order_or_misshapen_server_public_value_is_refused() {
    // The identity (u = 0) and a point of order 8 (from RFC 7748's list of low-order points).
    let mut order_eight = [0u8; 32];
    order_eight[..8].copy_from_slice(&[0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae]);
    order_eight[8..16].copy_from_slice(&[0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a]);
    order_eight[16..24].copy_from_slice(&[0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd]);
    order_eight[24..].copy_from_slice(&[0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00]);
    for value in [vec![0u8; 32], order_eight.to_vec(), vec![5u8; 31]] {
        let (e, took) = against(move |s| answers_with_public_value(s, value)).await;
        assert_eq!(
            e.failure,
            Some(Failure::Malformed(
                Stage::KeyExchange,
                Malformed::BadServerPublicKey
            ))
        );
        assert!(e.host_key.is_some(), "the key shown is kept: {e:?}");
        assert_eq!(e.signature, None);
        assert!(took < DEADLINE, "{took:?}");
    }
}
