//! A budget of key-service operations per second, shared by every wrapper and task that
//! holds a clone: a bulk job leaves the rest of the vault's throughput to the applications
//! that share it.
//!
//! The arithmetic is sans-I/O (the caller passes the time and sleeps itself): each operation
//! reserves the next free instant of an evenly spaced schedule (a token bucket holding one
//! token), so no second ever sees more than the rate. When the service throttles anyway,
//! [`KeyOpsLimit::pause_for`] moves the whole schedule back: every task waits together,
//! instead of each retrying on its own and keeping the vault saturated.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most this many key-service operations per second, across all clones.
///
/// Give one clone to each wrapper of a process or run
/// ([`KeyVaultOptions::max_key_ops`](crate::azure::KeyVaultOptions::max_key_ops),
/// [`Pkcs11Config::max_key_ops`](crate::pkcs11::Pkcs11Config::max_key_ops)); they share the
/// budget. Every request counts: Key Vault's `get`, `wrapKey`, `unwrapKey` and their retries,
/// a token's `C_Decrypt`.
///
/// ```
/// use std::num::NonZeroU32;
/// use cmk_envelope::wrap::KeyOpsLimit;
///
/// // A bulk job leaves most of a vault's ~400 RSA operations per second to production.
/// let limit = KeyOpsLimit::per_second(NonZeroU32::new(50).expect("not zero"));
/// let shared = limit.clone(); // same budget
/// assert_eq!(shared.rate(), Some(50));
///
/// // No rate, but a throttled request still pauses every clone together.
/// assert_eq!(KeyOpsLimit::unlimited().rate(), None);
/// ```
#[derive(Clone)]
pub struct KeyOpsLimit {
    /// `None`: no spacing, only the shared pause after a 429.
    rate: Option<NonZeroU32>,
    schedule: Arc<Mutex<Schedule>>,
}

struct Schedule {
    /// The earliest instant the next operation may start.
    next_free: Option<Instant>,
}

impl std::fmt::Debug for KeyOpsLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyOpsLimit")
            .field("per_second", &self.rate)
            .finish()
    }
}

impl KeyOpsLimit {
    /// A budget of `rate` operations per second.
    #[must_use]
    pub fn per_second(rate: NonZeroU32) -> Self {
        Self::with_rate(Some(rate))
    }

    /// No rate: operations are not spaced, but when the service throttles one of them,
    /// every clone pauses together for the time it asked ([`KeyOpsLimit::pause_for`]).
    #[must_use]
    pub fn unlimited() -> Self {
        Self::with_rate(None)
    }

    fn with_rate(rate: Option<NonZeroU32>) -> Self {
        Self {
            rate,
            schedule: Arc::new(Mutex::new(Schedule { next_free: None })),
        }
    }

    /// Operations per second; `None` when unlimited.
    #[must_use]
    pub fn rate(&self) -> Option<u32> {
        self.rate.map(NonZeroU32::get)
    }

    fn interval(&self) -> Duration {
        self.rate
            .map_or(Duration::ZERO, |rate| Duration::from_secs(1) / rate.get())
    }

    /// Reserves the next operation's turn at `now`: how long the caller must wait before
    /// starting it (zero when the budget has room).
    #[must_use]
    pub fn reserve_at(&self, now: Instant) -> Duration {
        let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
        let start = schedule.next_free.map_or(now, |free| free.max(now));
        schedule.next_free = Some(start + self.interval());
        start.saturating_duration_since(now)
    }

    /// The service throttled (or asked to wait `retry_after`): no operation of any clone
    /// starts before `now + retry_after`.
    pub fn pause_for(&self, retry_after: Duration, now: Instant) {
        let mut schedule = self.schedule.lock().unwrap_or_else(PoisonError::into_inner);
        let resume = now + retry_after;
        if schedule.next_free.is_none_or(|free| free < resume) {
            schedule.next_free = Some(resume);
        }
    }

    /// Waits, on the calling thread, for the next operation's turn: for work that already
    /// runs on its own thread (a PKCS#11 session worker).
    pub fn wait_blocking(&self) {
        let wait = self.reserve_at(Instant::now());
        if !wait.is_zero() {
            crate::observe::key_ops_wait(wait);
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u32) -> KeyOpsLimit {
        KeyOpsLimit::per_second(NonZeroU32::new(rate).expect("rate"))
    }

    #[test]
    fn operations_are_spaced_evenly_at_the_rate() {
        let limit = limit(4);
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|_| limit.reserve_at(t0)).collect();
        assert_eq!(
            waits,
            [0, 250, 500, 750, 1000, 1250].map(Duration::from_millis)
        );
        // A caller that comes after a quiet spell does not wait.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limit.reserve_at(later), Duration::ZERO);
    }

    #[test]
    fn no_one_second_window_holds_more_than_the_rate() {
        let limit = limit(10);
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..100).map(|_| limit.reserve_at(t0)).collect();
        for (i, start) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|s| **s < *start + Duration::from_secs(1))
                .count();
            assert!(in_window <= 10, "{in_window} at {start:?}");
        }
    }

    #[test]
    fn unlimited_spaces_nothing_but_still_pauses_together() {
        let limit = KeyOpsLimit::unlimited();
        let t0 = Instant::now();
        assert!((0..100).all(|_| limit.reserve_at(t0).is_zero()));
        limit.clone().pause_for(Duration::from_secs(1), t0);
        assert_eq!(limit.reserve_at(t0), Duration::from_secs(1));
        assert_eq!(limit.reserve_at(t0), Duration::from_secs(1));
    }

    #[test]
    fn a_throttle_pauses_every_clone() {
        let limit = limit(100);
        let other = limit.clone();
        let t0 = Instant::now();
        assert_eq!(limit.reserve_at(t0), Duration::ZERO);
        other.pause_for(Duration::from_secs(2), t0);
        assert_eq!(limit.reserve_at(t0), Duration::from_secs(2));
        assert_eq!(
            other.reserve_at(t0),
            Duration::from_secs(2) + Duration::from_millis(10)
        );
        // A shorter pause does not bring the schedule forward.
        limit.pause_for(Duration::from_millis(1), t0);
        assert!(limit.reserve_at(t0) > Duration::from_secs(2));
    }
}
