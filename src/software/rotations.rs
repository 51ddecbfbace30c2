//! Rotations made in this process, counted per keyring directory, so that every key loaded
//! from that keyring (through any `Keyring` handle) follows them without a `refresh`.
//!
//! A rotation by another process is not seen here: [`SoftwareWrapper::refresh`] reads the disk
//! again for that.
//!
//! [`SoftwareWrapper::refresh`]: super::SoftwareWrapper::refresh

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The rotation count of one keyring directory, shared by every handle on it.
#[derive(Debug, Clone)]
pub(crate) struct RotationCount(Arc<AtomicU64>);

impl RotationCount {
    /// The count for the keyring whose canonical domain is `domain`.
    pub(crate) fn of(domain: &str) -> Self {
        static COUNTS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
        let counts = COUNTS.get_or_init(|| Mutex::new(HashMap::new()));
        let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
        Self(Arc::clone(counts.entry(domain.to_owned()).or_default()))
    }

    /// How many keys of this keyring have been created, rotated or imported so far.
    pub(crate) fn now(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// A key's `current` changed.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}
