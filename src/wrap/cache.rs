//! A data-key cache in front of any [`KeyWrapper`]: fewer round trips to a key service.
//!
//! Unwrapped data keys are kept by (kid, wrapped bytes) for at most
//! [`CacheConfig::max_age`], and at most [`CacheConfig::max_entries`] of them; they are
//! wiped when evicted or dropped. Concurrent unwraps of one slot make one call, and at most
//! [`CacheConfig::max_concurrent_unwraps`] calls are in flight at once, so opening many
//! objects together neither serialises on one round trip nor floods the service.
//!
//! **Revocation.** A cached key keeps opening its objects after the key is disabled,
//! deleted or its access removed, for up to `max_age`: that is the price of not asking the
//! service every time. Choose `max_age` as the longest such delay you accept (Azure
//! services that cache keys use up to an hour); failures are never cached, and
//! [`CachingWrapper::clear`] drops every key at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::data_key::DataKey;
use crate::error::Result;
use crate::format::KeySlot;
#[cfg(test)]
use crate::policy::ProtectionLevel;
use crate::wrap::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// Limits of a [`CachingWrapper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most data keys kept; the oldest goes first. Default 10,000 (about 1 MB).
    pub max_entries: usize,
    /// How long a data key is kept, and so how long a revocation can take to stop objects
    /// this process already opened once. Default five minutes.
    pub max_age: Duration,
    /// Most unwrap calls in flight at once. Default 16.
    pub max_concurrent_unwraps: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_age: Duration::from_secs(300),
            max_concurrent_unwraps: 16,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SlotId {
    kid: String,
    wrapped: Vec<u8>,
}

struct Entry {
    /// Boxed: when the map grows it moves the pointer, not the key, so no unwiped copy of
    /// the key is left in the memory it frees.
    key: Box<DataKey>,
    stored: Instant,
}

#[derive(Default)]
struct Entries {
    by_slot: HashMap<SlotId, Entry>,
    /// Insertion order, for eviction; may name slots already evicted.
    order: VecDeque<(SlotId, Instant)>,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Unwraps answered from the cache.
    pub hits: u64,
    /// Unwraps passed to the wrapped key.
    pub calls: u64,
}

/// A [`KeyWrapper`] that caches what another one unwraps.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cmk_envelope::Error> {
/// use std::sync::Arc;
/// use cmk_envelope::Envelope;
/// use cmk_envelope::software::Keyring;
/// use cmk_envelope::wrap::{CacheConfig, CachingWrapper};
/// # let dir = tempfile::tempdir()?;
/// # let keyring = Keyring::create(dir.path())?;
/// # keyring.create_key("orders")?;
/// let key = Arc::new(keyring.key("orders")?);
/// let cached = Arc::new(CachingWrapper::new(key, CacheConfig::default()));
/// let envelope = Envelope::builder().seal_with(cached.clone()).build()?;
/// let sealed = envelope.seal(b"row 1", b"").await?;
/// envelope.open(&sealed, b"").await?;
/// envelope.open(&sealed, b"").await?; // no second unwrap
/// assert_eq!(cached.stats().calls, 1);
/// # Ok(()) }
/// ```
pub struct CachingWrapper {
    inner: Arc<dyn KeyWrapper>,
    config: CacheConfig,
    entries: Mutex<Entries>,
    in_flight: Mutex<HashMap<SlotId, Arc<async_lock::Mutex<()>>>>,
    permits: async_lock::Semaphore,
    stats: Mutex<CacheStats>,
}

impl std::fmt::Debug for CachingWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingWrapper")
            .field("config", &self.config)
            .field("entries", &self.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachingWrapper {
    /// Caches what `inner` unwraps, within `config`'s limits (each at least 1).
    #[must_use]
    pub fn new(inner: Arc<dyn KeyWrapper>, config: CacheConfig) -> Self {
        Self {
            inner,
            permits: async_lock::Semaphore::new(config.max_concurrent_unwraps.max(1)),
            config,
            entries: Mutex::new(Entries::default()),
            in_flight: Mutex::new(HashMap::new()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// Drops (and wipes) every cached key: after a revocation, to make it bite at once.
    pub fn clear(&self) {
        let mut entries = lock(&self.entries);
        entries.by_slot.clear();
        entries.order.clear();
    }

    /// How many keys are cached, expired ones included until they are next looked at.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.entries).by_slot.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hits and calls so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        *lock(&self.stats)
    }

    fn lookup(&self, id: &SlotId) -> Option<DataKey> {
        let mut entries = lock(&self.entries);
        let fresh = entries
            .by_slot
            .get(id)
            .map(|e| e.stored.elapsed() < self.config.max_age)?;
        if fresh {
            lock(&self.stats).hits += 1;
            entries.by_slot.get(id).map(|e| e.key.duplicate())
        } else {
            entries.by_slot.remove(id);
            None
        }
    }

    fn store(&self, id: SlotId, key: &DataKey) {
        let mut entries = lock(&self.entries);
        let stored = Instant::now();
        entries.order.push_back((id.clone(), stored));
        entries.by_slot.insert(
            id,
            Entry {
                key: key.duplicate_boxed(),
                stored,
            },
        );
        while entries.by_slot.len() > self.config.max_entries.max(1) {
            let Some((oldest, when)) = entries.order.pop_front() else {
                break;
            };
            // Only if that record is the entry's current one (not an older insert).
            if entries
                .by_slot
                .get(&oldest)
                .is_some_and(|e| e.stored == when)
            {
                entries.by_slot.remove(&oldest);
                crate::observe::cache_event("eviction");
            }
        }
        // Keep the order queue from growing without bound on re-inserts.
        if entries.order.len() > 2 * self.config.max_entries.max(1) {
            let live: VecDeque<_> = entries
                .order
                .iter()
                .filter(|(id, when)| entries.by_slot.get(id).is_some_and(|e| e.stored == *when))
                .cloned()
                .collect();
            entries.order = live;
        }
    }

    async fn unwrap_through(
        &self,
        id: &SlotId,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> Result<Unwrapped> {
        let gate = Arc::clone(lock(&self.in_flight).entry(id.clone()).or_default());
        let result = {
            let _one_call_per_slot = gate.lock().await;
            if let Some(key) = self.lookup(id) {
                // Another task's call answered while this one waited for it.
                crate::observe::cache_event("coalesced");
                return Ok(Unwrapped::Key(key));
            }
            let _permit = self.permits.acquire().await;
            lock(&self.stats).calls += 1;
            crate::observe::cache_event("miss");
            let result = self.inner.unwrap_key(slot, context).await;
            if let Ok(Unwrapped::Key(key)) = &result {
                self.store(id.clone(), key);
            }
            result
        };
        let mut in_flight = lock(&self.in_flight);
        if in_flight.get(id).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) <= 2
        {
            in_flight.remove(id);
        }
        result
    }
}

#[async_trait]
impl KeyWrapper for CachingWrapper {
    async fn current_kid(&self) -> Result<String> {
        self.inner.current_kid().await
    }

    /// Not cached: keeping the key of everything sealed would hold far more keys in memory
    /// than opening needs.
    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        self.inner.wrap_key(data_key, context).await
    }

    /// RSA slots through the cache; a slot bound to its object (a branch slot) goes to the
    /// inner wrapper, which unwraps it locally and keeps its own cache of branch keys.
    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        if !slot.algorithm().is_rsa() {
            return self.inner.unwrap_key(slot, context).await;
        }
        let id = SlotId {
            kid: slot.kid().to_owned(),
            wrapped: slot.wrapped().to_vec(),
        };
        if let Some(key) = self.lookup(&id) {
            crate::observe::cache_event("hit");
            return Ok(Unwrapped::Key(key));
        }
        self.unwrap_through(&id, slot, context).await
    }

    async fn confirm_wrap(
        &self,
        slot: &KeySlot,
        data_key: &DataKey,
        context: SlotContext<'_>,
    ) -> Result<()> {
        self.inner.confirm_wrap(slot, data_key, context).await
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data_key::live;
    use crate::format::WrapAlgorithm;

    /// Unwraps every slot to a key made of its first wrapped byte.
    struct ByFirstByte;

    #[async_trait]
    impl KeyWrapper for ByFirstByte {
        async fn current_kid(&self) -> Result<String> {
            Ok("test:key".to_owned())
        }
        async fn wrap_key(&self, _: &DataKey, _: SlotContext<'_>) -> Result<KeySlot> {
            Err(crate::Error::InvalidArgument("wrap-only test".into()))
        }
        async fn unwrap_key(&self, slot: &KeySlot, _: SlotContext<'_>) -> Result<Unwrapped> {
            let first = slot.wrapped().first().copied().unwrap_or(0);
            Ok(Unwrapped::Key(DataKey::from_bytes([first; 32])))
        }
        fn key_facts(&self) -> KeyFacts<'_> {
            KeyFacts::new(ProtectionLevel::Software, "test")
        }
    }

    fn slot(byte: u8) -> KeySlot {
        KeySlot::new(
            "test:key".into(),
            WrapAlgorithm::RsaOaepSha256,
            vec![byte; 8],
        )
        .expect("slot")
    }

    fn unwrap_and_drop(cache: &CachingWrapper, byte: u8) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        match runtime.block_on(cache.unwrap_key(&slot(byte), SlotContext::new(&[0; 32]))) {
            Ok(Unwrapped::Key(key)) => assert_eq!(key.expose_secret(), &[byte; 32]),
            _ => panic!("no key"),
        }
    }

    #[test]
    fn evicted_expired_and_cleared_keys_are_dropped_and_so_wiped() {
        let before = live::count();
        let cache = CachingWrapper::new(
            Arc::new(ByFirstByte),
            CacheConfig {
                max_entries: 2,
                max_age: Duration::from_secs(3600),
                max_concurrent_unwraps: 1,
            },
        );
        for byte in 1..=3 {
            unwrap_and_drop(&cache, byte);
        }
        // The oldest was evicted: two keys are alive, both in the cache.
        assert_eq!(cache.len(), 2);
        assert_eq!(live::count() - before, 2);
        unwrap_and_drop(&cache, 1);
        assert_eq!(
            cache.stats().calls,
            4,
            "the evicted key was asked for again"
        );

        cache.clear();
        assert_eq!(live::count() - before, 0);

        let expiring = CachingWrapper::new(
            Arc::new(ByFirstByte),
            CacheConfig {
                max_age: Duration::ZERO,
                ..CacheConfig::default()
            },
        );
        unwrap_and_drop(&expiring, 9);
        assert_eq!(live::count() - before, 1, "cached until next looked at");
        unwrap_and_drop(&expiring, 9);
        // The expired key was dropped when found; the fresh one replaced it.
        assert_eq!(live::count() - before, 1);
        assert_eq!(expiring.stats().hits, 0);
        drop(expiring);
        drop(cache);
        assert_eq!(live::count() - before, 0);
    }
}
