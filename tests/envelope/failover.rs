//! Objects with slots under two keys of two key services: opening uses the first slot, and
//! when its service fails transiently, the next one; the failed service is passed over for
//! the cool-down (one failed call per cool-down, not one per object), and a service whose
//! slot was never needed is never called.

use crate::support;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::crypto::Provider;
use cmk_envelope::{Envelope, Error};

use support::down_service::Service;

#[tokio::test]
async fn a_down_service_costs_one_call_per_cool_down_and_the_other_slot_opens() {
    let (_keyrings, east_key, west_key) = two_regions();
    let envelope = Envelope::builder()
        .seal_with(east_key.clone())
        .also_seal_with(west_key.clone())
        .failover_cooldown(Duration::from_millis(300))
        .build()
        .expect("envelope");
    let mut objects = Vec::new();
    for i in 0..50u8 {
        let sealed = envelope.seal(&[i; 10], b"").await.expect("seal");
        let (header, _) = cmk_envelope::format::Header::parse_prefix(&sealed).expect("header");
        assert_eq!(header.slots().len(), 2, "a slot under each key");
        objects.push(sealed);
    }

    // Both up: the first slot opens; the second service is never called.
    for (i, sealed) in objects.iter().enumerate() {
        let opened = envelope.open(sealed, b"").await.expect("open");
        assert_eq!(opened.plaintext(), &[i as u8; 10]);
    }
    assert_eq!((east_key.calls(), west_key.calls()), (50, 0));

    // East down: one failed call, then east is passed over; every object opens from west.
    east_key.down.store(true, Ordering::SeqCst);
    for sealed in &objects {
        envelope.open(sealed, b"").await.expect("fails over");
    }
    assert_eq!(east_key.calls(), 51, "one call to the down service, not 50");
    assert_eq!(west_key.calls(), 50);

    // After the cool-down, east is asked once more (still down), then passed over again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for sealed in &objects[..10] {
        envelope.open(sealed, b"").await.expect("fails over");
    }
    assert_eq!(east_key.calls(), 52);

    // East back: after the cool-down, its slot is used again.
    east_key.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let west_before = west_key.calls();
    for sealed in &objects[..10] {
        envelope.open(sealed, b"").await.expect("open");
    }
    assert_eq!(east_key.calls(), 62);
    assert_eq!(west_key.calls(), west_before, "west is not needed");
}

#[tokio::test]
async fn an_object_with_no_other_slot_still_asks_its_service() {
    let east = support::temp_keyring(Provider::default());
    let east_key = Service::new(east.key.clone());
    let envelope = Envelope::builder()
        .seal_with(east_key.clone())
        .build()
        .expect("envelope");
    let sealed = envelope.seal(b"alone", b"").await.expect("seal");
    east_key.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let opened = envelope.open(&sealed, b"").await;
        assert!(
            matches!(opened, Err(Error::Unavailable { .. })),
            "{opened:?}"
        );
    }
    assert_eq!(east_key.calls(), 3, "no other slot: asked each time");
}

#[tokio::test]
async fn every_slot_down_is_a_transient_error_naming_the_cool_down() {
    let (_keyrings, east_key, west_key) = two_regions();
    let envelope = Envelope::builder()
        .seal_with(east_key.clone())
        .also_seal_with(west_key.clone())
        .build()
        .expect("envelope");
    let sealed = envelope.seal(b"both", b"").await.expect("seal");
    east_key.down.store(true, Ordering::SeqCst);
    west_key.down.store(true, Ordering::SeqCst);
    let first = envelope.open(&sealed, b"").await;
    assert!(matches!(first, Err(Error::Unavailable { .. })), "{first:?}");
    let second = envelope.open(&sealed, b"").await;
    assert!(
        second.as_ref().is_err_and(Error::is_transient),
        "{second:?}"
    );
    let Err(Error::Unavailable { detail, .. }) = second else {
        panic!("{second:?}");
    };
    assert!(detail.contains("cool-down"), "{detail}");
    assert_eq!((east_key.calls(), west_key.calls()), (1, 1));
}

/// Two keyrings (kept alive by the first value) and a key service in each: east holds
/// `local:orders`, west `local:billing`.
fn two_regions() -> ([support::TempKeyring; 2], Arc<Service>, Arc<Service>) {
    let (east, west) = (
        support::temp_keyring(Provider::default()),
        support::temp_keyring(Provider::default()),
    );
    let (east_key, west_key) = (Service::new(east.key.clone()), west_service(&west));
    ([east, west], east_key, west_key)
}

/// The west keyring's own key (`local:billing`): a kid no east key answers to, as two
/// vaults' key URLs differ.
fn west_service(west: &support::TempKeyring) -> Arc<Service> {
    west.keyring.create_key("billing").expect("key");
    Service::new(Arc::new(west.keyring.key("billing").expect("key")))
}

#[test]
fn at_most_eight_slots() {
    let keys: Vec<_> = (0..9)
        .map(|_| support::temp_keyring(Provider::default()))
        .collect();
    let with = |n: usize| {
        let mut builder = Envelope::builder().seal_with(keys[0].key.clone());
        for k in &keys[1..n] {
            builder = builder.also_seal_with(k.key.clone());
        }
        builder.build()
    };
    assert!(with(8).is_ok());
    assert!(matches!(with(9), Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn envelopes_sharing_a_failover_state_pass_the_failed_service_over_together() {
    let (_keyrings, east_key, west_key) = two_regions();
    let state = cmk_envelope::wrap::FailoverState::new();
    let build = || {
        Envelope::builder()
            .seal_with(east_key.clone())
            .also_seal_with(west_key.clone())
            .failover_state(state.clone())
            .build()
            .expect("envelope")
    };
    let (one, two) = (build(), build());
    let sealed = one.seal(b"shared", b"").await.expect("seal");
    east_key.down.store(true, Ordering::SeqCst);
    one.open(&sealed, b"").await.expect("fails over");
    two.open(&sealed, b"").await.expect("fails over");
    assert_eq!(
        east_key.calls(),
        1,
        "the second envelope knew east was down"
    );
    // Without the shared state, a new envelope asks east again.
    let alone = Envelope::builder()
        .seal_with(east_key.clone())
        .also_seal_with(west_key.clone())
        .build()
        .expect("envelope");
    alone.open(&sealed, b"").await.expect("fails over");
    assert_eq!(east_key.calls(), 2);
}

#[tokio::test]
async fn a_reader_may_prefer_its_own_keys_order_over_the_written_one() {
    let (_keyrings, east_key, west_key) = two_regions();
    let writer = Envelope::builder()
        .seal_with(east_key.clone())
        .also_seal_with(west_key.clone())
        .build()
        .expect("envelope");
    let sealed = writer.seal(b"two regions", b"").await.expect("seal");

    // As written: east first.
    let as_written = Envelope::builder()
        .open_with(west_key.clone())
        .open_with(east_key.clone())
        .build()
        .expect("envelope");
    as_written.open(&sealed, b"").await.expect("open");
    assert_eq!((east_key.calls(), west_key.calls()), (1, 0));

    // Preferred: this reader's first key, west, first; east is never asked.
    let in_the_west = Envelope::builder()
        .open_with(west_key.clone())
        .open_with(east_key.clone())
        .slot_order(cmk_envelope::wrap::SlotOrder::Preferred)
        .build()
        .expect("envelope");
    for _ in 0..5 {
        let opened = in_the_west.open(&sealed, b"").await.expect("open");
        assert_eq!(opened.plaintext(), b"two regions");
    }
    assert_eq!((east_key.calls(), west_key.calls()), (1, 5));

    // West down: the preferred reader fails over to east.
    west_key.down.store(true, Ordering::SeqCst);
    in_the_west.open(&sealed, b"").await.expect("open");
    assert_eq!((east_key.calls(), west_key.calls()), (2, 6));
}
