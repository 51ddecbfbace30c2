//! Soak: tasks seal and open without pause, for a bounded time, through two vaults of the
//! Key Vault double (two regions: every object has a slot under each), while the doubles
//! inject throttling (429 with `Retry-After`), bursts of 503 and slow answers, and the
//! first vault goes down for a quarter of the run (from 10% to 35%).
//!
//! Passes when:
//! - no seal or open fails (the second vault always answers, within the SDK's retries);
//! - the downed vault gets, per key, the calls already under way when it went down (at
//!   most one per task) and then at most one per failover cool-down;
//! - resident memory is flat: the mean of the last quarter's samples is within 10% of the
//!   second quarter's;
//! - the crate's metrics count exactly the calls each double received, and one back-off
//!   pause per 429 the doubles sent.
//!
//! `CMKE_SOAK_SECONDS` sets the length (default 100, the test command's CI run; at least
//! 60);
//! `benches/soak.sh` runs it longer in release mode and prints the same report: operations
//! per second, p50/p99 latency, calls per vault.
#![cfg(all(
    feature = "metrics",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

#[path = "support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cmk_envelope::wrap::KeyOpsLimit;
use cmk_envelope::{Envelope, KeyWrapper};
use support::keyvault_double::{lazy_key, quick_options, Chaos, KeyVaultDouble};

const DEFAULT_SECONDS: u64 = 100;
/// Shorter runs end before the allocator's high-water mark settles: the second quarter
/// would still be warming up.
const MIN_SECONDS: u64 = 60;
const TASKS: usize = 8;
const COOLDOWN: Duration = Duration::from_secs(5);
/// Calls issued before the first failure from the downed vault came back arrive within
/// this long of it going down (the SDK's retries of a 503 take well under a second; a
/// throttling pause, one).
const SETTLE: Duration = Duration::from_secs(3);
/// Objects each task keeps to open again (memory stays bounded).
const KEPT: usize = 8;

// ---- a recorder that counts (the run's own; histograms and gauges are not kept) ----

type Series = Vec<(metrics::Key, Arc<AtomicU64>)>;

#[derive(Default)]
struct Counting {
    counters: Mutex<Series>,
}

impl metrics::Recorder for Counting {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let value = match counters.iter().find(|(k, _)| k == key) {
            Some((_, value)) => Arc::clone(value),
            None => {
                let value = Arc::new(AtomicU64::new(0));
                counters.push((key.clone(), Arc::clone(&value)));
                value
            }
        };
        metrics::Counter::from_arc(value)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

fn recorder() -> &'static Counting {
    static RECORDER: OnceLock<&'static Counting> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Counting = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("the only recorder of this process");
        recorder
    })
}

/// The sum of counter `name` over the series whose labels include all of `labels`.
fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    let counters = recorder()
        .counters
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    counters
        .iter()
        .filter(|(key, _)| {
            key.name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, value)| value.load(Ordering::Relaxed))
        .sum()
}

// ---- latency, in fixed buckets (no growth however long the run) ----

/// 16 buckets per power of two of microseconds, up to 2^26 µs (67 s): within 4.5%.
struct Latencies {
    buckets: Vec<AtomicU64>,
}

impl Latencies {
    const PER_OCTAVE: usize = 16;

    fn new() -> Self {
        Self {
            buckets: (0..27 * Self::PER_OCTAVE)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn index(micros: u64) -> usize {
        let micros = micros.max(1) as f64;
        ((micros.log2() * Self::PER_OCTAVE as f64) as usize).min(27 * Self::PER_OCTAVE - 1)
    }

    fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets[Self::index(micros)].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper edge of the bucket holding quantile `q`, in milliseconds.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return 2f64.powf((i + 1) as f64 / Self::PER_OCTAVE as f64) / 1000.0;
            }
        }
        f64::NAN
    }
}

// ---- resident memory ----

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn mean(samples: &[u64]) -> f64 {
    samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64
}

// ---- the run ----

fn plaintext(task: usize, index: u64) -> Vec<u8> {
    let line = format!("task {task} object {index};");
    line.repeat(8 + (index % 7) as usize * 20).into_bytes()
}

fn vault_key(vault: &KeyVaultDouble) -> Arc<dyn KeyWrapper> {
    let options = quick_options(&[vault]).max_key_ops(KeyOpsLimit::unlimited());
    lazy_key(vault, "cmk", options)
}

#[derive(Default)]
struct Tally {
    seals: u64,
    opens: u64,
    failures: Vec<String>,
}

async fn work(
    task: usize,
    envelope: Arc<Envelope>,
    deadline: Instant,
    latencies: Arc<Latencies>,
) -> Tally {
    let mut tally = Tally::default();
    let mut kept: VecDeque<(u64, Vec<u8>)> = VecDeque::with_capacity(KEPT);
    let aad = format!("task={task}");
    let mut index = 0u64;
    while Instant::now() < deadline {
        index += 1;
        let started = Instant::now();
        match envelope.seal(&plaintext(task, index), aad.as_bytes()).await {
            Ok(sealed) => {
                latencies.record(started.elapsed());
                tally.seals += 1;
                if kept.len() == KEPT {
                    kept.pop_front();
                }
                kept.push_back((index, sealed));
            }
            Err(e) => tally.failures.push(format!("seal {index}: {e}")),
        }
        // Open the newest and, every other time, an older one.
        for pick in [
            kept.len().saturating_sub(1),
            (index as usize) % kept.len().max(1),
        ]
        .into_iter()
        .take(1 + (index % 2) as usize)
        {
            let Some((which, sealed)) = kept.get(pick) else {
                continue;
            };
            let started = Instant::now();
            match envelope.open(sealed, aad.as_bytes()).await {
                Ok(opened) if opened.plaintext() == plaintext(task, *which).as_slice() => {
                    latencies.record(started.elapsed());
                    tally.opens += 1;
                }
                Ok(_) => tally
                    .failures
                    .push(format!("open {which}: wrong plaintext")),
                Err(e) => tally.failures.push(format!("open {which}: {e}")),
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_two_vaults_with_faults_and_one_going_down() {
    recorder();
    let seconds = std::env::var("CMKE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(DEFAULT_SECONDS)
        .max(MIN_SECONDS);
    let run = Duration::from_secs(seconds);

    let (east, west) = (
        KeyVaultDouble::start("soak-east"),
        KeyVaultDouble::start("soak-west"),
    );
    for vault in [&east, &west] {
        vault.create_key("cmk", 2048);
        vault.keep_log(false);
    }
    let slow_for = Duration::from_millis(250);
    // The first vault also has bursts longer than the SDK's retries: opens fail over.
    east.set_chaos(Chaos {
        throttle_one_in: 2000,
        burst_one_in: 500,
        burst_len: 6,
        slow_one_in: 150,
        slow_for,
        seed: 0x9e37_79b9_7f4a_7c15,
    });
    // The second's bursts are shorter than the retries: it always answers in the end.
    west.set_chaos(Chaos {
        throttle_one_in: 3000,
        burst_one_in: 500,
        burst_len: 2,
        slow_one_in: 150,
        slow_for,
        seed: 0xd1b5_4a32_d192_ed03,
    });
    let envelope = Arc::new(
        Envelope::builder()
            .seal_with(vault_key(&east))
            .also_seal_with(vault_key(&west))
            .failover_cooldown(COOLDOWN)
            .build()
            .expect("envelope"),
    );

    let started = Instant::now();
    let deadline = started + run;
    let latencies = Arc::new(Latencies::new());

    // Resident memory, sampled four times a second into a buffer sized for the run.
    let sampler = {
        let mut samples = Vec::with_capacity(seconds as usize * 4 + 8);
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                samples.push((started.elapsed(), rss_kib()));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(work(
                task,
                Arc::clone(&envelope),
                deadline,
                Arc::clone(&latencies),
            ))
        })
        .collect();

    // The first vault is down from 10% to 35% of the run: the allocator's high-water mark
    // after the change of load (every open to the second vault) is reached before the
    // second quarter, which the last is compared with.
    tokio::time::sleep(run / 10).await;
    east.set_down(true);
    let down_at = Instant::now();
    tokio::time::sleep(run / 4).await;
    east.set_down(false);
    let up_at = Instant::now();

    let mut tally = Tally::default();
    for task in tasks {
        let one = task.await.expect("task");
        tally.seals += one.seals;
        tally.opens += one.opens;
        tally.failures.extend(one.failures);
    }
    let elapsed = started.elapsed();
    let samples = sampler.join().expect("sampler");

    // ---- the report (benches/soak.sh shows it) ----
    let ops = tally.seals + tally.opens;
    let calls = |vault: &KeyVaultDouble| vault.authenticated_calls();
    println!(
        "soak: {:.0} s, {TASKS} tasks: {} seals, {} opens, {:.0} operations/s; latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        tally.seals,
        tally.opens,
        ops as f64 / elapsed.as_secs_f64(),
        latencies.quantile_ms(0.50),
        latencies.quantile_ms(0.99),
    );
    println!("soak: calls to {}: {:?}", east.host(), calls(&east));
    println!("soak: calls to {}: {:?}", west.host(), calls(&west));

    // ---- no operation failed: every object had a healthy slot ----
    assert!(
        tally.failures.is_empty(),
        "{} operations failed, first: {:?}",
        tally.failures.len(),
        tally.failures.iter().take(5).collect::<Vec<_>>()
    );
    assert!(tally.seals > 0 && tally.opens > tally.seals);

    // ---- the downed vault: the calls under way, then one per cool-down ----
    let arrivals = east.arrivals_while_down();
    let settle_until = down_at + SETTLE;
    let (under_way, later): (Vec<_>, Vec<_>) =
        arrivals.iter().partition(|(at, _)| *at < settle_until);
    let cooldowns = (up_at - settle_until).as_secs_f64() / COOLDOWN.as_secs_f64();
    println!(
        "soak: {} down {:.0} s: {} calls under way when it went down, then {} (cool-down {} s)",
        east.host(),
        (up_at - down_at).as_secs_f64(),
        under_way.len(),
        later.len(),
        COOLDOWN.as_secs()
    );
    assert!(
        under_way.len() <= TASKS,
        "at most one call per task was under way: {}",
        under_way.len()
    );
    assert!(
        later.len() as f64 <= cooldowns.ceil() + 1.0,
        "{} calls to the downed vault in {cooldowns:.1} cool-downs",
        later.len()
    );
    for pair in later.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= COOLDOWN,
            "two calls to the downed vault {:?} apart",
            pair[1].0 - pair[0].0
        );
    }

    // ---- memory is flat ----
    let quarter = |q: u32| -> Vec<u64> {
        samples
            .iter()
            .filter(|(at, _)| *at >= run * q / 4 && *at < run * (q + 1) / 4)
            .map(|(_, kib)| *kib)
            .collect()
    };
    let (second, last) = (mean(&quarter(1)), mean(&quarter(3)));
    if std::env::var_os("CMKE_SOAK_TRACE").is_some() {
        for (at, kib) in samples.iter().step_by(8) {
            println!("soak: rss {:>6.1} s {:>8} KiB", at.as_secs_f64(), kib);
        }
    }
    println!(
        "soak: resident memory, mean of the second quarter {:.1} MiB, of the last {:.1} MiB",
        second / 1024.0,
        last / 1024.0
    );
    assert!(second > 0.0, "no memory samples");
    assert!(
        last <= second * 1.10,
        "resident memory grew: {second:.0} KiB in the second quarter, {last:.0} KiB in the last"
    );

    // ---- the metrics count what the doubles counted ----
    for vault in [&east, &west] {
        let key = vault.key_url("cmk");
        for (operation, double_name) in
            [("get", "get"), ("wrap", "wrapKey"), ("unwrap", "unwrapKey")]
        {
            let counted = counter(
                "cmke_key_service_calls_total",
                &[
                    ("backend", "azure-key-vault"),
                    ("key", &key),
                    ("operation", operation),
                ],
            );
            assert_eq!(
                counted,
                vault.calls(double_name) as u64,
                "{operation} calls to {key}: the metrics and the vault disagree"
            );
        }
    }
    let throttled = (east.calls("throttled") + west.calls("throttled")) as u64;
    assert_eq!(
        counter("cmke_key_service_pauses_total", &[]),
        throttled,
        "one back-off pause per 429"
    );
    assert!(
        counter("cmke_failover_passed_over_total", &[]) > 0,
        "slots were passed over while the vault was down"
    );
}
