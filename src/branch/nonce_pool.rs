//! Nonces for branch slots, drawn from the random generator many at a time.
//!
//! A call to the generator costs about as much as the rest of a branch wrap (measured in
//! `benches/branch.rs`, `part_random_12B`), whatever its length, so a wrapper draws the
//! nonces of many slots in one call. A nonce is not secret, and each slot's key is derived
//! from its object's message id (drawn fresh from the generator by the envelope, which is
//! fork-safe): even two processes forked with the same pool, handing out the same nonce,
//! use it under two different slot keys. Within a process every nonce is handed out once.

use std::sync::{Mutex, PoisonError};

use crate::crypto::{CryptoFailure, Provider};

/// Bytes of a branch slot's nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Nonces drawn per call to the generator.
const NONCES_PER_DRAW: usize = 64;

pub(crate) struct NoncePool {
    pool: Mutex<Pool>,
}

struct Pool {
    bytes: [u8; NONCE_LEN * NONCES_PER_DRAW],
    /// Where the next nonce starts; the pool's length when all were handed out.
    next: usize,
}

impl NoncePool {
    /// An empty pool: the first nonce draws.
    pub(crate) fn new() -> Self {
        Self {
            pool: Mutex::new(Pool {
                bytes: [0; NONCE_LEN * NONCES_PER_DRAW],
                next: NONCE_LEN * NONCES_PER_DRAW,
            }),
        }
    }

    /// A nonce no other slot of this process got from this pool.
    ///
    /// # Errors
    /// [`CryptoFailure`] when the generator fails (the pool stays empty).
    pub(crate) fn take(&self, provider: Provider) -> Result<[u8; NONCE_LEN], CryptoFailure> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.next >= pool.bytes.len() {
            provider.ops().fill_random(&mut pool.bytes)?;
            pool.next = 0;
        }
        let start = pool.next;
        let end = start.saturating_add(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = pool
            .bytes
            .get(start..end)
            .and_then(|n| n.try_into().ok())
            .ok_or(CryptoFailure)?;
        pool.next = end;
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nonce_is_handed_out_once_across_draws() {
        let pool = NoncePool::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..NONCES_PER_DRAW * 3 + 5 {
            assert!(seen.insert(pool.take(Provider::default()).expect("nonce")));
        }
    }
}
