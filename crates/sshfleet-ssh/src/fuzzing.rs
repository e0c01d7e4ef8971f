//! Fuzz entry points: arbitrary bytes as a server's side of the conversation, and as a
//! KEXINIT payload. They panic only on a broken invariant, never on bad input.

use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use crate::{read_evidence, KexInit, SignatureCheck};

/// `data` is everything a server sends, then it closes. The conversation ends (no hang: a
/// closed stream ends every read), whatever it shows is printable, and a verified signature
/// always comes with the key it verified.
pub fn server_bytes(data: &[u8]) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    let evidence = rt.block_on(async {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let bytes = data.to_vec();
        let feeding = tokio::spawn(async move {
            let _ = server.write_all(&bytes).await;
            // Dropping `server` closes the stream after the bytes.
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let evidence = read_evidence(client, deadline).await;
        feeding.abort();
        evidence
    });
    if let Some(banner) = &evidence.banner {
        assert!(
            banner.len() <= crate::MAX_IDENT_BYTES,
            "a banner over 255 bytes"
        );
        assert!(
            banner.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "an unprintable banner {banner:?}"
        );
    }
    if evidence.signature == Some(SignatureCheck::Verified) {
        assert!(evidence.host_key.is_some(), "verified without a key");
    }
    assert!(
        evidence.failure.is_some() || evidence.signature.is_some(),
        "a conversation that neither finished nor failed"
    );
}

/// `data` is a KEXINIT payload: every name it yields is printable, and its report lists
/// hold each name once.
pub fn kexinit(data: &[u8]) {
    let Ok(parsed) = KexInit::parse(data) else {
        return;
    };
    let lists = parsed.algorithms();
    for list in [
        &lists.kex,
        &lists.host_key,
        &lists.ciphers,
        &lists.macs,
        &lists.compression,
    ] {
        for name in list {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()),
                "an unprintable algorithm name {name:?}"
            );
        }
    }
    for list in [&lists.ciphers, &lists.macs, &lists.compression] {
        let mut seen = std::collections::HashSet::new();
        assert!(list.iter().all(|n| seen.insert(n)), "a name listed twice");
    }
}
