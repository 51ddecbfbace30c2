//! Every vector of the independent implementation's set, for every crypto provider.

use crate::support;
use cmk_envelope::crypto::Provider;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, Error};
use serde_json::Value;

fn reader_for(provider: Provider) -> Envelope {
    let keyring = Keyring::open(support::private_copy_kept(
        &support::vectors_dir().join("keyring"),
    ))
    .expect("vector keyring")
    .provider(provider);
    Envelope::builder()
        .provider(provider)
        .open_with_all(keyring.openers().expect("keys"))
        .build()
        .expect("envelope")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn every_shared_vector_for_every_provider() {
    let dir = support::vectors_dir();
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert!(
        manifest.len() >= 30,
        "manifest has {} vectors",
        manifest.len()
    );
    for provider in Provider::all() {
        let envelope = reader_for(provider);
        let (mut opened, mut rejected) = (0, 0);
        for vector in &manifest {
            let file = vector["file"].as_str().expect("file");
            let aad = vector["aad"].as_str().expect("aad").as_bytes();
            let bytes = std::fs::read(dir.join(file)).expect("vector file");
            let result = envelope.open(&bytes, aad).await;
            match vector["expect"].as_str() {
                Some("open") => {
                    let opened_obj = result
                        .unwrap_or_else(|e| panic!("{}: {file} should open: {e}", provider.name()));
                    let plain_file = vector["plaintext"].as_str().expect("plaintext");
                    let expected = std::fs::read(dir.join(plain_file)).expect("plaintext file");
                    assert_eq!(opened_obj.plaintext(), expected.as_slice(), "{file}");
                    assert_eq!(
                        sha256_hex(opened_obj.plaintext()),
                        vector["sha256"].as_str().expect("sha256"),
                        "{file}"
                    );
                    opened += 1;
                }
                Some("reject") => {
                    assert!(
                        result.is_err(),
                        "{}: {file} must be rejected",
                        provider.name()
                    );
                    rejected += 1;
                }
                other => panic!("{file}: unknown expectation {other:?}"),
            }
        }
        assert_eq!(opened + rejected, manifest.len());
        eprintln!("{}: {opened} opened, {rejected} rejected", provider.name());
    }
}

/// The rejections are for the right reasons: tampering is opaque, format errors are
/// malformed, an unknown kid names the kid.
#[tokio::test]
async fn rejections_have_the_right_error() {
    let dir = support::vectors_dir();
    let envelope = reader_for(Provider::default());
    let open = |file: &str, aad: &'static str| {
        let bytes = std::fs::read(dir.join(file)).expect("vector");
        let envelope = &envelope;
        async move { envelope.open(&bytes, aad.as_bytes()).await.err() }
    };
    for file in [
        "bad-magic.cmke",
        "bad-version.cmke",
        "bad-suite.cmke",
        "segment-size-too-small.cmke",
        "segment-size-too-large.cmke",
        "zero-slots.cmke",
        "nine-slots.cmke",
        "kid-too-long.cmke",
        "kid-length-past-end.cmke",
        "header-truncated.cmke",
        "body-missing.cmke",
    ] {
        let err = open(file, "ctx").await;
        assert!(matches!(err, Some(Error::Malformed(_))), "{file}: {err:?}");
    }
    for file in [
        "segment-size-changed.cmke",
        "message-id-flipped.cmke",
        "commitment-flipped.cmke",
        "wrapped-flipped.cmke",
        "tag-flipped.cmke",
        "ciphertext-flipped.cmke",
        "last-segment-dropped.cmke",
        // One byte short still leaves a possible length: the tag check catches it.
        "truncated-one-byte.cmke",
        "extended.cmke",
        "segments-swapped.cmke",
        "dek-swapped.cmke",
    ] {
        let err = open(file, "ctx").await;
        assert!(
            matches!(err, Some(Error::DecryptionFailed)),
            "{file}: {err:?}"
        );
    }
    let err = open("wrong-aad.cmke", "ctx2").await;
    assert!(matches!(err, Some(Error::DecryptionFailed)), "{err:?}");
    let err = open("unknown-kid.cmke", "ctx").await;
    assert!(matches!(err, Some(Error::NoKeyForKid { .. })), "{err:?}");
}

/// A stale vector opens and hands back a header that is current; the re-wrapped envelope
/// keeps the body byte for byte.
#[tokio::test]
async fn multi_segment_vector_is_stale_and_rewraps_lazily() {
    let dir = support::vectors_dir();
    let envelope = reader_for(Provider::default());
    let bytes = std::fs::read(dir.join("multi-segment.cmke")).expect("vector");
    let opened = envelope.open(&bytes, b"ctx").await.expect("opens");
    let rewrapped = opened
        .info()
        .rewrapped()
        .expect("written under the old version");
    let updated = rewrapped.apply_to(&bytes).expect("apply");
    assert_eq!(
        &updated[rewrapped.header().len()..],
        &bytes[rewrapped.old_header_len()..],
        "body unchanged"
    );
    let again = envelope
        .open(&updated, b"ctx")
        .await
        .expect("re-wrapped opens");
    assert!(!again.info().is_stale());
    assert_eq!(again.plaintext(), opened.plaintext());
}
