//! The crypto providers: one small interface, two implementations.
//!
//! Everything the data path needs from cryptography goes through one internal interface: random bytes,
//! SHA-256, HKDF-SHA-256, AES-256-GCM with detached tags, and RSA-OAEP. The providers are
//! `aws-lc` (aws-lc-rs, the default) and `rustcrypto` (aes-gcm, rsa, hkdf, sha2).
//!
//! With feature `fips`, `aws-lc` runs on AWS-LC's FIPS 140-3 validated module and
//! `rustcrypto` is not compiled at all, even when its feature is on: nothing in the data path
//! can be served by an unvalidated implementation.

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(test)]
pub(crate) mod counting;
mod fips;
#[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
mod rust_crypto;
mod schedule;
#[cfg(test)]
mod wycheproof_tests;

mod ops;
mod provider;

pub use fips::{fips_status, require_fips, FipsStatus};
#[cfg(feature = "aws-lc")]
pub(crate) use ops::rsa_spki_der;
pub(crate) use ops::{CryptoFailure, CryptoOps, RsaPrivate, RsaPublic, SegmentCipher};
pub use provider::Provider;
pub(crate) use schedule::KeySchedule;

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("enable a crypto provider: feature `aws-lc` (default) or `rustcrypto`");
