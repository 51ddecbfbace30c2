//! The data-key cache: hits, age and size limits, one call per slot however many callers
//! ask at once, bounded calls in flight, failures never cached.

use crate::support;
use support::slow_key;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::crypto::Provider;
use cmk_envelope::wrap::{CacheConfig, CachingWrapper};
use cmk_envelope::{Envelope, Error, KeyWrapper};
use slow_key::SlowKey;

struct Setup {
    _keys: support::TempKeyring,
    slow: Arc<SlowKey>,
    cache: Arc<CachingWrapper>,
    envelope: Arc<Envelope>,
}

fn setup(config: CacheConfig) -> Setup {
    let keys = support::temp_keyring(Provider::default());
    let slow = SlowKey::new(keys.key.clone(), Duration::from_millis(20));
    let cache = Arc::new(CachingWrapper::new(slow.clone(), config));
    let envelope = Arc::new(
        Envelope::builder()
            .seal_with(cache.clone() as Arc<dyn KeyWrapper>)
            .build()
            .expect("envelope"),
    );
    Setup {
        _keys: keys,
        slow,
        cache,
        envelope,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn repeated_opens_of_one_object_unwrap_once() {
    let s = setup(CacheConfig::default());
    let rt = runtime();
    let sealed = rt.block_on(s.envelope.seal(b"row", b"")).expect("seal");
    for _ in 0..5 {
        assert_eq!(
            rt.block_on(s.envelope.open(&sealed, b""))
                .expect("open")
                .plaintext(),
            b"row"
        );
    }
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 1);
    assert_eq!(s.cache.stats().calls, 1);
    assert_eq!(s.cache.stats().hits, 4);
}

#[test]
fn keys_expire_after_max_age_and_clear_drops_them() {
    let s = setup(CacheConfig {
        // Generous, so that a loaded machine cannot expire a key between two opens.
        max_age: Duration::from_secs(2),
        ..CacheConfig::default()
    });
    let rt = runtime();
    let sealed = rt.block_on(s.envelope.seal(b"row", b"")).expect("seal");
    rt.block_on(s.envelope.open(&sealed, b"")).expect("open");
    rt.block_on(s.envelope.open(&sealed, b"")).expect("open");
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(2_200));
    rt.block_on(s.envelope.open(&sealed, b"")).expect("open");
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 2, "expired");
    s.cache.clear();
    assert!(s.cache.is_empty());
    rt.block_on(s.envelope.open(&sealed, b"")).expect("open");
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 3, "cleared");
}

#[test]
fn the_oldest_keys_are_evicted_beyond_max_entries() {
    let s = setup(CacheConfig {
        max_entries: 3,
        ..CacheConfig::default()
    });
    let rt = runtime();
    let objects: Vec<Vec<u8>> = (0..5)
        .map(|i| rt.block_on(s.envelope.seal(&[i], b"")).expect("seal"))
        .collect();
    for object in &objects {
        rt.block_on(s.envelope.open(object, b"")).expect("open");
    }
    assert_eq!(s.cache.len(), 3);
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 5);
    rt.block_on(s.envelope.open(&objects[4], b""))
        .expect("newest: cached");
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 5);
    rt.block_on(s.envelope.open(&objects[0], b""))
        .expect("oldest: evicted");
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 6);
}

#[test]
fn concurrent_opens_of_one_slot_make_one_call() {
    let s = setup(CacheConfig::default());
    let rt = runtime();
    let sealed = Arc::new(rt.block_on(s.envelope.seal(b"hot", b"")).expect("seal"));
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (envelope, sealed) = (s.envelope.clone(), sealed.clone());
            tasks.spawn(async move {
                envelope
                    .open(&sealed, b"")
                    .await
                    .map(|o| o.plaintext().to_vec())
            });
        }
        while let Some(result) = tasks.join_next().await {
            assert_eq!(result.expect("task").expect("open"), b"hot");
        }
    });
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn calls_in_flight_are_bounded_yet_overlap() {
    let s = setup(CacheConfig {
        max_concurrent_unwraps: 4,
        ..CacheConfig::default()
    });
    let rt = runtime();
    let objects: Vec<Arc<Vec<u8>>> = (0..24)
        .map(|i| Arc::new(rt.block_on(s.envelope.seal(&[i], b"")).expect("seal")))
        .collect();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for object in &objects {
            let (envelope, object) = (s.envelope.clone(), object.clone());
            tasks.spawn(async move { envelope.open(&object, b"").await.map(drop) });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("task").expect("open");
        }
    });
    assert_eq!(s.slow.calls.load(Ordering::SeqCst), 24);
    let peak = s.slow.peak_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak in flight {peak}");
}

#[test]
fn failures_are_not_cached_and_a_revocation_bites_once_keys_expire() {
    let s = setup(CacheConfig {
        max_age: Duration::from_secs(2),
        ..CacheConfig::default()
    });
    let rt = runtime();
    let sealed = rt.block_on(s.envelope.seal(b"row", b"")).expect("seal");
    let fresh = rt.block_on(s.envelope.seal(b"other", b"")).expect("seal");
    rt.block_on(s.envelope.open(&sealed, b"")).expect("open");

    s.slow.revoked.store(true, Ordering::SeqCst);
    // Already cached: still opens until it expires (the documented bound).
    rt.block_on(s.envelope.open(&sealed, b"")).expect("cached");
    // Never opened: the revocation bites at once, and the failure is not remembered.
    assert!(matches!(
        rt.block_on(s.envelope.open(&fresh, b"")),
        Err(Error::AccessDenied { .. })
    ));
    std::thread::sleep(Duration::from_millis(2_200));
    assert!(matches!(
        rt.block_on(s.envelope.open(&sealed, b"")),
        Err(Error::AccessDenied { .. })
    ));
    s.slow.revoked.store(false, Ordering::SeqCst);
    rt.block_on(s.envelope.open(&fresh, b"")).expect("restored");
}
