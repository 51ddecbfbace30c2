//! `cmke --stats`: the library's metrics (feature `metrics`) kept by a recorder of cmke's
//! own, printed when the command ends: key-service calls by backend, key, operation and
//! outcome, the data-key cache's events, the objects sealed and opened, back-off pauses
//! after a 429, waits for the key-operation budget, slots passed over by failover and lazy
//! re-wraps: every counter the library has.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counters by name and labels (sorted), for the summary. Gauges and histograms are not
/// kept: the summary is of counts.
#[derive(Default)]
struct Counts {
    series: Mutex<BTreeMap<Series, Arc<AtomicU64>>>,
}

/// A metric's name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

impl Recorder for &'static Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let value = series
            .entry((key.name().to_owned(), labels))
            .or_default()
            .clone();
        Counter::from_arc(value)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

static COUNTS: OnceLock<&'static Counts> = OnceLock::new();

/// Starts counting (once per process).
pub fn start() {
    let counts: &'static Counts = COUNTS.get_or_init(|| Box::leak(Box::default()));
    // Only fails when a recorder is installed already: then it is that one's.
    let _ = metrics::set_global_recorder(counts);
}

/// One counted series: its metric, labels and count.
#[derive(serde::Serialize)]
struct Line {
    metric: String,
    labels: BTreeMap<String, String>,
    count: u64,
}

fn lines() -> Vec<Line> {
    let Some(counts) = COUNTS.get() else {
        return Vec::new();
    };
    let series = counts.series.lock().unwrap_or_else(PoisonError::into_inner);
    series
        .iter()
        .map(|((metric, labels), value)| Line {
            metric: metric.clone(),
            labels: labels.iter().cloned().collect(),
            count: value.load(Ordering::Relaxed),
        })
        .filter(|line| line.count > 0)
        .collect()
}

/// The summary, on stderr (stdout is the command's): JSON when `json`, else one line per
/// series.
pub fn print(json: bool) {
    let lines = lines();
    if json {
        let text =
            serde_json::to_string(&serde_json::json!({ "stats": lines })).unwrap_or_default();
        eprintln!("{text}");
        return;
    }
    eprintln!("cmke: stats:");
    if lines.is_empty() {
        eprintln!("  no key-service call, cache event or object");
    }
    for line in lines {
        let labels: Vec<String> = line
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", super::escape::text(v)))
            .collect();
        eprintln!("  {} {} {}", line.metric, labels.join(" "), line.count);
    }
}
