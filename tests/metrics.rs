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
    #[cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]
    a_downed_vault_gets_one_call_per_cooldown().await;
}

/// Objects with slots in two vaults; the first is down. 10,000 concurrent opens make one
/// call to it (one probes, the others wait for what it learns, then pass it over), and
/// after the cool-down one more; the metrics count what the vaults received.
#[cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]
async fn a_downed_vault_gets_one_call_per_cooldown() {
    use support::keyvault_double::{lazy_key, quick_options, KeyVaultDouble};

    snapshotter();
    let (east, west) = (
        KeyVaultDouble::start("metrics-east"),
        KeyVaultDouble::start("metrics-west"),
    );
    let key = |vault: &KeyVaultDouble| -> Arc<dyn KeyWrapper> {
        vault.create_key("cmk", 2048);
        lazy_key(vault, "cmk", quick_options(&[vault]))
    };
    let (east_key, west_key) = (key(&east), key(&west));
    let sealer = Envelope::builder()
        .seal_with(Arc::clone(&east_key))
        .also_seal_with(Arc::clone(&west_key))
        .build()
        .expect("envelope");
    let mut objects = Vec::new();
    for i in 0..100u32 {
        objects.push(sealer.seal(&i.to_be_bytes(), b"").await.expect("seal"));
    }
    east.set_down(true);
    east.reset_calls();
    west.reset_calls();
    let unwraps = |vault: &KeyVaultDouble| {
        counter(
            "cmke_key_service_calls_total",
            &[("key", &vault.key_url("cmk")), ("operation", "unwrap")],
        )
    };
    let (east_before, west_before) = (unwraps(&east), unwraps(&west));

    // A reader that knows nothing of the vaults yet (its own failover state), with a
    // cool-down longer than the test; then one sharing that state with a short one.
    let state = cmk_envelope::wrap::FailoverState::new();
    let reader_with = |cooldown: std::time::Duration| {
        Arc::new(
            Envelope::builder()
                .open_with(Arc::clone(&east_key))
                .open_with(Arc::clone(&west_key))
                .failover_cooldown(cooldown)
                .failover_state(state.clone())
                .build()
                .expect("envelope"),
        )
    };
    let objects = Arc::new(objects);
    let open_all = |reader: Arc<Envelope>, count: usize| {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let (reader, objects) = (Arc::clone(&reader), Arc::clone(&objects));
                tokio::spawn(async move {
                    let opened = reader.open(&objects[i % 100], b"").await.expect("open");
                    assert_eq!(opened.plaintext(), &((i % 100) as u32).to_be_bytes());
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await.expect("task");
            }
        }
    };
    open_all(reader_with(std::time::Duration::from_secs(3600)), 10_000).await;
    assert_eq!(east.calls("unwrapKey"), 1, "one probe of the downed vault");
    assert_eq!(unwraps(&east) - east_before, 1, "the metrics count it");
    assert_eq!(west.calls("unwrapKey"), 10_000, "every open failed over");
    assert_eq!(unwraps(&west) - west_before, 10_000);
    assert_eq!(
        counter(
            "cmke_failover_passed_over_total",
            &[("service", "https://metrics-east.vault.azure.net")]
        ),
        9_999
    );

    // After the cool-down: one probe again, however many opens (100 take far less than
    // the 2 s cool-down).
    let cooldown = std::time::Duration::from_secs(2);
    tokio::time::sleep(cooldown).await;
    open_all(reader_with(cooldown), 100).await;
    assert_eq!(
        east.calls("unwrapKey"),
        2,
        "one more probe after the cool-down"
    );
    assert_eq!(unwraps(&east) - east_before, 2);
    assert_eq!(
        counter(
            "cmke_key_service_calls_total",
            &[("key", &east.key_url("cmk")), ("outcome", "unavailable")]
        ),
        2
    );
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
    let branch_cache = |event: &str| counter("cmke_branch_key_cache_total", &[("event", event)]);
    let (miss, coalesced, hit) = (
        branch_cache("miss"),
        branch_cache("coalesced"),
        branch_cache("hit"),
    );
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
    assert_eq!(branch_cache("miss") - miss, 1, "one record opened");
    assert_eq!(
        (branch_cache("coalesced") - coalesced) + (branch_cache("hit") - hit),
        9_999,
        "every other open waited for that load or found its key"
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
