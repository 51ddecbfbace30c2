//! Branch keys: one key-service call per branch key, not per object (docs/FORMAT.md, "Branch
//! keys (slot algorithm 3)").
//!
//! A branch key is 32 random bytes kept in a *record*: an ordinary CMKE envelope of those
//! bytes under a customer-managed key (any [`KeyWrapper`](crate::KeyWrapper): the software
//! keyring, Key Vault, PKCS#11). Objects are sealed under the branch key locally: each
//! object's data key is wrapped with AES-256-GCM under a key derived from the branch key
//! and the object's message id. Opening an object needs the branch key, which is recovered
//! from its record with one CMK unwrap and then kept in memory for a bounded time
//! ([`BranchKeyCacheConfig`]). Revoking the CMK therefore stops opens only once that
//! time has passed.
//!
//! The records live in a [`BranchStore`]: a directory ([`DirectoryStore`], the embedded
//! default) or an Azure Blob Storage container ([`BlobStore`], feature `azure-blob`). The layout is that of the
//! keyring: `{name}/{version}.cmke` and `{name}/current`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cmk_envelope::Error> {
//! use std::sync::Arc;
//! use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
//! use cmk_envelope::{software::Keyring, Envelope};
//!
//! let dir = tempfile::tempdir()?;
//! let keyring = Keyring::create(dir.path().join("keys"))?;
//! keyring.create_key("orders-cmk")?;
//! let cmk = Arc::new(keyring.key("orders-cmk")?);
//! let store = Arc::new(DirectoryStore::create(dir.path().join("branches"))?);
//!
//! let branch = BranchWrapper::create(store, "orders", cmk).await?;
//! let envelope = Envelope::builder().seal_with(Arc::new(branch)).build()?;
//! let sealed = envelope.seal(b"order #1", b"").await?;
//! assert_eq!(envelope.open(&sealed, b"").await?.plaintext(), b"order #1");
//! # Ok(()) }
//! ```

#[cfg(feature = "azure-blob")]
mod blob;
mod branch_key;
mod directory;
mod key_cache;
mod nonce_pool;
mod record;
mod slot;
mod store;
mod wrapper;

#[cfg(feature = "azure-blob")]
pub use blob::BlobStore;
pub(crate) use branch_key::BranchKey;
pub use branch_key::BRANCH_KEY_LEN;
pub use directory::{DirectoryStore, MAX_RECORD_LEN};
pub use key_cache::BranchKeyCacheConfig;
pub use store::{BranchStore, StoredCurrent, StoredRecord};
pub use wrapper::{BranchListing, BranchWrapper, RecordKeys};
