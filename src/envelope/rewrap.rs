//! Re-wrapping: new key slots after the same preamble; the body never changes.

use std::sync::Arc;

use super::Envelope;
use crate::error::{Error, Result};
use crate::format::{Header, KeySlot};
use crate::policy::RewrapEndpoint;
use crate::wrap::{KeyWrapper, SlotContext};

/// Where [`Envelope::rewrap`] moves a data key.
#[derive(Clone)]
#[non_exhaustive]
pub enum RewrapTarget {
    /// The current version of the key that opens the object (after a rotation).
    CurrentVersion,
    /// The current version of another key (same vault or keyring, or up from a software key
    /// to a customer-managed one, unless the re-wrap policy allows more).
    Key(Arc<dyn KeyWrapper>),
}

impl std::fmt::Debug for RewrapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewrapTarget::CurrentVersion => f.write_str("CurrentVersion"),
            RewrapTarget::Key(w) => f.debug_tuple("Key").field(&w.key_facts().domain).finish(),
        }
    }
}

/// A re-wrapped header. The object becomes `header() ‖ old body`: only the header changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    header: Vec<u8>,
    old_header_len: usize,
    from_kid: String,
    to_kid: String,
}

impl Rewrapped {
    /// `header` with slot `index` replaced by `new_slot`; any other slot under the new kid
    /// is dropped (the new one is the verified one). Checked to parse back to itself, so a
    /// header that does not parse is never handed out.
    pub(super) fn replacing(
        header: &Header,
        old_header_len: usize,
        index: usize,
        new_slot: KeySlot,
    ) -> Result<Self> {
        let from_kid = header
            .slots()
            .get(index)
            .map(|s| s.kid().to_owned())
            .unwrap_or_default();
        let to_kid = new_slot.kid().to_owned();
        let mut slots = Vec::with_capacity(header.slots().len());
        for (i, slot) in header.slots().iter().enumerate() {
            if i == index {
                slots.push(new_slot.clone());
            } else if slot.kid() != to_kid {
                slots.push(slot.clone());
            }
        }
        let new_header = header.with_slots(slots)?;
        let bytes = new_header.to_bytes();
        if Header::parse_detached(&bytes).as_ref() != Ok(&new_header) {
            return Err(Error::Backend {
                backend: "cmke format",
                message: "re-wrapped header does not round-trip".to_owned(),
            });
        }
        Ok(Self {
            header: bytes,
            old_header_len,
            from_kid,
            to_kid,
        })
    }

    /// The new header bytes.
    #[must_use]
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Length of the header this one replaces: the body of an attached envelope starts
    /// there.
    #[must_use]
    pub fn old_header_len(&self) -> usize {
        self.old_header_len
    }

    /// The kid of the slot that was replaced.
    #[must_use]
    pub fn from_kid(&self) -> &str {
        &self.from_kid
    }

    /// The kid of the new slot.
    #[must_use]
    pub fn to_kid(&self) -> &str {
        &self.to_kid
    }

    /// The re-wrapped attached envelope: the new header followed by the unchanged body of
    /// `old_envelope`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `old_envelope` is shorter than the old header.
    pub fn apply_to(&self, old_envelope: &[u8]) -> Result<Vec<u8>> {
        let body = old_envelope.get(self.old_header_len..).ok_or_else(|| {
            Error::InvalidArgument("envelope is shorter than its old header".to_owned())
        })?;
        let mut out = Vec::with_capacity(self.header.len().saturating_add(body.len()));
        out.extend_from_slice(&self.header);
        out.extend_from_slice(body);
        Ok(out)
    }
}

impl Envelope {
    /// Re-wraps an object's data key: to the current version of its key, or to another key.
    /// Takes a detached header or a whole attached envelope (only its header is read) and
    /// returns the new header; the body is untouched and does not need to be read.
    ///
    /// What the kids alone decide is decided first, with no key-service call: an object
    /// whose opening slot is already under the target's current version returns `Ok(None)`
    /// (its key is not unwrapped, so this does not verify the object: `open` does), and a
    /// move the re-wrap policy refuses for every slot is refused. Otherwise the data key is
    /// unwrapped once and checked against the header's key commitment, wrapped under the
    /// target, and the new slot is confirmed to open with the target
    /// ([`KeyWrapper::confirm_wrap`]) before the header is returned.
    ///
    /// # Errors
    /// As [`Envelope::open`] for the unwrap; [`Error::PolicyRefused`] when the move breaks the
    /// policy (another vault or keyring; a customer-managed key to a software key).
    pub async fn rewrap(
        &self,
        header_or_envelope: &[u8],
        target: RewrapTarget,
    ) -> Result<Option<Rewrapped>> {
        let (header, header_len) = Header::parse_prefix(header_or_envelope)?;
        if self.settled_by_kids(&header, &target).await? {
            return Ok(None);
        }
        let recovered = self.recover(&header).await?;
        let target = match target {
            RewrapTarget::CurrentVersion => Arc::clone(&recovered.wrapper),
            RewrapTarget::Key(wrapper) => wrapper,
        };
        let from_kid = header
            .slots()
            .get(recovered.slot_index)
            .map(|s| s.kid().to_owned())
            .unwrap_or_default();
        let to_kid = target.current_kid().await?;
        if to_kid == from_kid {
            return Ok(None);
        }
        self.rewrap_policy.check_rewrap(
            &RewrapEndpoint {
                kid: &from_kid,
                protection: recovered.wrapper.key_facts().protection,
                domain: recovered.wrapper.key_facts().domain,
            },
            &RewrapEndpoint {
                kid: &to_kid,
                protection: target.key_facts().protection,
                domain: target.key_facts().domain,
            },
        )?;
        let message_id = header.preamble().message_id();
        let context = SlotContext::new(&message_id);
        let new_slot = target.wrap_key(&recovered.data_key, context).await?;
        target
            .confirm_wrap(&new_slot, &recovered.data_key, context)
            .await?;
        Rewrapped::replacing(&header, header_len, recovered.slot_index, new_slot).map(Some)
    }

    /// Decides from the kids alone, before any unwrap: `Ok(true)` when the slot that would
    /// open the object is already under the target's current version; a policy refusal
    /// when every slot's key may not move to the target. `Ok(false)` when the unwrap must
    /// decide (a wrapper that cannot tell its kids from others' leaves it to the unwrap).
    async fn settled_by_kids(&self, header: &Header, target: &RewrapTarget) -> Result<bool> {
        if let RewrapTarget::Key(to) = target {
            if let Some(holders) = self.resolver.holders(header.slots()) {
                let to_name = format!(
                    "the current version of the {} key in {}",
                    to.key_facts().protection,
                    to.key_facts().domain
                );
                let mut refusal = None;
                for (slot, from) in &holders {
                    let checked = self.rewrap_policy.check_rewrap(
                        &RewrapEndpoint {
                            kid: slot.kid(),
                            protection: from.key_facts().protection,
                            domain: from.key_facts().domain,
                        },
                        &RewrapEndpoint {
                            kid: &to_name,
                            protection: to.key_facts().protection,
                            domain: to.key_facts().domain,
                        },
                    );
                    match checked {
                        Ok(()) => {
                            refusal = None;
                            break;
                        }
                        Err(e) => {
                            refusal.get_or_insert(e);
                        }
                    }
                }
                if let Some(refused) = refusal {
                    return Err(refused);
                }
            }
        }
        let Some((slot, holder)) = self.resolver.first_holder(header.slots()) else {
            return Ok(false);
        };
        let to = match target {
            RewrapTarget::CurrentVersion => holder,
            RewrapTarget::Key(to) => to,
        };
        Ok(to.current_kid().await? == slot.kid())
    }
}
