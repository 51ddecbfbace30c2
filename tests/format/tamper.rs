//! Bad input: flipped, truncated, extended, reordered and foreign-key envelopes all fail,
//! with no plaintext, for every provider.

use crate::support;
use cmk_envelope::crypto::Provider;
use cmk_envelope::Error;

#[tokio::test]
async fn every_single_byte_flip_fails() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        let envelope = support::envelope_for(&t.key, provider, 64);
        // Three segments, so flips land in preamble, slot, and every segment.
        let sealed = envelope.seal(&[0x5a; 150], b"aad").await.expect("seal");
        assert!(envelope.open(&sealed, b"aad").await.is_ok());
        for at in 0..sealed.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = sealed.clone();
                bad[at] ^= mask;
                let result = envelope.open(&bad, b"aad").await;
                assert!(
                    result.is_err(),
                    "{}: flip {mask:#04x} at byte {at} of {} opened",
                    provider.name(),
                    sealed.len()
                );
            }
        }
    }
}

#[tokio::test]
async fn every_truncation_and_extension_fails() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let envelope = support::envelope_for(&t.key, provider, 64);
    let sealed = envelope.seal(&[7; 200], b"").await.expect("seal");
    for len in 0..sealed.len() {
        assert!(
            envelope.open(&sealed[..len], b"").await.is_err(),
            "truncated to {len}"
        );
    }
    for extra in [1usize, 15, 16, 17, 80, 81] {
        let mut longer = sealed.clone();
        longer.extend(std::iter::repeat_n(0u8, extra));
        assert!(
            envelope.open(&longer, b"").await.is_err(),
            "extended by {extra}"
        );
    }
}

#[tokio::test]
async fn reordered_and_duplicated_segments_fail() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let envelope = support::envelope_for(&t.key, provider, 64);
    let sealed = envelope
        .seal(&(0..=255u8).collect::<Vec<_>>(), b"")
        .await
        .expect("seal");
    let header_len = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    let (header, body) = sealed.split_at(header_len);
    let segments: Vec<&[u8]> = body.chunks(80).collect();
    assert_eq!(segments.len(), 4);
    let rebuild = |order: &[usize]| {
        let mut out = header.to_vec();
        for &i in order {
            out.extend_from_slice(segments[i]);
        }
        out
    };
    for order in [
        &[1, 0, 2, 3][..],
        &[0, 1, 3, 2],
        &[0, 0, 2, 3],
        &[0, 1, 2],
        &[0, 1, 2, 3, 3],
    ] {
        let err = envelope.open(&rebuild(order), b"").await.err();
        assert!(
            matches!(err, Some(Error::DecryptionFailed | Error::Malformed(_))),
            "{order:?}: {err:?}"
        );
    }
}

/// A header from another object (a valid wrap of a different data key) on this body.
#[tokio::test]
async fn foreign_data_key_fails_opaquely() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let envelope = support::envelope_for(&t.key, provider, 64);
    let a = envelope.seal(b"object a", b"").await.expect("seal");
    let b = envelope.seal(b"object b", b"").await.expect("seal");
    let ha = cmk_envelope::inspect::inspect(&a)
        .expect("inspect")
        .header_len;
    let hb = cmk_envelope::inspect::inspect(&b)
        .expect("inspect")
        .header_len;
    let mut spliced = b[..hb].to_vec();
    spliced.extend_from_slice(&a[ha..]);
    assert!(matches!(
        envelope.open(&spliced, b"").await,
        Err(Error::DecryptionFailed)
    ));
    // Only the slot from b, with a's preamble: the commitment does not match.
    let mut swapped_slot = a[..74].to_vec();
    swapped_slot.extend_from_slice(&b[74..hb]);
    swapped_slot.extend_from_slice(&a[ha..]);
    assert!(matches!(
        envelope.open(&swapped_slot, b"").await,
        Err(Error::DecryptionFailed)
    ));
}

/// A key from another keyring with the same name and a wrong key look the same as tampering.
#[tokio::test]
async fn wrong_key_is_the_same_error_as_tampering() {
    let provider = Provider::default();
    let a = support::temp_keyring(provider);
    let b = support::temp_keyring(provider);
    let sealed = support::envelope_for(&a.key, provider, 64)
        .seal(b"secret", b"")
        .await
        .expect("seal");
    // Point keyring b's key at a's kid: copy b's key file under a's version name.
    let info = cmk_envelope::inspect::inspect(&sealed).expect("inspect");
    let version = info.slots[0].version.clone().expect("version");
    let src = std::fs::read_dir(b.dir.path().join("orders"))
        .expect("dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "pem"))
        .expect("pem");
    std::fs::copy(
        src.path(),
        b.dir.path().join(format!("orders/{version}.pem")),
    )
    .expect("copy");
    let wrong = support::envelope_for(&b.key, provider, 64);
    assert!(matches!(
        wrong.open(&sealed, b"").await,
        Err(Error::DecryptionFailed)
    ));
}

/// Bad OAEP padding (a flipped wrapped key), a wrong key and a commitment mismatch give one
/// and the same error value and message, for both providers: nothing tells them apart.
#[tokio::test]
async fn padding_wrong_key_and_commitment_failures_are_indistinguishable() {
    for provider in Provider::all() {
        let a = support::temp_keyring(provider);
        let e = support::envelope_for(&a.key, provider, 64);
        let sealed = e.seal(b"secret", b"").await.expect("seal");
        let header_len = cmk_envelope::inspect::inspect(&sealed)
            .expect("inspect")
            .header_len;
        let mut bad_padding = sealed.clone();
        bad_padding[header_len - 1] ^= 0x01; // last byte of the wrapped key
        let mut bad_commitment = sealed.clone();
        bad_commitment[50] ^= 0x01; // inside the preamble's commitment
        let mut failures = Vec::new();
        for bad in [&bad_padding, &bad_commitment] {
            failures.push(e.open(bad, b"").await.expect_err("must fail"));
        }
        failures.push(e.open(&sealed, b"wrong aad").await.expect_err("must fail"));
        for failure in &failures {
            assert!(matches!(failure, Error::DecryptionFailed), "{failure:?}");
            assert_eq!(failure.to_string(), failures[0].to_string());
        }
    }
}

#[tokio::test]
async fn oversized_lengths_are_rejected_before_allocation() {
    // A header claiming 8 slots of 1024-byte kids but carrying 3 bytes: the parser fails on
    // the length check or truncation, never allocating what the length fields claim.
    let mut bytes = b"CMKE\x01\x01\x00\x00\x00\x40".to_vec();
    bytes.extend_from_slice(&[0; 64]);
    bytes.push(8);
    bytes.extend_from_slice(&0xffffu16.to_be_bytes());
    bytes.extend_from_slice(b"abc");
    assert!(matches!(
        cmk_envelope::inspect::inspect(&bytes),
        Err(Error::Malformed(
            cmk_envelope::format::Malformed::KidLengthOutOfRange(0xffff)
        ))
    ));
}
