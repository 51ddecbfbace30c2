//! What a service running the crate sees in its own metrics (feature `metrics`, through
//! the `metrics` facade: the application installs the recorder and exporter it uses).
//! Without the feature every function here is a no-op the compiler removes.
//!
//! Names and labels (README, "Observability"):
//! - `cmke_key_service_calls_total` (counter) and `cmke_key_service_call_seconds`
//!   (histogram), labels `backend` (`software`, `azure-key-vault`, `pkcs11`), `key` (the
//!   key without its version: `local:orders`, `https://{vault}/keys/orders`, a PKCS#11
//!   URI; never a secret), `operation` (`get`, `wrap`, `unwrap`) and `outcome` (`ok`,
//!   `throttled`, `unavailable`, `denied`, `disabled`, `not_found`, `decryption_failed`,
//!   `error`);
//! - `cmke_data_key_cache_total`, label `event` (`hit`, `miss`, `coalesced`, `eviction`);
//! - `cmke_branch_key_cache_total`, label `event` (`hit`, `miss`, `coalesced`, `eviction`,
//!   `expiry`): unwrapped branch keys kept by a `BranchWrapper`;
//! - `cmke_objects_total` and `cmke_bytes_total`, labels `operation` (`seal`, `open`) and
//!   `path` (`memory`, `stream`, `range`);
//! - `cmke_key_ops_budget_waits_total` and `cmke_key_ops_budget_wait_seconds`: operations
//!   that waited for the shared key-operation budget, and how long;
//! - `cmke_key_service_pauses_total` and `cmke_key_service_pause_seconds`: back-off pauses
//!   every operation sharing the budget took after a throttled answer (its `Retry-After`);
//! - `cmke_failover_passed_over_total`, label `service`: slots passed over because their
//!   key service failed transiently less than a cool-down ago;
//! - `cmke_lazy_rewraps_total`: headers re-wrapped while opening (lazy re-wrap).

use crate::error::{Error, Result};

/// A key-service operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyOp {
    /// Reading a key's current version (Key Vault's `get`).
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    Get,
    Wrap,
    Unwrap,
}

impl KeyOp {
    #[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
    fn name(self) -> &'static str {
        match self {
            KeyOp::Get => "get",
            KeyOp::Wrap => "wrap",
            KeyOp::Unwrap => "unwrap",
        }
    }
}

/// The `outcome` label of a call's result.
#[cfg_attr(not(any(feature = "metrics", feature = "tracing")), allow(dead_code))]
fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(Error::Throttled { .. }) => "throttled",
        Err(Error::Unavailable { .. }) => "unavailable",
        Err(Error::AccessDenied { .. }) => "denied",
        Err(Error::KeyDisabled { .. }) => "disabled",
        Err(Error::KeyNotFound { .. }) => "not_found",
        Err(Error::DecryptionFailed) => "decryption_failed",
        Err(_) => "error",
    }
}

/// Runs one key-service call, counting it and timing it under `backend`, `key` and `op`,
/// in a span (feature `tracing`) that also names the slot's kid, with its version, when
/// there is one.
pub(crate) async fn key_call<T>(
    backend: &'static str,
    key: &str,
    op: KeyOp,
    kid: Option<&str>,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    key_call_with_tries(backend, key, op, kid, None, call).await
}

/// The tries one key-service call took, counted by the backend as it sends them (the
/// Azure SDK retries inside its pipeline): recorded as the span's `attempts`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tries(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Tries {
    /// One more try was sent.
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub(crate) fn count_one(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// [`key_call`], with the span also recording `tries` (the tries the call took).
pub(crate) async fn key_call_with_tries<T>(
    backend: &'static str,
    key: &str,
    op: KeyOp,
    kid: Option<&str>,
    tries: Option<&Tries>,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    #[cfg(feature = "tracing")]
    let span = tracing::info_span!(
        "cmke.key_service",
        backend,
        key,
        operation = op.name(),
        kid = kid.unwrap_or(""),
        attempts = tracing::field::Empty,
        outcome = tracing::field::Empty
    );
    #[cfg(feature = "tracing")]
    let result = tracing::Instrument::instrument(call, span.clone()).await;
    #[cfg(not(feature = "tracing"))]
    let result = call.await;
    #[cfg(feature = "tracing")]
    {
        if let Some(tries) = tries {
            span.record("attempts", tries.get());
        }
        span.record("outcome", outcome(&result));
    }
    #[cfg(not(feature = "tracing"))]
    let _ = tries;
    #[cfg(not(feature = "tracing"))]
    let _ = kid;
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("backend", backend.to_owned()),
            ("key", key.to_owned()),
            ("operation", op.name().to_owned()),
            ("outcome", outcome(&result).to_owned()),
        ];
        metrics::counter!("cmke_key_service_calls_total", &labels).increment(1);
        metrics::histogram!("cmke_key_service_call_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (backend, key, op);
    result
}

/// A data-key cache event: `hit`, `miss`, `coalesced` or `eviction`.
pub(crate) fn cache_event(event: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cmke_data_key_cache_total", "event" => event).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// A branch-key cache event: `hit`, `miss`, `coalesced`, `eviction` or `expiry`.
pub(crate) fn branch_cache_event(event: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cmke_branch_key_cache_total", "event" => event).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// One object sealed or opened (`operation`), with its plaintext length, by `path`.
pub(crate) fn object(operation: &'static str, path: &'static str, bytes: u64) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("cmke_objects_total", "operation" => operation, "path" => path)
            .increment(1);
        metrics::counter!("cmke_bytes_total", "operation" => operation, "path" => path)
            .increment(bytes);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, path, bytes);
}

/// A slot passed over because `service` failed transiently a moment ago.
pub(crate) fn failover_pass_over(service: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("cmke_failover_passed_over_total", "service" => service.to_owned())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = service;
}

/// An operation waited `wait` for the shared key-operation budget.
pub(crate) fn key_ops_wait(wait: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("cmke_key_ops_budget_waits_total").increment(1);
        metrics::histogram!("cmke_key_ops_budget_wait_seconds").record(wait.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = wait;
}

/// A throttled answer paused every operation sharing the budget for `pause`.
#[cfg_attr(not(feature = "azure"), allow(dead_code))]
pub(crate) fn key_service_pause(pause: std::time::Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("cmke_key_service_pauses_total").increment(1);
        metrics::histogram!("cmke_key_service_pause_seconds").record(pause.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = pause;
}

/// An open re-wrapped its object's header (lazy re-wrap).
pub(crate) fn lazy_rewrap() {
    #[cfg(feature = "metrics")]
    metrics::counter!("cmke_lazy_rewraps_total").increment(1);
}
