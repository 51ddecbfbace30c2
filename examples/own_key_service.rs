//! Bringing your own key service: a `KeyWrapper` of your own, checked by the same
//! behaviour suite every backend of this crate passes (feature `test-support`).
//!
//! Here the "key service" is an audit layer in front of a keyring key, the first thing a
//! team usually writes: it forwards the four required methods and records every call. A
//! real backend (a KMS client, an HSM of your own) implements the same four methods; put
//! the last lines of `main` in a test of your crate.
//!
//!     cargo run --example own_key_service --features test-support

use std::sync::{Arc, Mutex};

use cmk_envelope::format::KeySlot;
use cmk_envelope::software::Keyring;
use cmk_envelope::test_support::{run, Backend};
use cmk_envelope::{async_trait, DataKey, KeyFacts, KeyWrapper, Result, SlotContext, Unwrapped};

/// Every key-service call, as an audit log would keep it: what and which kid, never a key.
struct Audited {
    inner: Arc<dyn KeyWrapper>,
    log: Mutex<Vec<String>>,
}

impl Audited {
    fn record(&self, line: String) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

#[async_trait]
impl KeyWrapper for Audited {
    async fn current_kid(&self) -> Result<String> {
        self.inner.current_kid().await
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        let slot = self.inner.wrap_key(data_key, context).await?;
        self.record(format!("wrap {}", slot.kid()));
        Ok(slot)
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        let unwrapped = self.inner.unwrap_key(slot, context).await;
        let outcome = match &unwrapped {
            Ok(Unwrapped::Key(_)) => "ok",
            Ok(Unwrapped::NotMine) => "not mine",
            Err(_) => "failed",
        };
        self.record(format!("unwrap {} {outcome}", slot.kid()));
        unwrapped
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}

/// What the behaviour suite needs: the key under test, how to rotate it, another key of
/// the same keyring, and whether it can be disabled.
struct AuditedKeyring {
    keyring: Keyring,
    key: Arc<Audited>,
}

#[async_trait]
impl Backend for AuditedKeyring {
    fn wrapper(&self) -> Arc<dyn KeyWrapper> {
        self.key.clone()
    }
    async fn rotate(&self) {
        self.keyring.rotate_key("orders").expect("rotate");
    }
    async fn other_key(&self) -> Arc<dyn KeyWrapper> {
        self.keyring.create_key("billing").expect("create");
        Arc::new(self.keyring.key("billing").expect("key"))
    }
    async fn set_enabled(&self, _enabled: bool) -> bool {
        false // a keyring key has no disabled state
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let keyring = Keyring::create(dir.path().join("keyring"))?;
    keyring.create_key("orders")?;
    let key = Arc::new(Audited {
        inner: Arc::new(keyring.key("orders")?),
        log: Mutex::new(Vec::new()),
    });
    let backend = AuditedKeyring {
        keyring,
        key: key.clone(),
    };
    // Panics, naming the behaviour, if the wrapper gets anything wrong.
    run(&backend).await;
    let log = key.log.lock().unwrap_or_else(|e| e.into_inner());
    println!(
        "the audited key passed the behaviour suite: {} key-service calls, the first `{}`",
        log.len(),
        log.first().map_or("", String::as_str)
    );
    Ok(())
}
