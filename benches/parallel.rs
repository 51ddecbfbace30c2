//! A 64 MiB object sealed and opened on one thread and on two, into a separate buffer and in
//! place, beside raw AES-256-GCM over the same bytes, in one run. `python3 benches/ratios.py` prints the ratios.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use cmk_envelope::crypto::Provider;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: usize = 64 << 20;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("keyring");
    keyring.create_key("bench").expect("key");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("bench").expect("load"));
    let envelope = |threads: usize| {
        Envelope::builder()
            .seal_with(Arc::clone(&key))
            .provider(Provider::aws_lc())
            .max_threads(threads)
            .build()
            .expect("envelope")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let plaintext = vec![0x42u8; SIZE];
    let aad = b"bench";

    let mut group = c.benchmark_group("64MiB");
    group
        .throughput(Throughput::Bytes(SIZE as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    group.bench_function("aes_gcm_raw", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            raw.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&aad[..]),
                black_box(&mut buf),
            )
            .map(|t| t.as_ref()[0])
        })
    });
    // Raw AES-256-GCM on both cores at once, each over half the buffer: what this machine's
    // cores and memory allow two threads, the ceiling for the envelope's two-thread runs.
    group.bench_function("aes_gcm_raw_2t", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            let (left, right) = black_box(&mut buf).split_at_mut(SIZE / 2);
            let seal = |half: &mut [u8]| {
                raw.seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::from(&aad[..]),
                    half,
                )
                .map(|t| t.as_ref()[0])
            };
            rayon::join(|| seal(left), || seal(right))
        })
    });
    // The same cipher reading one buffer and writing another, as `seal_into` must: the
    // reference for what a separate output buffer costs on this machine's memory.
    group.bench_function("aes_gcm_raw_out_of_place", |b| {
        let mut out = vec![0u8; SIZE];
        let mut tag = [0u8; 16];
        b.iter(|| {
            raw.seal_out_of_place_scatter(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&aad[..]),
                black_box(&plaintext),
                &mut out,
                &[],
                &mut tag,
            )
            .map(|()| tag[0])
        })
    });
    for threads in [1usize, 2] {
        let e = envelope(threads);
        group.bench_function(format!("seal_into_{threads}t"), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                runtime
                    .block_on(e.seal_into(black_box(&plaintext), aad, &mut out))
                    .map(|()| out.len())
            })
        });
        let sealed = runtime.block_on(e.seal(&plaintext, aad)).expect("seal");
        group.bench_function(format!("open_into_{threads}t"), |b| {
            let mut out = Vec::new();
            b.iter(|| {
                runtime
                    .block_on(e.open_into(black_box(&sealed), aad, &mut out))
                    .map(|_| out.len())
            })
        });
        // In place: the buffer is sealed (or opened) where it lies. Sealing re-seals the
        // first 64 MiB each time (the contents do not matter for speed).
        group.bench_function(format!("seal_in_place_{threads}t"), |b| {
            let mut buffer = plaintext.clone();
            buffer.reserve(sealed.len() - SIZE);
            b.iter(|| {
                buffer.truncate(SIZE);
                runtime
                    .block_on(e.seal_in_place(black_box(&mut buffer), aad))
                    .map(|()| buffer.len())
            })
        });
        group.bench_function(format!("open_in_place_{threads}t"), |b| {
            let mut buffer = plaintext.clone();
            buffer.reserve(sealed.len() - SIZE);
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    // A fresh envelope each time, sealed outside the timed part.
                    runtime
                        .block_on(e.seal_in_place(&mut buffer, aad))
                        .expect("seal");
                    let start = std::time::Instant::now();
                    let opened = runtime.block_on(e.open_in_place(black_box(&mut buffer), aad));
                    total += start.elapsed();
                    assert!(opened.is_ok() && buffer.len() == SIZE);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
