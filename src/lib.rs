//! # cmk-envelope
//!
//! Envelope encryption under customer-managed keys. Every object gets a fresh AES-256-GCM
//! data key; the data key is wrapped with RSA-OAEP by a key-encryption key the customer
//! controls, through one [`KeyWrapper`] trait. Every envelope names the key *version* that
//! wrapped it, so after a rotation old objects stay readable and can be re-wrapped lazily:
//! only the small header changes, never the body.
//!
//! - [`Envelope`]: seal, open, re-wrap (attached or detached header).
//! - [`software::Keyring`]: the embedded default, RSA keys in PEM files on disk.
//! - [`branch`]: branch keys, one key-service call per branch key instead of per object.
//! - [`inspect`]: what a header says, without keys.
//! - [`format`](mod@format): the CMKE v1 wire format (no crypto, no I/O); see `docs/FORMAT.md`.
//! - [`Provider`]: aws-lc-rs (default) or RustCrypto.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cmk_envelope::Error> {
//! use std::sync::Arc;
//! use cmk_envelope::{software::Keyring, Envelope};
//!
//! let dir = tempfile::tempdir()?;
//! let keyring = Keyring::create(dir.path())?;
//! keyring.create_key("orders")?;
//! let key = Arc::new(keyring.key("orders")?);
//! let envelope = Envelope::builder().seal_with(key.clone()).build()?;
//! let sealed = envelope.seal(b"hello", b"row=7").await?;
//!
//! // Rotate: new data uses the new version; the old object still opens and hands back a
//! // header re-wrapped to the new version (the body is unchanged).
//! keyring.rotate_key("orders")?; // keys of this keyring follow at once
//! let opened = envelope.open(&sealed, b"row=7").await?;
//! assert_eq!(opened.plaintext(), b"hello");
//! let rewrapped = opened.info().rewrapped().expect("stale after rotation");
//! let updated = rewrapped.apply_to(&sealed)?;
//! assert!(!envelope.open(&updated, b"row=7").await?.info().is_stale());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod crypto;
mod data_key;
mod engine;
mod envelope;
mod error;
mod fips;
pub mod format;
mod inspect;
mod kid;
mod policy;
pub mod redact;
pub mod stream;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod trust;
mod wrap;

pub use crypto::Provider;
pub use data_key::{DataKey, DATA_KEY_LEN};
pub use envelope::{Envelope, EnvelopeBuilder, OpenInfo, Opened, RewrapTarget, Rewrapped, Sealed};
pub use error::{Error, Result};
pub use fips::{fips_status, require_fips, FipsStatus};
pub use format::{KeySlot, WrapAlgorithm};
pub use inspect::{inspect, inspect_reader, inspect_stream, BodyInfo, HeaderInfo, SlotInfo};
pub use kid::Kid;
pub use policy::{RewrapEndpoint, RewrapPolicy};
pub use trust::check_file_trust;
#[cfg(feature = "azure")]
pub use wrap::azure;
#[cfg(feature = "pkcs11")]
pub use wrap::pkcs11;
pub use wrap::{
    branch, pkcs11_token_of, software, vault_host_of, CacheConfig, CacheStats, CachingWrapper,
    KeyFacts, KeyOpsLimit, KeyRules, KeyWrapper, KidAllowlist, ProtectionLevel, SlotContext,
    Unwrapped, RSA_PUBLIC_EXPONENT, RSA_SIZES,
};

/// Re-exported so that implementors of [`KeyWrapper`] use the same macro version.
pub use async_trait::async_trait;

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
