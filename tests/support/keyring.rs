//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::software::{Keyring, SoftwareWrapper};
use cmk_envelope::{Envelope, KeyWrapper};

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
        .provider(provider);
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

/// A private copy of the committed tree at `from` (a keyring, a branch store): directories
/// 0700, files 0600. Git keeps neither mode, and a keyring whose key files others can read
/// is refused, as ssh refuses such a private key.
pub fn private_copy(from: &std::path::Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_private(from, copy.path());
    copy
}

/// As [`private_copy`], kept for the whole test process (under the target directory's
/// temporary folder, which `cargo clean` empties): for readers that outlive one function.
pub fn private_copy_kept(from: &std::path::Path) -> PathBuf {
    let copy = tempfile::Builder::new()
        .prefix("private-copy")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
        .keep();
    copy_private(from, &copy);
    copy
}

fn copy_private(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).expect("mkdir");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_private(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
    }
}

/// Writes a secret file as its owner must keep it: mode 0600 (a PIN, a client secret).
pub fn write_private(path: &std::path::Path, contents: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}
