//! CPU of SRTP per packet: protecting what zentrale sends and checking and
//! decrypting what a phone sends, on a 20 ms G.711 packet (12-byte header,
//! 160 bytes of payload, 80-bit tag), plus the per-leg key derivation.
//!
//! `cargo bench --bench srtp`; figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use zentrale::media::srtp::{Context, MasterKey, Suite};

fn packet(seq: u16) -> [u8; 12 + 160 + 10] {
    let mut p = [0u8; 182];
    p[0] = 0x80;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    for (i, b) in p[12..172].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

fn benches(c: &mut Criterion) {
    let key = MasterKey::random(&mut zentrale::rng::SeededRng::from_u64(1));
    let suite = Suite::AesCm128HmacSha1_80;
    c.bench_function("srtp_protect_20ms_g711", |b| {
        let mut tx = Context::new(suite, &key);
        let mut seq = 0u16;
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let mut p = packet(seq);
            black_box(tx.protect(&mut p, 172));
        })
    });
    // Protected packets in order, so each one is fresh for the receiver.
    let mut tx = Context::new(suite, &key);
    let protected: Vec<[u8; 182]> = (0..u16::MAX)
        .map(|seq| {
            let mut p = packet(seq);
            tx.protect(&mut p, 172).unwrap();
            p
        })
        .collect();
    c.bench_function("srtp_unprotect_20ms_g711", |b| {
        let mut rx = Context::new(suite, &key);
        let mut i = 0usize;
        b.iter(|| {
            if i == protected.len() {
                rx = Context::new(suite, &key);
                i = 0;
            }
            let mut p = protected[i];
            i += 1;
            black_box(rx.unprotect(&mut p).unwrap());
        })
    });
    c.bench_function("srtp_context_new", |b| {
        b.iter(|| black_box(Context::new(suite, &key)))
    });
}

criterion_group! {
    name = srtp;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(srtp);
