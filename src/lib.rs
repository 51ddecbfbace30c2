//! # cmk-envelope
//!
//! Envelope encryption under customer-managed keys. Every object gets a fresh AES-256-GCM
//! data key; the data key is wrapped with RSA-OAEP by a key-encryption key the customer
//! controls, through one [`KeyWrapper`] trait. Every envelope names the key *version* that
//! wrapped it, so after a rotation old objects stay readable and can be re-wrapped lazily:
//! only the small header changes, never the body.
//!
//! The crate root holds what every caller meets: the [`Envelope`] and what it returns, the
//! [`KeyWrapper`] trait with the types its methods take, the [`DataKey`] and the [`Error`].
//! The rest lives in modules named for what they hold:
//!
//! - [`software`], `azure`, `pkcs11`: the key services (`azure` and `pkcs11` behind the
//!   features of those names); [`software::Keyring`] is the embedded default.
//! - [`branch`]: branch keys, one key-service call per branch key instead of per object.
//! - [`wrap`]: what goes around any key service: the data-key cache, the key-operation budget.
//! - [`policy`]: which keys may wrap, which key services a file may name, where a re-wrap may go.
//! - [`kid`]: key identifiers, key names and versions (the one place a kid is taken apart).
//! - [`stream`]: sealing and opening as `Read`/`Write` and `AsyncRead`/`AsyncWrite`.
//! - [`inspect`](mod@inspect): what a header says, without keys.
//! - [`format`](mod@format): the CMKE v1 wire format (no crypto, no I/O); see `docs/FORMAT.md`.
//! - [`crypto`]: the crypto provider (aws-lc-rs by default, or RustCrypto) and FIPS status.
//! - [`trust`]: opening an operator's files only when every part of the path is theirs.
//! - [`redact`]: removing credentials from text before it is shown.
//!
//! Setters that return `Self` (builders, options, configurations) are named for what they
//! set, without a `with_` prefix: `Envelope::builder().provider(..)`,
//! `Keyring::open(dir)?.provider(..)`.
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

#[cfg(feature = "azure")]
pub mod azure;
#[cfg(feature = "azure")]
mod azure_sdk_errors;
#[cfg(feature = "azure-blob")]
pub mod blob;
pub mod branch;
pub mod crypto;
mod data_key;
mod engine;
mod envelope;
mod error;
pub mod format;
pub mod inspect;
pub mod kid;
mod observe;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod policy;
pub mod redact;
pub mod software;
pub mod stream;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod trust;
pub mod wrap;

pub use data_key::DataKey;
pub use envelope::{Envelope, EnvelopeBuilder, OpenInfo, Opened, RewrapTarget, Rewrapped, Sealed};
pub use error::{Error, Result};
pub use policy::ProtectionLevel;
pub use wrap::key_wrapper::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// Re-exported so that implementors of [`KeyWrapper`] use the same macro version.
pub use async_trait::async_trait;

/// The README's Rust examples, compiled as doc tests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
