//! Opening objects whose keys live behind a 20 ms round trip (a key service such as Key
//! Vault), with and without the data-key cache.
//!
//! The figures to read are ratios to the injected round trip, measured in the same run:
//! - `repeat/16 opens, no cache` ≈ 16 round trips; `repeat/16 opens, cached` ≈ 0 (after
//!   the first, every open is a cache hit);
//! - `many/64 objects, 1 in flight` ≈ 64 round trips; `many/64 objects, 8 in flight` ≈ 8
//!   (64 / 8), the bounded concurrency at work.
//!
//! `python3 benches/ratios.py` prints them.

#[path = "../tests/support/slow_key.rs"]
mod slow_key;

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::software::Keyring;
use cmk_envelope::wrap::{CacheConfig, CachingWrapper};
use cmk_envelope::{Envelope, KeyWrapper};
use criterion::{criterion_group, criterion_main, Criterion};
use slow_key::SlowKey;

const ROUND_TRIP: Duration = Duration::from_millis(20);

fn envelope_over(wrapper: Arc<dyn KeyWrapper>) -> Arc<Envelope> {
    Arc::new(
        Envelope::builder()
            .seal_with(wrapper)
            .build()
            .expect("envelope"),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("keyring");
    keyring.create_key("orders").expect("key");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
    let slow: Arc<dyn KeyWrapper> = SlowKey::new(key, ROUND_TRIP);

    let mut group = c.benchmark_group("round_trip");
    group.sample_size(10);
    group.bench_function("one sleep", |b| {
        b.iter(|| rt.block_on(async { tokio::time::sleep(ROUND_TRIP).await }))
    });
    group.finish();

    let uncached = envelope_over(slow.clone());
    let cached = envelope_over(Arc::new(CachingWrapper::new(
        slow.clone(),
        CacheConfig::default(),
    )));
    let sealed = rt.block_on(uncached.seal(b"row", b"")).expect("seal");
    let mut group = c.benchmark_group("repeat");
    group.sample_size(10);
    for (name, envelope) in [
        ("16 opens, no cache", &uncached),
        ("16 opens, cached", &cached),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..16 {
                    rt.block_on(envelope.open(&sealed, b"")).expect("open");
                }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("many");
    group.sample_size(10);
    for in_flight in [1usize, 8] {
        // A fresh cache for every iteration, so that each object costs a round trip.
        let objects: Vec<Arc<Vec<u8>>> = (0..64u8)
            .map(|i| Arc::new(rt.block_on(uncached.seal(&[i], b"")).expect("seal")))
            .collect();
        group.bench_function(format!("64 objects, {in_flight} in flight"), |b| {
            b.iter(|| {
                let envelope = envelope_over(Arc::new(CachingWrapper::new(
                    slow.clone(),
                    CacheConfig {
                        max_concurrent_unwraps: in_flight,
                        ..CacheConfig::default()
                    },
                )));
                rt.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for object in &objects {
                        let (envelope, object) = (envelope.clone(), object.clone());
                        tasks.spawn(async move { envelope.open(&object, b"").await.map(drop) });
                    }
                    while let Some(done) = tasks.join_next().await {
                        done.expect("task").expect("open");
                    }
                });
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
