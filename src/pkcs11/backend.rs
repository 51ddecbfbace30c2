//! The name errors of this backend carry.

/// The `backend` of this backend's errors.
pub(super) const BACKEND: &str = "pkcs11";
