//! The branch-key vectors (slot algorithm 3) of the independent implementation, for every
//! crypto provider: branch slots through the store's records, CMK slots through the keyring.

use crate::support;
use std::sync::Arc;

use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
use cmk_envelope::crypto::Provider;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, Error};
use serde_json::Value;

fn dir() -> std::path::PathBuf {
    support::vectors_dir().join("branch")
}

fn reader_for(provider: Provider) -> Envelope {
    let keyring = Keyring::open(support::private_copy_kept(&dir().join("keyring")))
        .expect("vector keyring")
        .provider(provider);
    let cmk = Arc::new(keyring.key("pub-cmk").expect("cmk"));
    let store = Arc::new(
        DirectoryStore::open(support::private_copy_kept(&dir().join("branches"))).expect("store"),
    );
    let branch = BranchWrapper::new(store, "pub-br", cmk)
        .expect("branch")
        .provider(provider);
    Envelope::builder()
        .provider(provider)
        .open_with(Arc::new(branch))
        .open_with_all(keyring.openers().expect("keys"))
        .build()
        .expect("envelope")
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn every_branch_vector_for_every_provider() {
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir().join("manifest.json")).expect("manifest"))
            .expect("json");
    assert!(manifest.len() >= 11, "{} vectors", manifest.len());
    for provider in Provider::all() {
        let envelope = reader_for(provider);
        let (mut opened, mut rejected) = (0, 0);
        for vector in &manifest {
            let file = vector["file"].as_str().expect("file");
            let aad = vector["aad"].as_str().expect("aad").as_bytes();
            let bytes = std::fs::read(dir().join(file)).expect("vector file");
            let result = envelope.open(&bytes, aad).await;
            match vector["expect"].as_str() {
                Some("open") => {
                    let got = result
                        .unwrap_or_else(|e| panic!("{}: {file} should open: {e}", provider.name()));
                    let plain = vector["plaintext"].as_str().expect("plaintext");
                    let expected = std::fs::read(dir().join(plain)).expect("plaintext file");
                    assert_eq!(got.plaintext(), expected.as_slice(), "{file}");
                    assert_eq!(
                        sha256_hex(got.plaintext()),
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
        assert!(
            opened >= 5 && rejected >= 6,
            "{opened} opened, {rejected} rejected"
        );
    }
}

/// Each rejection for its own reason: tampering is opaque, a bad length is malformed, a
/// version without a record is not found.
#[tokio::test]
async fn branch_rejections_have_the_right_error() {
    let envelope = reader_for(Provider::default());
    let open = |file: &'static str| {
        let bytes = std::fs::read(dir().join(file)).expect("vector");
        let envelope = &envelope;
        async move { envelope.open(&bytes, b"ctx").await.err() }
    };
    for file in [
        "branch-nonce-flipped.cmke",
        "branch-wrapped-tag-flipped.cmke",
        "branch-kid-relabelled.cmke",
        "branch-dek-swapped.cmke",
    ] {
        let err = open(file).await;
        assert!(
            matches!(err, Some(Error::DecryptionFailed)),
            "{file}: {err:?}"
        );
    }
    let err = open("branch-wrapped-59.cmke").await;
    assert!(matches!(err, Some(Error::Malformed(_))), "{err:?}");
    let err = open("branch-unknown-version.cmke").await;
    assert!(matches!(err, Some(Error::KeyNotFound { .. })), "{err:?}");
}

/// An object under the old branch version is reported stale and re-wrapped locally to the
/// current one; the re-wrapped object opens to the same plaintext, with the same body.
#[tokio::test]
async fn an_old_branch_version_is_rewrapped_to_the_current_one() {
    let envelope = reader_for(Provider::default());
    let bytes = std::fs::read(dir().join("branch-multi-segment.cmke")).expect("vector");
    let opened = envelope.open(&bytes, b"ctx").await.expect("open");
    let current = std::fs::read_to_string(dir().join("branches/pub-br/current")).expect("current");
    let current_kid = format!("branch:pub-br/{}", current.trim());
    assert!(opened.info().kid().starts_with("branch:pub-br/"));
    assert_ne!(
        opened.info().kid(),
        current_kid,
        "the vector is under the old version"
    );
    let rewrapped = opened.info().rewrapped().expect("stale, so re-wrapped");
    assert_eq!(rewrapped.to_kid(), current_kid);
    let updated = rewrapped.apply_to(&bytes).expect("apply");
    let again = envelope
        .open(&updated, b"ctx")
        .await
        .expect("open re-wrapped");
    assert_eq!(again.plaintext(), opened.plaintext());
    assert!(!again.info().is_stale());
    assert_eq!(updated[updated.len() - 100..], bytes[bytes.len() - 100..]);
}
