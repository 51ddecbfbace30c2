//! The software keyring: RSA keys in PKCS#8 PEM files on disk, the embedded default.
//!
//! Layout (docs/FORMAT.md, "Stores on disk"): `{dir}/{name}/{version}.pem` (mode 0600) and `{dir}/{name}/current`
//! naming the current version. Kids are `local:{name}/{version}`. Rotation adds a version
//! and atomically replaces `current`; versions are never deleted.
//!
//! A software key is not customer-managed ([`ProtectionLevel::Software`](crate::ProtectionLevel)):
//! use it for development, tests and as the embedded default, and move to an HSM or Key
//! Vault key for customer-managed protection.

mod key;
mod keyring;
mod material;
mod rotations;

pub use key::SoftwareWrapper;
pub use keyring::{KeyListing, Keyring};
