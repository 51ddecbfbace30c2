//! A key whose service can be taken down: unwraps fail as `Unavailable` (a transient
//! failure, as a 503 would), and every unwrap of a slot it holds is counted.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cmk_envelope::format::KeySlot;
use cmk_envelope::{async_trait, DataKey, Error, KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// A key whose service can be taken down (unwraps fail as `Unavailable`), counting calls.
pub struct Service {
    inner: Arc<dyn KeyWrapper>,
    pub down: AtomicBool,
    unwraps: AtomicUsize,
}

impl Service {
    pub fn new(inner: Arc<dyn KeyWrapper>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            down: AtomicBool::new(false),
            unwraps: AtomicUsize::new(0),
        })
    }
    pub fn calls(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl KeyWrapper for Service {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.inner.current_kid().await
    }
    async fn wrap_key(
        &self,
        key: &DataKey,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<KeySlot> {
        self.inner.wrap_key(key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<Unwrapped> {
        if !self
            .inner
            .key_facts()
            .recognizes(slot.kid())
            .unwrap_or(true)
        {
            return Ok(Unwrapped::NotMine);
        }
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable {
                kid: slot.kid().to_owned(),
                detail: "503 from the test".to_owned(),
            });
        }
        self.inner.unwrap_key(slot, context).await
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}
