//! Re-wrapping: new key slots after the same preamble; the body never changes.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{Header, KeySlot};
use crate::wrap::KeyWrapper;

/// Where [`Envelope::rewrap`](crate::Envelope::rewrap) moves a data key.
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
    pub(super) header: Vec<u8>,
    pub(super) old_header_len: usize,
    pub(super) from_kid: String,
    pub(super) to_kid: String,
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
