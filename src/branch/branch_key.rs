//! The branch key itself: 32 secret bytes.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes of a branch key.
pub const BRANCH_KEY_LEN: usize = 32;

/// A branch key: 32 secret bytes, wiped on drop; not `Clone`, `Debug` or `Display`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct BranchKey {
    bytes: [u8; BRANCH_KEY_LEN],
}

impl BranchKey {
    /// A branch key from exactly 32 recovered bytes.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut key = Self {
            bytes: [0; BRANCH_KEY_LEN],
        };
        key.bytes.copy_from_slice(bytes.get(..BRANCH_KEY_LEN)?);
        (bytes.len() == BRANCH_KEY_LEN).then_some(key)
    }

    pub(crate) fn expose_secret(&self) -> &[u8; BRANCH_KEY_LEN] {
        &self.bytes
    }
}
