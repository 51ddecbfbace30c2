//! Picks the wrapper for a slot's kid.

use std::sync::Arc;
use std::time::Duration;

use super::failover::{Admission, FailoverState, Outcome};
use super::{KeyWrapper, SlotContext, Unwrapped};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::KeySlot;
use crate::policy::KidAllowlist;

/// The wrappers an [`Envelope`](crate::Envelope) may open with. Each slot is offered to each
/// wrapper in order until one claims it, so one envelope handle opens objects written under
/// many keys and key versions, across backends.
#[derive(Clone, Default)]
pub struct KeyResolver {
    wrappers: Vec<Arc<dyn KeyWrapper>>,
    allowlist: Option<KidAllowlist>,
    /// How long a key service (a wrapper's domain) that failed transiently is passed over
    /// when the object has a slot elsewhere.
    cooldown: Duration,
    /// Which slot is tried first.
    order: SlotOrder,
    /// When each domain last failed transiently: shared by every clone of this resolver
    /// (every clone of its envelope), and by envelopes given the same state.
    failed: FailoverState,
}

/// The order in which opening tries an object's slots
/// ([`EnvelopeBuilder::slot_order`](crate::EnvelopeBuilder::slot_order)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotOrder {
    /// As written in the object's header: the writer's first key first.
    #[default]
    AsWritten,
    /// In the order of the envelope's own keys: a slot that the first key added holds
    /// first, then the second's, and so on; slots no key claims by its kid alone last, as
    /// written.
    Preferred,
}

impl std::fmt::Debug for KeyResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.wrappers.iter().map(|w| w.key_facts().domain))
            .finish()
    }
}

/// A data key recovered from one slot, with the wrapper that recovered it and what the
/// acceptance check derived from it.
pub(crate) struct Recovered<T> {
    pub(crate) data_key: DataKey,
    pub(crate) slot_index: usize,
    pub(crate) wrapper: Arc<dyn KeyWrapper>,
    pub(crate) accepted: T,
}

impl<T> Recovered<T> {
    /// Takes out what the acceptance check derived, keeping the rest.
    pub(crate) fn into_accepted(self) -> (T, Recovered<()>) {
        let Self {
            data_key,
            slot_index,
            wrapper,
            accepted,
        } = self;
        let rest = Recovered {
            data_key,
            slot_index,
            wrapper,
            accepted: (),
        };
        (accepted, rest)
    }
}

impl KeyResolver {
    /// An empty resolver.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes over, for `cooldown`, a key service that failed transiently when an object
    /// has a slot under another one.
    pub fn set_failover_cooldown(&mut self, cooldown: Duration) {
        self.cooldown = cooldown;
    }

    /// Tries slots in `order`.
    pub(crate) fn set_slot_order(&mut self, order: SlotOrder) {
        self.order = order;
    }

    /// The indices of `slots` in the order they are tried.
    fn slot_indices(&self, slots: &[KeySlot]) -> Vec<usize> {
        let mut indices: Vec<usize> = (0..slots.len()).collect();
        if self.order == SlotOrder::Preferred {
            let rank = |index: &usize| {
                slots.get(*index).map_or(usize::MAX, |slot| {
                    self.wrappers
                        .iter()
                        .position(|w| w.key_facts().recognizes(slot.kid()) == Some(true))
                        .unwrap_or(usize::MAX)
                })
            };
            // Stable: slots of one key, and unclaimed ones, keep their written order.
            indices.sort_by_key(rank);
        }
        indices
    }

    /// Shares `state` (with other envelopes).
    pub(crate) fn set_failover_state(&mut self, state: FailoverState) {
        self.failed = state;
    }

    /// Whether `slots` name keys of more than one key service (by the kids alone): then a
    /// service cooling down can be passed over.
    fn can_fail_over(&self, slots: &[KeySlot]) -> bool {
        let mut domains: Vec<&str> = Vec::new();
        for slot in slots.iter().filter(|s| self.offers(s)) {
            if let Some(wrapper) = self
                .wrappers
                .iter()
                .find(|w| w.key_facts().recognizes(slot.kid()) == Some(true))
            {
                let domain = wrapper.key_facts().domain;
                if !domains.contains(&domain) {
                    domains.push(domain);
                }
            }
        }
        domains.len() > 1
    }

    /// Adds a wrapper, asked after those already added.
    pub fn add(&mut self, wrapper: Arc<dyn KeyWrapper>) {
        self.wrappers.push(wrapper);
    }

    /// Offers only slots whose kid `allowlist` allows; the others are passed over before
    /// any wrapper is asked, as if no wrapper held them.
    pub fn restrict_to(&mut self, allowlist: KidAllowlist) {
        self.allowlist = Some(allowlist);
    }

    /// The slot that [`KeyResolver::recover`] tries first and the wrapper it goes to, as far
    /// as the kids alone tell: `None` when a wrapper cannot tell from a kid whether it
    /// holds it ([`KeyFacts::recognizes`](super::KeyFacts::recognizes) is `None`) or no wrapper holds any slot.
    pub(crate) fn first_holder<'a>(
        &'a self,
        slots: &'a [KeySlot],
    ) -> Option<(&'a KeySlot, &'a Arc<dyn KeyWrapper>)> {
        for slot in self
            .slot_indices(slots)
            .into_iter()
            .filter_map(|i| slots.get(i))
        {
            if !self.offers(slot) {
                continue;
            }
            for wrapper in &self.wrappers {
                match wrapper.key_facts().recognizes(slot.kid()) {
                    Some(true) => return Some((slot, wrapper)),
                    Some(false) => {}
                    None => return None,
                }
            }
        }
        None
    }

    /// Every wrapper that holds an allowed slot, by kid alone, with the slot; `None` when
    /// some wrapper cannot tell from a kid.
    pub(crate) fn holders<'a>(
        &'a self,
        slots: &'a [KeySlot],
    ) -> Option<Vec<(&'a KeySlot, &'a Arc<dyn KeyWrapper>)>> {
        let mut found = Vec::new();
        for slot in slots {
            if !self.offers(slot) {
                continue;
            }
            for wrapper in &self.wrappers {
                if wrapper.key_facts().recognizes(slot.kid())? {
                    found.push((slot, wrapper));
                }
            }
        }
        Some(found)
    }

    /// Whether `slot` is offered to the wrappers at all: the allowlist, when there is one,
    /// allows its kid.
    fn offers(&self, slot: &KeySlot) -> bool {
        self.allowlist
            .as_ref()
            .is_none_or(|allow| allow.allows(slot.kid()))
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.wrappers.is_empty()
    }

    /// Unwraps the first slot that some wrapper claims and that `accept` approves (the
    /// commitment check; a rejected data key counts as a failed unwrap). Slots are tried in
    /// the resolver's [`SlotOrder`]; a slot that fails does not stop the next from being
    /// tried.
    ///
    /// The error, when every slot fails: a key problem (access denied, disabled, not found,
    /// throttled, backend) if any claimed slot had one, so that revocation is reported as
    /// such; otherwise [`Error::DecryptionFailed`] if some slot was claimed; otherwise
    /// [`Error::NoKeyForKid`].
    pub(crate) async fn recover<T>(
        &self,
        slots: &[KeySlot],
        context: SlotContext<'_>,
        accept: impl Fn(&DataKey) -> Option<T>,
    ) -> Result<Recovered<T>> {
        let mut key_problem: Option<Error> = None;
        let mut claimed = false;
        let mut passed_over: Option<(String, String)> = None;
        let can_fail_over = !self.cooldown.is_zero() && self.can_fail_over(slots);
        for slot_index in self.slot_indices(slots) {
            let Some(slot) = slots.get(slot_index) else {
                continue;
            };
            if !self.offers(slot) {
                continue;
            }
            for wrapper in &self.wrappers {
                let facts = wrapper.key_facts();
                let mut probe = None;
                if can_fail_over && facts.recognizes(slot.kid()) == Some(true) {
                    match self.failed.admit(facts.domain, self.cooldown).await {
                        Admission::Call(guard) => probe = guard,
                        Admission::PassOver => {
                            // Its service failed a moment ago: the next slot, not another
                            // failure.
                            crate::observe::failover_pass_over(facts.domain);
                            passed_over
                                .get_or_insert((slot.kid().to_owned(), facts.domain.to_owned()));
                            break;
                        }
                    }
                }
                let unwrapped = wrapper.unwrap_key(slot, context).await;
                self.failed.note(
                    facts.domain,
                    match &unwrapped {
                        Err(e) if e.is_transient() => Outcome::FailedTransiently,
                        Ok(Unwrapped::NotMine) => Outcome::NoCall,
                        _ => Outcome::Answered,
                    },
                );
                drop(probe);
                match unwrapped {
                    Ok(Unwrapped::NotMine) => continue,
                    Ok(Unwrapped::Key(data_key)) => {
                        claimed = true;
                        if let Some(accepted) = accept(&data_key) {
                            return Ok(Recovered {
                                data_key,
                                slot_index,
                                wrapper: Arc::clone(wrapper),
                                accepted,
                            });
                        }
                    }
                    Err(Error::DecryptionFailed) => claimed = true,
                    Err(other) => {
                        // Another wrapper may hold the key under the same kid (two keyrings
                        // with a key of the same name): ask it too.
                        claimed = true;
                        key_problem.get_or_insert(other);
                        continue;
                    }
                }
                // A slot whose key decrypted, rightly or wrongly, is not offered further.
                break;
            }
        }
        Err(match (key_problem, claimed, passed_over) {
            (Some(problem), _, _) => problem,
            (None, false, Some((kid, domain))) => Error::Unavailable {
                kid,
                detail: format!(
                    "not asked: {domain} failed transiently less than {} s ago, and no other \
                     slot opened (failover cool-down)",
                    self.cooldown.as_secs()
                ),
            },
            (None, true, _) => Error::DecryptionFailed,
            (None, false, None) => Error::NoKeyForKid {
                kids: slots.iter().map(|s| s.kid().to_owned()).collect(),
            },
        })
    }
}
