//! Which key services failed transiently, and who may ask one of them next: the failover
//! circuit of [`KeyResolver`](super::KeyResolver), per service (a wrapper's domain).
//!
//! A service is in one of three states:
//! - **unknown** (not asked yet, or its answers told nothing about its health): one call at
//!   a time; the others wait for its outcome, so that a service that is down when a process
//!   starts costs one call, not one per object in flight;
//! - **answering** (its last call got an answer): everyone calls it;
//! - **failed** (its last call failed transiently: throttled, 5xx, timeout): passed over for
//!   the cool-down; after it, one call at a time probes it while the others keep passing it
//!   over, so a dead service costs one call per cool-down.
//!
//! The states only steer objects that have a slot under another service: an object with one
//! service's slots always asks it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Which key services failed transiently, and when: what the failover cool-down reads
/// ([`EnvelopeBuilder::failover_cooldown`](crate::EnvelopeBuilder::failover_cooldown)).
/// Every clone of an envelope shares its own; give one to several envelopes
/// ([`EnvelopeBuilder::failover_state`](crate::EnvelopeBuilder::failover_state)) so that a
/// failure seen by one passes the service over for all (as `cmke` does for a run).
#[derive(Clone, Default)]
pub struct FailoverState {
    services: Arc<Mutex<HashMap<String, Service>>>,
}

#[derive(Default)]
struct Service {
    health: Health,
    /// Held by the one call that probes a service in the unknown or failed state.
    probe: Arc<async_lock::Mutex<()>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Health {
    #[default]
    Unknown,
    Answering,
    FailedAt(Instant),
}

/// What the resolver may do with a service now.
pub(crate) enum Admission {
    /// Call it; holding the guard (when there is one) makes this call the only probe.
    Call(Option<async_lock::MutexGuardArc<()>>),
    /// Pass it over: it failed transiently less than a cool-down ago, or another call is
    /// probing it after a failure.
    PassOver,
}

/// What a call's result tells about its service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Throttled, unavailable or timed out.
    FailedTransiently,
    /// The service answered (a key, or a refusal such as access denied or a failed
    /// decryption).
    Answered,
    /// No call reached a service (the wrapper did not hold the kid).
    NoCall,
}

impl std::fmt::Debug for FailoverState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        let failed = services
            .values()
            .filter(|s| matches!(s.health, Health::FailedAt(_)))
            .count();
        f.debug_struct("FailoverState")
            .field("services_failed", &failed)
            .finish()
    }
}

impl FailoverState {
    /// A state with no failure.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn health(&self, domain: &str) -> (Health, Arc<async_lock::Mutex<()>>) {
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(service) = services.get(domain) {
            return (service.health, Arc::clone(&service.probe));
        }
        let service = services.entry(domain.to_owned()).or_default();
        (service.health, Arc::clone(&service.probe))
    }

    /// Whether `domain` may be called now, after a failure `cooldown` long.
    pub(crate) async fn admit(&self, domain: &str, cooldown: Duration) -> Admission {
        let (health, probe) = self.health(domain);
        let guard = match health {
            Health::Answering => return Admission::Call(None),
            Health::FailedAt(at) if at.elapsed() < cooldown => return Admission::PassOver,
            // After a failure, one probe; the others do not wait for it.
            Health::FailedAt(_) => match probe.try_lock_arc() {
                Some(guard) => guard,
                None => return Admission::PassOver,
            },
            // Never asked: one asks, the others wait for what it learns.
            Health::Unknown => probe.lock_arc().await,
        };
        // The health may have changed while the guard was taken.
        match self.health(domain).0 {
            Health::Answering => Admission::Call(None),
            Health::FailedAt(at) if at.elapsed() < cooldown => Admission::PassOver,
            Health::FailedAt(_) | Health::Unknown => Admission::Call(Some(guard)),
        }
    }

    /// Records what a call to `domain` showed.
    pub(crate) fn note(&self, domain: &str, outcome: Outcome) {
        let health = match outcome {
            Outcome::FailedTransiently => Health::FailedAt(Instant::now()),
            Outcome::Answered => Health::Answering,
            Outcome::NoCall => return,
        };
        // Every open notes its call: a look-up, with no allocation once the service is
        // known.
        let mut services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        match services.get_mut(domain) {
            Some(service) => service.health = health,
            None => {
                services.entry(domain.to_owned()).or_default().health = health;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A minimal executor: the futures here complete without waiting (no contention).
    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut context = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
                return value;
            }
        }
    }

    const COOLDOWN: Duration = Duration::from_secs(3600);

    #[test]
    fn an_answering_service_admits_everyone_at_once() {
        let state = FailoverState::new();
        state.note("a", Outcome::Answered);
        assert!(matches!(
            block_on(state.admit("a", COOLDOWN)),
            Admission::Call(None)
        ));
        assert!(matches!(
            block_on(state.admit("a", COOLDOWN)),
            Admission::Call(None)
        ));
    }

    #[test]
    fn a_failed_service_is_passed_over_for_the_cooldown() {
        let state = FailoverState::new();
        state.note("a", Outcome::FailedTransiently);
        assert!(matches!(
            block_on(state.admit("a", COOLDOWN)),
            Admission::PassOver
        ));
        // Another service is not blamed.
        assert!(matches!(
            block_on(state.admit("b", COOLDOWN)),
            Admission::Call(Some(_))
        ));
    }

    #[test]
    fn after_the_cooldown_one_probe_and_the_others_pass_over() {
        let state = FailoverState::new();
        state.note("a", Outcome::FailedTransiently);
        let probe = block_on(state.admit("a", Duration::ZERO));
        assert!(matches!(probe, Admission::Call(Some(_))));
        assert!(matches!(
            block_on(state.admit("a", Duration::ZERO)),
            Admission::PassOver
        ));
        state.note("a", Outcome::Answered);
        drop(probe);
        assert!(matches!(
            block_on(state.admit("a", Duration::ZERO)),
            Admission::Call(None)
        ));
    }

    #[test]
    fn a_call_that_reached_no_service_changes_nothing() {
        let state = FailoverState::new();
        state.note("a", Outcome::FailedTransiently);
        state.note("a", Outcome::NoCall);
        assert!(matches!(
            block_on(state.admit("a", COOLDOWN)),
            Admission::PassOver
        ));
    }
}
