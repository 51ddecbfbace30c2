//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::software::{Keyring, SoftwareWrapper};
use cmk_envelope::{Envelope, KeyWrapper, Provider};

/// The copied shared vectors.
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// A fresh keyring in a temporary directory with one key, `orders`.
pub struct TempKeyring {
    pub dir: tempfile::TempDir,
    pub keyring: Keyring,
    pub key: Arc<SoftwareWrapper>,
}

pub fn temp_keyring(provider: Provider) -> TempKeyring {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path())
        .expect("keyring")
        .with_provider(provider);
    keyring.create_key("orders").expect("create key");
    let key = Arc::new(keyring.key("orders").expect("load key"));
    TempKeyring { dir, keyring, key }
}

pub fn envelope_for(key: &Arc<SoftwareWrapper>, provider: Provider, segment_size: u32) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::clone(key) as Arc<dyn KeyWrapper>)
        .provider(provider)
        .segment_size(segment_size)
        .build()
        .expect("envelope")
}

/// The same, limited to `threads` threads (1: segment-at-a-time streams).
pub fn envelope_with_threads(
    key: &Arc<SoftwareWrapper>,
    provider: Provider,
    segment_size: u32,
    threads: usize,
) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::clone(key) as Arc<dyn KeyWrapper>)
        .provider(provider)
        .segment_size(segment_size)
        .max_threads(threads)
        .build()
        .expect("envelope")
}

/// A current-thread runtime for tests that are not async themselves.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
