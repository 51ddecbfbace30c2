//! The per-object data key.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a data key: AES-256 ([`DataKey::LEN`]).
pub(crate) const DATA_KEY_LEN: usize = 32;

/// A 32-byte data encryption key (DEK), fresh for every object.
///
/// Deliberately not `Clone`, `Debug` or `Display`: the bytes leave this type only through
/// [`DataKey::expose_secret`], and are wiped when it is dropped.
#[derive(Zeroize)]
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
        #[cfg(test)]
        live::dropped();
    }
}

impl ZeroizeOnDrop for DataKey {}

impl DataKey {
    /// Length of a data key in bytes: AES-256.
    pub const LEN: usize = DATA_KEY_LEN;

    /// Wraps existing key bytes. Prefer letting the crate generate keys; this exists for
    /// key wrappers that recover a data key from a slot.
    #[must_use]
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        #[cfg(test)]
        live::made();
        Self { bytes }
    }

    /// A data key from a recovered slice, if it has the right length. The caller's slice is
    /// not wiped: wipe it yourself (a `Zeroizing` buffer does).
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != DATA_KEY_LEN {
            return None;
        }
        // Copied straight into the key, not through an array of our own left unwiped.
        let mut key = Self::from_bytes([0; DATA_KEY_LEN]);
        key.bytes.copy_from_slice(bytes);
        Some(key)
    }

    /// A second owner of the same key (for a cache), wiped on drop like the first. Not
    /// `Clone`, so that every copy is a visible decision.
    pub(crate) fn duplicate(&self) -> Self {
        Self::from_bytes(self.bytes)
    }

    /// Like [`DataKey::duplicate`], on the heap: a key that is kept (in a cache) stays at
    /// one address while its container grows, instead of leaving unwiped copies behind
    /// each time the container moves its elements.
    pub(crate) fn duplicate_boxed(&self) -> Box<Self> {
        let mut boxed = Box::new(Self::from_bytes([0; DATA_KEY_LEN]));
        boxed.bytes.copy_from_slice(&self.bytes);
        boxed
    }

    /// Whether two data keys are the same, in constant time.
    #[must_use]
    pub fn same_as(&self, other: &DataKey) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.bytes.ct_eq(&other.bytes))
    }

    /// The raw key bytes, for a key wrapper to wrap. The name is a warning: never log,
    /// store or send these bytes unwrapped.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; DATA_KEY_LEN] {
        &self.bytes
    }
}

/// Test-only count of data keys alive on this thread, so that tests can see keys being
/// dropped (and so wiped) where they should be.
#[cfg(test)]
pub(crate) mod live {
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<i64> = const { Cell::new(0) };
    }

    pub(super) fn made() {
        LIVE.with(|n| n.set(n.get() + 1));
    }

    pub(super) fn dropped() {
        LIVE.with(|n| n.set(n.get() - 1));
    }

    /// Data keys made and not yet dropped on this thread.
    pub(crate) fn count() -> i64 {
        LIVE.with(Cell::get)
    }
}
