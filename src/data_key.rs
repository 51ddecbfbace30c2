//! The per-object data key.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// A 32-byte data encryption key (DEK), fresh for every object.
///
/// Deliberately not `Clone`, `Debug` or `Display`: the bytes leave this type only through
/// [`DataKey::expose_secret`], and are wiped when it is dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
}

impl DataKey {
    /// Wraps existing key bytes. Prefer letting the crate generate keys; this exists for
    /// key wrappers that recover a data key from a slot.
    #[must_use]
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        Self { bytes }
    }

    /// A data key from a recovered slice, if it has the right length. The caller's slice is
    /// not wiped: wipe it yourself (a `Zeroizing` buffer does).
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; DATA_KEY_LEN] = bytes.try_into().ok()?;
        Some(Self { bytes: array })
    }

    /// A second owner of the same key (for a cache), wiped on drop like the first. Not
    /// `Clone`, so that every copy is a visible decision.
    pub(crate) fn duplicate(&self) -> Self {
        Self { bytes: self.bytes }
    }

    /// The raw key bytes, for a key wrapper to wrap. The name is a warning: never log,
    /// store or send these bytes unwrapped.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.bytes
    }
}
