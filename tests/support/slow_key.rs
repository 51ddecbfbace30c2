//! A key wrapper that behaves like a remote key service: each unwrap takes a set time, and
//! it counts calls and the most calls in flight at once. Shared by tests and benches.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::format::KeySlot;
use cmk_envelope::{async_trait, DataKey, Error, KeyFacts, KeyWrapper, SlotContext, Unwrapped};

pub struct SlowKey {
    inner: Arc<dyn KeyWrapper>,
    latency: Duration,
    pub calls: AtomicUsize,
    in_flight: AtomicUsize,
    pub peak_in_flight: AtomicUsize,
    /// While set, unwraps fail as a revoked key would.
    pub revoked: AtomicBool,
}

impl SlowKey {
    pub fn new(inner: Arc<dyn KeyWrapper>, latency: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            latency,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak_in_flight: AtomicUsize::new(0),
            revoked: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl KeyWrapper for SlowKey {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.inner.current_kid().await
    }
    async fn wrap_key(
        &self,
        data_key: &DataKey,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<KeySlot> {
        self.inner.wrap_key(data_key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<Unwrapped> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.revoked.load(Ordering::SeqCst) {
            return Err(Error::AccessDenied {
                kid: slot.kid().to_owned(),
                detail: "revoked for the test".to_owned(),
            });
        }
        self.inner.unwrap_key(slot, context).await
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}
