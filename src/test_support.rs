//! The behaviour every key backend must show, published for implementors of
//! [`KeyWrapper`] (feature `test-support`), as RustCrypto's `aead` publishes its `dev`
//! module: the crate runs it against the software keyring, Key Vault (through a loopback
//! double) and PKCS#11 (SoftHSM2), and a third-party backend runs the same checks in its
//! own tests.
//!
//! It covers round trips at segment boundaries, the slot naming the current version,
//! one opaque error for wrong associated data and tampering, `NoKeyForKid` for a kid
//! nobody holds, rotation (old data opens and is re-wrapped lazily, body unchanged),
//! re-wrap to another key of the same vault or keyring, and a disabled key's own error.
//! It panics, naming the behaviour, at the first one that fails: call it from a test.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use cmk_envelope::software::Keyring;
//! use cmk_envelope::test_support::{run, Backend};
//! use cmk_envelope::{async_trait, KeyWrapper};
//!
//! struct MyBackend {
//!     _dir: tempfile::TempDir,
//!     keyring: Keyring,
//!     key: Arc<dyn KeyWrapper>,
//! }
//!
//! #[async_trait]
//! impl Backend for MyBackend {
//!     fn wrapper(&self) -> Arc<dyn KeyWrapper> {
//!         self.key.clone()
//!     }
//!     async fn rotate(&self) {
//!         self.keyring.rotate_key("orders").expect("rotate");
//!     }
//!     async fn other_key(&self) -> Arc<dyn KeyWrapper> {
//!         self.keyring.create_key("billing").expect("create");
//!         Arc::new(self.keyring.key("billing").expect("key"))
//!     }
//!     async fn set_enabled(&self, _: bool) -> bool {
//!         false // no disabled state to test
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = Keyring::create(dir.path()).unwrap();
//! keyring.create_key("orders").unwrap();
//! let key = Arc::new(keyring.key("orders").unwrap());
//! run(&MyBackend { _dir: dir, keyring, key }).await;
//! # }
//! ```
#![allow(clippy::missing_panics_doc)]

use std::sync::Arc;

use async_trait::async_trait;

use crate::envelope::{Envelope, RewrapTarget};
use crate::error::Error;
use crate::format::{Header, KeySlot};
use crate::wrap::KeyWrapper;

/// What the suite needs from a backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// A wrapper for the key under test, seeing its current version.
    fn wrapper(&self) -> Arc<dyn KeyWrapper>;
    /// Makes a new version current, as the backend rotates keys.
    async fn rotate(&self);
    /// Another key in the same vault or keyring.
    async fn other_key(&self) -> Arc<dyn KeyWrapper>;
    /// Disables (or enables) the key, or returns `false` when the backend has no such state.
    async fn set_enabled(&self, enabled: bool) -> bool;
}

/// The kid of an envelope's first slot.
fn slot_kid(envelope: &[u8]) -> String {
    Header::parse_prefix(envelope)
        .expect("header")
        .0
        .slots()
        .first()
        .expect("a slot")
        .kid()
        .to_owned()
}

/// `sealed` with its key slots replaced by `slots` and the body unchanged.
pub fn with_slots(sealed: &[u8], slots: Vec<KeySlot>) -> Vec<u8> {
    let (header, header_len) = Header::parse_prefix(sealed).expect("header");
    let mut out = header.with_slots(slots).expect("header").to_bytes();
    out.extend_from_slice(&sealed[header_len..]);
    out
}

/// Runs the whole suite; panics naming the first behaviour that fails.
pub async fn run(backend: &dyn Backend) {
    let key = backend.wrapper();
    let envelope = Envelope::builder()
        .seal_with(Arc::clone(&key))
        .segment_size(64)
        .build()
        .expect("envelope");

    // Round trips at segment boundaries; the slot names the current version.
    let kid = key.current_kid().await.expect("current kid");
    for len in [0usize, 1, 63, 64, 65, 1000] {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let sealed = envelope.seal(&plaintext, b"aad").await.expect("seal");
        assert_eq!(slot_kid(&sealed), kid, "the slot names the current version");
        let opened = envelope.open(&sealed, b"aad").await.expect("open");
        assert_eq!(opened.plaintext(), plaintext.as_slice(), "{len} bytes");
        assert_eq!(opened.info().kid(), kid);
    }

    // Wrong associated data, a tampered body and a tampered wrapped key: one opaque error.
    let sealed = envelope.seal(b"payload", b"aad").await.expect("seal");
    assert!(matches!(
        envelope.open(&sealed, b"other").await,
        Err(Error::DecryptionFailed)
    ));
    let mut body_flipped = sealed.clone();
    if let Some(last) = body_flipped.last_mut() {
        *last ^= 1;
    }
    assert!(matches!(
        envelope.open(&body_flipped, b"aad").await,
        Err(Error::DecryptionFailed)
    ));
    let (header, header_len) = Header::parse_prefix(&sealed).expect("header");
    let slot = &header.slots()[0];
    let mut wrapped = slot.wrapped().to_vec();
    let middle = wrapped.len() / 2;
    wrapped[middle] ^= 1;
    let tampered_slot =
        KeySlot::new(slot.kid().to_owned(), slot.algorithm(), wrapped).expect("slot");
    let slot_flipped = with_slots(&sealed, vec![tampered_slot]);
    assert!(matches!(
        envelope.open(&slot_flipped, b"aad").await,
        Err(Error::DecryptionFailed)
    ));

    // A kid no wrapper holds.
    let foreign = KeySlot::new(
        "local:someone-else/0123456789abcdef0123456789abcdef".to_owned(),
        slot.algorithm(),
        slot.wrapped().to_vec(),
    )
    .expect("slot");
    let unknown = with_slots(&sealed, vec![foreign]);
    assert!(matches!(
        envelope.open(&unknown, b"aad").await,
        Err(Error::NoKeyForKid { .. })
    ));

    // Rotation: old data opens and reports itself stale; new data uses the new version;
    // the lazy re-wrap changes only the header.
    backend.rotate().await;
    let new_kid = key.current_kid().await.expect("current kid");
    assert_ne!(new_kid, kid, "rotation makes a new version current");
    let opened = envelope
        .open(&sealed, b"aad")
        .await
        .expect("old data opens");
    assert_eq!(opened.info().kid(), kid);
    let rewrapped = opened.info().rewrapped().expect("stale after rotation");
    let moved = rewrapped.apply_to(&sealed).expect("apply");
    assert_eq!(
        &moved[rewrapped.header().len()..],
        &sealed[header_len..],
        "body unchanged"
    );
    assert_eq!(slot_kid(&moved), new_kid);
    assert_eq!(
        envelope
            .open(&moved, b"aad")
            .await
            .expect("re-wrapped")
            .plaintext(),
        b"payload"
    );
    let fresh = envelope.seal(b"new", b"").await.expect("seal");
    assert_eq!(slot_kid(&fresh), new_kid);

    // Another key of the same vault or keyring may take the data key.
    let other = backend.other_key().await;
    let to_other = envelope
        .rewrap(&sealed, RewrapTarget::Key(Arc::clone(&other)))
        .await
        .expect("same-domain re-wrap allowed")
        .expect("moved");
    let under_other = to_other.apply_to(&sealed).expect("apply");
    let other_envelope = Envelope::builder()
        .seal_with(other)
        .build()
        .expect("envelope");
    assert_eq!(
        other_envelope
            .open(&under_other, b"aad")
            .await
            .expect("open")
            .plaintext(),
        b"payload"
    );

    // A disabled key stops decryption with its own error, and comes back when enabled.
    if backend.set_enabled(false).await {
        assert!(matches!(
            envelope.open(&moved, b"aad").await,
            Err(Error::KeyDisabled { .. })
        ));
        assert!(backend.set_enabled(true).await);
        envelope.open(&moved, b"aad").await.expect("enabled again");
    }
}
