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
//! - `cmke_objects_total` and `cmke_bytes_total`, labels `operation` (`seal`, `open`) and
//!   `path` (`memory`).

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
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    #[cfg(feature = "tracing")]
    let span = tracing::info_span!(
        "cmke.key_service",
        backend,
        key,
        operation = op.name(),
        kid = kid.unwrap_or(""),
        outcome = tracing::field::Empty
    );
    #[cfg(feature = "tracing")]
    let result = tracing::Instrument::instrument(call, span.clone()).await;
    #[cfg(not(feature = "tracing"))]
    let result = call.await;
    #[cfg(feature = "tracing")]
    span.record("outcome", outcome(&result));
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
