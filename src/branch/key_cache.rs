//! Unwrapped branch keys, kept for a bounded time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_lock::OnceCell;

use super::BranchKey;
use crate::error::{Error, Result};

/// How long and how many unwrapped branch keys a [`BranchWrapper`](super::BranchWrapper)
/// keeps in memory.
///
/// The time to live is also how long a revocation of the CMK takes to bite: a branch key
/// unwrapped just before the CMK was disabled keeps opening and sealing objects until its
/// time is up. The default is 5 minutes; it may be set from 1 second to 24 hours.
///
/// ```
/// use std::time::Duration;
/// use cmk_envelope::branch::BranchKeyCacheConfig;
/// let config = BranchKeyCacheConfig::default()
///     .time_to_live(Duration::from_secs(60))?
///     .max_entries(100)?;
/// assert_eq!(config.ttl(), Duration::from_secs(60));
/// # Ok::<(), cmk_envelope::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchKeyCacheConfig {
    ttl: Duration,
    max_entries: usize,
}

impl BranchKeyCacheConfig {
    /// The default time to live: 5 minutes.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
    /// The longest time to live allowed: 24 hours.
    pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
    /// The shortest time to live allowed: 1 second.
    pub const MIN_TTL: Duration = Duration::from_secs(1);
    /// The default number of branch versions kept: 1,000.
    pub const DEFAULT_MAX_ENTRIES: usize = 1000;

    /// Keeps each branch key this long after it was unwrapped (1 s ..= 24 h).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] outside the limits.
    pub fn time_to_live(mut self, ttl: Duration) -> Result<Self> {
        if !(Self::MIN_TTL..=Self::MAX_TTL).contains(&ttl) {
            return Err(Error::InvalidArgument(format!(
                "branch key time to live {ttl:?} is outside 1 s ..= 24 h"
            )));
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// Keeps at most this many branch versions (at least 1); the oldest goes first.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0.
    pub fn max_entries(mut self, max_entries: usize) -> Result<Self> {
        if max_entries == 0 {
            return Err(Error::InvalidArgument(
                "a branch key cache holds at least one key".to_owned(),
            ));
        }
        self.max_entries = max_entries;
        Ok(self)
    }

    /// The time to live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The most entries.
    #[must_use]
    pub fn entries(&self) -> usize {
        self.max_entries
    }
}

impl Default for BranchKeyCacheConfig {
    fn default() -> Self {
        Self {
            ttl: Self::DEFAULT_TTL,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
        }
    }
}

/// One branch version: filled once by whichever caller comes first; the others wait for it.
#[derive(Default)]
struct Entry {
    key: OnceCell<(Arc<BranchKey>, Instant)>,
}

impl Entry {
    fn expired(&self, now: Instant, ttl: Duration) -> bool {
        self.key
            .get()
            .is_some_and(|(_, since)| now.saturating_duration_since(*since) >= ttl)
    }

    fn since(&self) -> Option<Instant> {
        self.key.get().map(|(_, since)| *since)
    }
}

/// The cache: branch kid → entry. An entry removed (expired or evicted) is dropped when its
/// last user is done, and the key is wiped then.
pub(crate) struct BranchKeyCache {
    config: BranchKeyCacheConfig,
    entries: Mutex<Entries>,
}

/// The entries, and when expired ones were last swept out.
struct Entries {
    by_kid: HashMap<String, Arc<Entry>>,
    swept: Instant,
}

/// How often a look-up also sweeps out every expired entry: often enough that an unused
/// key is wiped soon after its time, rarely enough that the open path stays one hash look-up.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl BranchKeyCache {
    pub(crate) fn new(config: BranchKeyCacheConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(Entries {
                by_kid: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    pub(crate) fn config(&self) -> BranchKeyCacheConfig {
        self.config
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry of `kid`, made if missing or expired. Expired entries go first, then, if the
    /// cache is full, the oldest.
    fn entry(&self, kid: &str) -> Arc<Entry> {
        let now = Instant::now();
        let ttl = self.config.ttl;
        let mut guard = self.lock();
        if now.saturating_duration_since(guard.swept) >= SWEEP_EVERY {
            guard.by_kid.retain(|_, entry| !entry.expired(now, ttl));
            guard.swept = now;
        }
        let entries = &mut guard.by_kid;
        match entries.get(kid) {
            Some(entry) if !entry.expired(now, ttl) => return Arc::clone(entry),
            Some(_) => {
                entries.remove(kid);
                crate::observe::branch_cache_event("expiry");
            }
            None => {}
        }
        while entries.len() >= self.config.max_entries {
            // Entries still being filled have no time and are kept: someone waits on them.
            let oldest = entries
                .iter()
                .filter_map(|(kid, entry)| Some((entry.since()?, kid.clone())))
                .min();
            match oldest {
                Some((_, kid)) => {
                    entries.remove(&kid);
                    crate::observe::branch_cache_event("eviction");
                }
                None => break,
            }
        }
        let entry = Arc::new(Entry::default());
        entries.insert(kid.to_owned(), Arc::clone(&entry));
        entry
    }

    /// The branch key of `kid`, from memory or through `load` (one call however many
    /// callers ask at once; a failed load is not kept, so the next caller tries again),
    /// with the moment its time to live ends.
    pub(crate) async fn get_or_load<F, Fut>(
        &self,
        kid: &str,
        load: F,
    ) -> Result<(Arc<BranchKey>, Instant)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<BranchKey>>,
    {
        let entry = self.entry(kid);
        if let Some((key, since)) = entry.key.get() {
            crate::observe::branch_cache_event("hit");
            return Ok((Arc::clone(key), *since + self.config.ttl));
        }
        let loaded_here = AtomicBool::new(false);
        let (key, since) = entry
            .key
            .get_or_try_init(|| async {
                loaded_here.store(true, Ordering::Relaxed);
                crate::observe::branch_cache_event("miss");
                Ok::<_, Error>((Arc::new(load().await?), Instant::now()))
            })
            .await?;
        if !loaded_here.load(Ordering::Relaxed) {
            // Another caller's load answered while this one waited for it.
            crate::observe::branch_cache_event("coalesced");
        }
        Ok((Arc::clone(key), *since + self.config.ttl))
    }

    /// Forgets every key (they are wiped once no caller holds them).
    pub(crate) fn clear(&self) {
        self.lock().by_kid.clear();
    }

    /// Branch versions held now (filled or being filled).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_kid.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key() -> BranchKey {
        BranchKey::from_slice(&[1; 32]).expect("32 bytes")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_uses_make_one_load() {
        let cache = Arc::new(BranchKeyCache::new(BranchKeyCacheConfig::default()));
        let loads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads) = (Arc::clone(&cache), Arc::clone(&loads));
                tokio::spawn(async move {
                    cache
                        .get_or_load("branch:a/1", || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(key())
                        })
                        .await
                        .map(|_| ())
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("load");
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_load_is_not_kept_and_the_oldest_entry_goes_first() {
        let config = BranchKeyCacheConfig::default()
            .max_entries(2)
            .expect("config");
        let cache = BranchKeyCache::new(config);
        let failed = cache
            .get_or_load("branch:a/1", || async { Err(Error::DecryptionFailed) })
            .await;
        assert!(matches!(failed, Err(Error::DecryptionFailed)));
        cache
            .get_or_load("branch:a/1", || async { Ok(key()) })
            .await
            .expect("second try loads");
        cache
            .get_or_load("branch:a/2", || async { Ok(key()) })
            .await
            .expect("load");
        cache
            .get_or_load("branch:a/3", || async { Ok(key()) })
            .await
            .expect("load");
        assert_eq!(cache.len(), 2);
        let loads = AtomicUsize::new(0);
        cache
            .get_or_load("branch:a/1", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok(key())
            })
            .await
            .expect("reload");
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "a/1 was the oldest, evicted"
        );
    }

    #[tokio::test]
    async fn an_expired_key_is_loaded_again() {
        let config = BranchKeyCacheConfig::default()
            .time_to_live(Duration::from_secs(1))
            .expect("config");
        let cache = BranchKeyCache::new(config);
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(key())
        };
        cache.get_or_load("branch:a/1", load).await.expect("load");
        cache.get_or_load("branch:a/1", load).await.expect("cached");
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        cache.get_or_load("branch:a/1", load).await.expect("reload");
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn limits_are_enforced() {
        let config = BranchKeyCacheConfig::default();
        assert!(config.time_to_live(Duration::ZERO).is_err());
        assert!(config.time_to_live(Duration::from_secs(86_401)).is_err());
        assert!(config.max_entries(0).is_err());
    }
}
