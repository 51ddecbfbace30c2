//! The behaviour every backend must show, run against each one: the software keyring, Key
//! Vault (through the loopback double), and PKCS#11 when it lands.
#![allow(dead_code)]

use std::sync::Arc;

use super::slot_kid;
use cmk_envelope::format::Header;
use cmk_envelope::{Envelope, Error, KeySlot, KeyWrapper, RewrapTarget};

/// What the suite needs from a backend.
pub trait Backend {
    /// A wrapper for the key under test, seeing its current version.
    fn wrapper(&self) -> Arc<dyn KeyWrapper>;
    /// Makes a new version current, as the backend rotates keys.
    fn rotate(&self);
    /// Another key in the same vault or keyring.
    fn other_key(&self) -> Arc<dyn KeyWrapper>;
    /// Disables the key (or returns `false` when the backend has no such state).
    fn set_enabled(&self, enabled: bool) -> bool;
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
    backend.rotate();
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
    let other = backend.other_key();
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
    if backend.set_enabled(false) {
        assert!(matches!(
            envelope.open(&moved, b"aad").await,
            Err(Error::KeyDisabled { .. })
        ));
        assert!(backend.set_enabled(true));
        envelope.open(&moved, b"aad").await.expect("enabled again");
    }
}
