//! Many key slots cannot multiply unwrap calls: every way in asks each wrapper at most once
//! per slot, a header holds at most `MAX_SLOTS` slots, and a header claiming more is
//! refused before any key is asked.

use crate::support;
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::format::limits::{MAX_SLOTS, PREAMBLE_LEN};
use cmk_envelope::format::{Header, Malformed};
use cmk_envelope::format::{KeySlot, WrapAlgorithm};
use cmk_envelope::software::SoftwareWrapper;
use cmk_envelope::{
    async_trait, DataKey, Envelope, Error, KeyFacts, KeyWrapper, RewrapTarget, SlotContext,
    Unwrapped,
};
use support::block_on;

/// A software key that counts how often it is asked to unwrap.
struct Counting {
    inner: Arc<SoftwareWrapper>,
    unwraps: AtomicUsize,
}

#[async_trait]
impl KeyWrapper for Counting {
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
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.inner.unwrap_key(slot, context).await
    }
    /// Tells no kid from another (no `key`), so that every way in, re-wrap included,
    /// must unwrap to decide: what is counted here.
    fn key_facts(&self) -> KeyFacts<'_> {
        let facts = self.inner.key_facts();
        KeyFacts::new(facts.protection, facts.domain)
    }
}

/// An envelope whose every slot names `key`'s current kid over bytes that do not decrypt.
fn all_slots_claimed(envelope: &Envelope, key: &SoftwareWrapper, slots: usize) -> Vec<u8> {
    let sealed = block_on(envelope.seal(b"payload", b"")).expect("seal");
    let (header, header_len) = Header::parse_prefix(&sealed).expect("header");
    let kid = block_on(key.current_kid()).expect("kid");
    let bogus = KeySlot::new(kid, WrapAlgorithm::RsaOaepSha256, vec![0x42; 256]).expect("slot");
    let header = header.with_slots(vec![bogus; slots]).expect("slots");
    let mut out = header.to_bytes();
    out.extend_from_slice(&sealed[header_len..]);
    out
}

/// Every entry point that unwraps, each run on `bytes`; returns the errors.
fn every_way_in(envelope: &Envelope, bytes: &[u8]) -> Vec<(&'static str, Error)> {
    let mut errors = Vec::new();
    let mut record = |name, result: Result<(), Error>| match result {
        Ok(()) => panic!("{name} accepted an envelope no slot of which opens"),
        Err(e) => errors.push((name, e)),
    };
    record("open", block_on(envelope.open(bytes, b"")).map(drop));
    let mut buffer = bytes.to_vec();
    record(
        "open_in_place",
        block_on(envelope.open_in_place(&mut buffer, b"")).map(drop),
    );
    record(
        "open_reader",
        block_on(envelope.open_reader(bytes, b"")).map(drop),
    );
    record(
        "open_range",
        block_on(envelope.open_range(Cursor::new(bytes), b"", 0..1)).map(drop),
    );
    record(
        "rewrap",
        block_on(envelope.rewrap(bytes, RewrapTarget::CurrentVersion)).map(drop),
    );
    #[cfg(feature = "tokio")]
    record(
        "open_async_reader",
        block_on(envelope.open_async_reader(bytes, b"")).map(drop),
    );
    errors
}

fn counting(key: &Arc<SoftwareWrapper>) -> Arc<Counting> {
    Arc::new(Counting {
        inner: Arc::clone(key),
        unwraps: AtomicUsize::new(0),
    })
}

#[test]
fn a_full_header_costs_each_wrapper_at_most_one_unwrap_per_slot() {
    let keys = support::temp_keyring(Provider::default());
    let first = counting(&keys.key);
    // A second wrapper for the same key: an application that registered it twice.
    let second = counting(&keys.key);
    let envelope = Envelope::builder()
        .seal_with(Arc::clone(&first) as Arc<dyn KeyWrapper>)
        .open_with(Arc::clone(&second) as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let bytes = all_slots_claimed(&envelope, &keys.key, usize::from(MAX_SLOTS));
    first.unwraps.store(0, Ordering::SeqCst);
    second.unwraps.store(0, Ordering::SeqCst);

    let errors = every_way_in(&envelope, &bytes);
    for (name, error) in &errors {
        assert!(
            matches!(error, Error::DecryptionFailed),
            "{name}: {error:?}"
        );
    }
    let ways = errors.len();
    let per_wrapper = ways * usize::from(MAX_SLOTS);
    // A slot that decrypts wrongly is not offered to the next wrapper.
    assert_eq!(first.unwraps.load(Ordering::SeqCst), per_wrapper);
    assert_eq!(second.unwraps.load(Ordering::SeqCst), 0);
}

#[test]
fn a_header_claiming_more_slots_than_the_limit_is_refused_before_any_unwrap() {
    let keys = support::temp_keyring(Provider::default());
    let wrapper = counting(&keys.key);
    let envelope = Envelope::builder()
        .seal_with(Arc::clone(&wrapper) as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let full = all_slots_claimed(&envelope, &keys.key, usize::from(MAX_SLOTS));
    let (header, header_len) = Header::parse_prefix(&full).expect("header");
    let slots_len = header_len - PREAMBLE_LEN - 1;
    let one_slot = slots_len / header.slots().len();

    // Count byte raised by one, and one more copy of a slot spliced in.
    let mut over = full[..header_len].to_vec();
    over[PREAMBLE_LEN] = MAX_SLOTS + 1;
    over.extend_from_slice(&full[PREAMBLE_LEN + 1..PREAMBLE_LEN + 1 + one_slot]);
    over.extend_from_slice(&full[header_len..]);
    wrapper.unwraps.store(0, Ordering::SeqCst);

    for (name, error) in every_way_in(&envelope, &over) {
        assert!(
            matches!(
                error,
                Error::Malformed(Malformed::SlotCountOutOfRange(n)) if n == MAX_SLOTS + 1
            ),
            "{name}: {error:?}"
        );
    }
    assert_eq!(wrapper.unwraps.load(Ordering::SeqCst), 0);
}
