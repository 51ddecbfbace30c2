//! Property tests: seal/open and re-wrap round trips for sizes around 0 to 3 segments + 1,
//! random segment sizes, both providers, and across providers.

use crate::support;
use std::sync::{Arc, OnceLock};

use cmk_envelope::crypto::Provider;
use cmk_envelope::software::SoftwareWrapper;
use cmk_envelope::{Envelope, KeyWrapper, RewrapTarget};
use proptest::prelude::*;

struct Fixture {
    _t: support::TempKeyring,
    key: Arc<SoftwareWrapper>,
    other: Arc<SoftwareWrapper>,
}

/// One keyring for all cases: key generation is the slow part and not under test here.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let t = support::temp_keyring(Provider::default());
        t.keyring.create_key("other").expect("second key");
        let other = Arc::new(t.keyring.key("other").expect("load"));
        Fixture {
            key: Arc::clone(&t.key),
            other,
            _t: t,
        }
    })
}

fn envelope(provider: Provider, segment_size: u32) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::clone(&fixture().key) as Arc<dyn KeyWrapper>)
        .open_with(Arc::clone(&fixture().other) as Arc<dyn KeyWrapper>)
        .provider(provider)
        .segment_size(segment_size)
        .build()
        .expect("envelope")
}

fn size_and_data() -> impl Strategy<Value = (u32, Vec<u8>, Vec<u8>)> {
    (64u32..=1024).prop_flat_map(|s| {
        let max = 3 * s as usize + 1;
        (
            Just(s),
            prop_oneof![
                // Around segment boundaries...
                prop::sample::select(vec![
                    0,
                    1,
                    s as usize - 1,
                    s as usize,
                    s as usize + 1,
                    2 * s as usize,
                    max
                ]),
                // ...and anywhere in between.
                0..=max,
            ]
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
            prop::collection::vec(any::<u8>(), 0..40),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn seal_then_open_returns_the_plaintext((segment_size, data, aad) in size_and_data()) {
        support::block_on(async {
            let providers = Provider::all();
            for sealer in &providers {
                let sealed = envelope(*sealer, segment_size).seal(&data, &aad).await.expect("seal");
                let info = cmk_envelope::inspect::inspect(&sealed).expect("inspect");
                prop_assert_eq!(info.segment_size, segment_size);
                prop_assert_eq!(info.body.map(|b| b.plaintext_len), Some(data.len() as u64));
                for opener in &providers {
                    let opened = envelope(*opener, segment_size).open(&sealed, &aad).await.expect("open");
                    prop_assert_eq!(opened.plaintext(), data.as_slice());
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn detached_is_attached_split((segment_size, data, aad) in size_and_data()) {
        support::block_on(async {
            let e = envelope(Provider::default(), segment_size);
            let sealed = e.seal_detached(&data, &aad).await.expect("seal");
            let opened = e.open_detached(&sealed.header, &sealed.body, &aad).await.expect("open");
            prop_assert_eq!(opened.plaintext(), data.as_slice());
            let mut attached = sealed.header.clone();
            attached.extend_from_slice(&sealed.body);
            let reopened = e.open(&attached, &aad).await.expect("open");
            prop_assert_eq!(reopened.plaintext(), data.as_slice());
            Ok(())
        })?;
    }

    #[test]
    fn rewrap_keeps_body_and_plaintext((segment_size, data, aad) in size_and_data()) {
        support::block_on(async {
            let e = envelope(Provider::default(), segment_size);
            let sealed = e.seal(&data, &aad).await.expect("seal");
            let target = Arc::clone(&fixture().other) as Arc<dyn KeyWrapper>;
            let rewrapped = e.rewrap(&sealed, RewrapTarget::Key(target)).await.expect("rewrap").expect("changed");
            let updated = rewrapped.apply_to(&sealed).expect("apply");
            prop_assert_eq!(&updated[rewrapped.header().len()..], &sealed[rewrapped.old_header_len()..]);
            prop_assert_eq!(&updated[..74], &sealed[..74]);
            let opened = e.open(&updated, &aad).await.expect("open");
            prop_assert!(opened.info().kid().starts_with("local:other/"));
            prop_assert_eq!(opened.plaintext(), data.as_slice());
            Ok(())
        })?;
    }

    #[test]
    fn into_variants_reuse_any_buffer(
        (segment_size, data, aad) in size_and_data(),
        leftover in prop::collection::vec(any::<u8>(), 0..4000),
    ) {
        support::block_on(async {
            let e = envelope(Provider::default(), segment_size);
            let mut sealed = leftover.clone();
            e.seal_into(&data, &aad, &mut sealed).await.expect("seal_into");
            let mut plain = leftover.clone();
            let info = e.open_into(&sealed, &aad, &mut plain).await.expect("open_into");
            prop_assert_eq!(plain.as_slice(), data.as_slice());
            prop_assert!(!info.is_stale());
            // Same bytes as the allocating path opens.
            let opened = e.open(&sealed, &aad).await.expect("open");
            prop_assert_eq!(opened.plaintext(), data.as_slice());
            // A failed open leaves nothing behind in the reused buffer.
            let mut bad = sealed.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            let mut plain = leftover.clone();
            prop_assert!(e.open_into(&bad, &aad, &mut plain).await.is_err());
            prop_assert!(plain.is_empty());
            let mut plain = leftover.clone();
            prop_assert!(e.open_into(&bad[..10], &aad, &mut plain).await.is_err());
            prop_assert!(plain.is_empty());
            Ok(())
        })?;
    }

    #[test]
    fn in_place_variants_match_the_separate_buffer_ones(
        (segment_size, data, aad) in size_and_data(),
    ) {
        support::block_on(async {
            for provider in Provider::all() {
                let e = envelope(provider, segment_size);
                let mut buffer = data.clone();
                e.seal_in_place(&mut buffer, &aad).await.expect("seal_in_place");
                let opened = e.open(&buffer, &aad).await.expect("open");
                prop_assert_eq!(opened.plaintext(), data.as_slice());
                let sealed = e.seal(&data, &aad).await.expect("seal");
                prop_assert_eq!(sealed.len(), buffer.len());
                let mut buffer = sealed.clone();
                let info = e.open_in_place(&mut buffer, &aad).await.expect("open_in_place");
                prop_assert_eq!(buffer.as_slice(), data.as_slice());
                prop_assert!(!info.is_stale());
                // A failed open wipes and empties the buffer.
                let mut bad = sealed.clone();
                let middle = bad.len() / 2;
                bad[middle] ^= 1;
                prop_assert!(e.open_in_place(&mut bad, &aad).await.is_err());
                prop_assert!(bad.is_empty());
                let mut wrong_aad = sealed.clone();
                prop_assert!(e.open_in_place(&mut wrong_aad, b"other").await.is_err());
                prop_assert!(wrong_aad.is_empty());
            }
            Ok(())
        })?;
    }
}

/// In-place sealing and opening of objects split across cores match the separate-buffer
/// path, across providers.
#[tokio::test]
async fn large_objects_in_place_across_providers() {
    let data: Vec<u8> = (0..(9 << 20) + 777).map(|i: u32| (i % 253) as u8).collect();
    for sealer in Provider::all() {
        let mut buffer = data.clone();
        envelope(sealer, 65536)
            .seal_in_place(&mut buffer, b"big")
            .await
            .expect("seal");
        for opener in Provider::all() {
            let e = envelope(opener, 65536);
            assert!(e.open(&buffer, b"big").await.expect("open").plaintext() == data.as_slice());
            let mut copy = buffer.clone();
            e.open_in_place(&mut copy, b"big")
                .await
                .expect("open in place");
            assert!(copy == data);
        }
    }
}

/// Objects large enough to be split across cores open with every provider, whichever sealed.
#[tokio::test]
async fn large_objects_round_trip_across_providers() {
    let data: Vec<u8> = (0..(5 << 20) + 12_345)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    for sealer in Provider::all() {
        let sealed = envelope(sealer, 65536)
            .seal(&data, b"big")
            .await
            .expect("seal");
        for opener in Provider::all() {
            let opened = envelope(opener, 65536)
                .open(&sealed, b"big")
                .await
                .expect("open");
            assert!(opened.plaintext() == data.as_slice());
        }
        let mut bad = sealed.clone();
        bad[sealed.len() / 3] ^= 0x40;
        assert!(envelope(sealer, 65536).open(&bad, b"big").await.is_err());
    }
}
