//! The key a `rewrap --to` moves objects to, as one run sees it.

use std::sync::Arc;

use cmk_envelope::format::KeySlot;
use cmk_envelope::Result;
use cmk_envelope::{async_trait, DataKey, KeyFacts, KeyWrapper, SlotContext, Unwrapped};
use tokio::sync::OnceCell;

use crate::keys::sources::same_error;

/// A re-wrap target whose current version is asked once per run: every file of the run
/// moves to the same version, and a target that cannot be used (deleted, refused, against
/// the CMK rules) costs one call and gives every file the same error, not one call each.
pub struct RunTarget {
    inner: Arc<dyn KeyWrapper>,
    current: OnceCell<std::result::Result<String, Arc<cmk_envelope::Error>>>,
}

impl RunTarget {
    pub fn new(inner: Arc<dyn KeyWrapper>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            current: OnceCell::new(),
        })
    }
}

#[async_trait]
impl KeyWrapper for RunTarget {
    async fn current_kid(&self) -> Result<String> {
        self.current
            .get_or_init(|| async { self.inner.current_kid().await.map_err(Arc::new) })
            .await
            .clone()
            .map_err(|e| same_error(&e))
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        self.inner.wrap_key(data_key, context).await
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        self.inner.unwrap_key(slot, context).await
    }

    async fn confirm_wrap(
        &self,
        slot: &KeySlot,
        data_key: &DataKey,
        context: SlotContext<'_>,
    ) -> Result<()> {
        self.inner.confirm_wrap(slot, data_key, context).await
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}
