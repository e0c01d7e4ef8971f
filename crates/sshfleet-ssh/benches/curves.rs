//! The CPU of one evidence conversation's curve arithmetic, the way the client did it and the
//! way it does it now (`cargo bench -p sshfleet-ssh --bench curves`):
//!
//! - `ring_ephemeral`: a fresh X25519 key from ring and its agreement with the server's value
//!   (ring's keys are single-use, so every conversation paid both);
//! - `kept_key`: the agreement alone with a kept x25519-dalek secret (exchange.rs keeps one for
//!   1,024 exchanges a thread);
//! - `ed25519_verify`: ring's check of the host key's signature, which every conversation
//!   with an Ed25519 host key pays, kept or not.

#![expect(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use criterion::{criterion_group, criterion_main, Criterion};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use std::hint::black_box;

fn curves(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let server = EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("key");
    let server_public: [u8; 32] = server
        .compute_public_key()
        .expect("public")
        .as_ref()
        .try_into()
        .expect("32 bytes");
    let mut group = c.benchmark_group("curves");
    group.bench_function("ring_ephemeral", |b| {
        b.iter(|| {
            let ours = EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("key");
            black_box(ours.compute_public_key().expect("public"));
            let peer = UnparsedPublicKey::new(&agreement::X25519, &server_public);
            agreement::agree_ephemeral(ours, &peer, |shared| black_box(shared[0]))
                .expect("agreement")
        })
    });
    let kept = x25519_dalek::StaticSecret::from([7u8; 32]);
    let peer = x25519_dalek::PublicKey::from(server_public);
    group.bench_function("kept_key", |b| {
        b.iter(|| black_box(kept.diffie_hellman(&peer).to_bytes()))
    });
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("pkcs8");
    let host = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("host key");
    let hash = [42u8; 32];
    let sig = host.sign(&hash);
    let public = host.public_key().as_ref().to_vec();
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| {
            signature::UnparsedPublicKey::new(&signature::ED25519, &public)
                .verify(black_box(&hash), sig.as_ref())
                .expect("verified")
        })
    });
    group.finish();
}

criterion_group!(benches, curves);
criterion_main!(benches);
