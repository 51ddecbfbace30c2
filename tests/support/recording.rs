//! A key that keeps a copy of every data key it wraps or unwraps, and a search for secret
//! bytes in text: for the tests that look for key material where none may be (formatted
//! errors and types, spans and events).

use std::sync::{Arc, Mutex, PoisonError};

use cmk_envelope::format::KeySlot;
use cmk_envelope::{async_trait, DataKey, KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// Delegates to another key and keeps a copy of every data key it wraps or unwraps.
pub struct Recording {
    inner: Arc<dyn KeyWrapper>,
    seen: Mutex<Vec<[u8; 32]>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn KeyWrapper>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Every data key seen so far.
    pub fn seen(&self) -> Vec<[u8; 32]> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn note(&self, key: &DataKey) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(*key.expose_secret());
    }
}

#[async_trait]
impl KeyWrapper for Recording {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.inner.current_kid().await
    }
    async fn wrap_key(
        &self,
        data_key: &DataKey,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<KeySlot> {
        self.note(data_key);
        self.inner.wrap_key(data_key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<Unwrapped> {
        let unwrapped = self.inner.unwrap_key(slot, context).await?;
        if let Unwrapped::Key(k) = &unwrapped {
            self.note(k);
        }
        Ok(unwrapped)
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}

/// Every way 8 consecutive secret bytes could show up in text: hex either case, Rust's
/// byte-list Debug, and base64 of the PEM body for private keys.
pub fn leaks(text: &str, secret: &[u8]) -> Option<String> {
    for window in secret.windows(8) {
        let hex_lower: String = window.iter().map(|b| format!("{b:02x}")).collect();
        let list = window
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        for form in [hex_lower.clone(), hex_lower.to_uppercase(), list] {
            if text.contains(&form) {
                return Some(form);
            }
        }
    }
    None
}
