//! Feature `metrics`: what a service's own recorder sees. A test binary of its own, with the
//! process-wide recorder installed once, so no other test's calls are counted.
#![cfg(feature = "metrics")]

#[path = "support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex, OnceLock};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
use cmk_envelope::software::Keyring;
use cmk_envelope::wrap::{CacheConfig, CachingWrapper};
use cmk_envelope::{Envelope, KeyWrapper};

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this process");
        snapshotter
    })
}

/// Every counter series seen so far, with its running total: a snapshot drains the
/// recorder, so each one is added here before anything is read.
type Totals = Vec<(String, Vec<(String, String)>, u64)>;

/// The sum of counter `name` over the series whose labels include all of `labels`.
fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    static TOTALS: Mutex<Totals> = Mutex::new(Vec::new());
    let mut totals = TOTALS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (key, _, _, value) in snapshotter().snapshot().into_vec() {
        let DebugValue::Counter(n) = value else {
            continue;
        };
        let series_name = key.key().name().to_owned();
        let series_labels: Vec<(String, String)> = key
            .key()
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        match totals
            .iter_mut()
            .find(|(n, l, _)| *n == series_name && *l == series_labels)
        {
            Some((_, _, total)) => *total += n,
            None => totals.push((series_name, series_labels, n)),
        }
    }
    totals
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, total)| total)
        .sum()
}

/// One test: the recorder is the process's, and what one part counts must not be seen
/// by another running at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_services_recorder_sees() {
    ten_thousand_concurrent_branch_opens_make_one_cmk_unwrap().await;
    the_data_key_cache_counts_misses_coalesced_waits_and_hits().await;
}

async fn ten_thousand_concurrent_branch_opens_make_one_cmk_unwrap() {
    snapshotter();
    let dir = tempfile::tempdir().expect("dir");
    let keyring = Keyring::create(dir.path().join("keys")).expect("keyring");
    keyring.create_key("metrics-cmk").expect("cmk");
    let cmk: Arc<dyn KeyWrapper> = Arc::new(keyring.key("metrics-cmk").expect("cmk"));
    let store = Arc::new(DirectoryStore::create(dir.path().join("branches")).expect("store"));
    let writer = BranchWrapper::create(store.clone(), "orders", cmk.clone())
        .await
        .expect("branch");
    let sealer = Envelope::builder()
        .seal_with(Arc::new(writer))
        .build()
        .expect("envelope");
    let mut objects = Vec::new();
    for i in 0..100u32 {
        objects.push(sealer.seal(&i.to_be_bytes(), b"").await.expect("seal"));
    }
    let cmk_unwraps = [
        ("backend", "software"),
        ("key", "local:metrics-cmk"),
        ("operation", "unwrap"),
        ("outcome", "ok"),
    ];
    let before = counter("cmke_key_service_calls_total", &cmk_unwraps);
    let opens_before = counter("cmke_objects_total", &[("operation", "open")]);

    // A reader that has never seen the branch key: 10,000 opens at once.
    let reader = Arc::new(
        Envelope::builder()
            .open_with(Arc::new(
                BranchWrapper::new(store, "orders", cmk).expect("branch"),
            ))
            .build()
            .expect("envelope"),
    );
    let objects = Arc::new(objects);
    let mut tasks = Vec::new();
    for i in 0..10_000usize {
        let (reader, objects) = (Arc::clone(&reader), Arc::clone(&objects));
        tasks.push(tokio::spawn(async move {
            let opened = reader.open(&objects[i % 100], b"").await.expect("open");
            assert_eq!(opened.plaintext(), &((i % 100) as u32).to_be_bytes());
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        counter("cmke_key_service_calls_total", &cmk_unwraps) - before,
        1,
        "one CMK unwrap for the branch key, whatever the number of opens"
    );
    // Every envelope opened counts, the branch key's record (an envelope under the CMK,
    // opened once) with the 10,000 objects.
    assert_eq!(
        counter("cmke_objects_total", &[("operation", "open")]) - opens_before,
        10_001
    );
}

async fn the_data_key_cache_counts_misses_coalesced_waits_and_hits() {
    snapshotter();
    let t = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    let sealer = support::envelope_for(&t.key, cmk_envelope::crypto::Provider::default(), 65536);
    let sealed = sealer.seal(b"cached", b"").await.expect("seal");
    let cached = Arc::new(CachingWrapper::new(t.key.clone(), CacheConfig::default()));
    let reader = Arc::new(
        Envelope::builder()
            .open_with(cached)
            .build()
            .expect("envelope"),
    );
    let count = |event: &str| counter("cmke_data_key_cache_total", &[("event", event)]);
    let (miss, coalesced, hit) = (count("miss"), count("coalesced"), count("hit"));
    let (a, b) = tokio::join!(reader.open(&sealed, b""), reader.open(&sealed, b""));
    a.expect("a");
    b.expect("b");
    reader.open(&sealed, b"").await.expect("c");
    assert_eq!(count("miss") - miss, 1, "one call to the key");
    assert_eq!(
        (count("coalesced") - coalesced) + (count("hit") - hit),
        2,
        "the other two opens waited for it or found it"
    );
    assert!(count("hit") - hit >= 1, "the last open finds it");
}
