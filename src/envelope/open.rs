//! Opening: find a key, check the commitment, verify and decrypt every segment.

use zeroize::Zeroize;

use super::rewrap::Rewrapped;
use super::{parse_attached, Envelope};
use crate::crypto::KeySchedule;
use crate::engine::body::open_body;
use crate::engine::SegmentEngine;
use crate::error::Result;
use crate::format::{BodyLayout, Header};
use crate::wrap::{Recovered, SlotContext};

/// What opening told about an object: the kid that opened it, whether that is an old
/// version of its key, and then a header re-wrapped to the current version.
///
/// Every way of opening gives one: [`Opened::info`] (`open`, `open_detached`,
/// `open_range`), the return value of `open_into` / `open_in_place`, and
/// [`OpenReader::info`](crate::stream::OpenReader::info) once the reader exists (the header
/// is read and the key recovered when it is made).
///
/// The re-wrapped header depends only on the header and the data key, which the key
/// commitment has checked by then, never on the body: a reader offers it before the body
/// is read, and writing it back changes nothing about the body, which is still verified
/// when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo {
    kid: String,
    stale: bool,
    rewrapped: Option<Rewrapped>,
}

impl OpenInfo {
    /// The kid (with version) of the slot that opened the object.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether the object is wrapped under an old version of its key. Known only with lazy
    /// re-wrap on (the default), which asks the key for its current version; `false` when
    /// that could not be asked.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The header re-wrapped to the current version, when the object was stale (lazy
    /// re-wrap). Store it in place of the old header; the body does not change. `None`
    /// also when the key's current version could not be used to wrap (disabled, deleted,
    /// refused by policy): opening does not depend on it.
    #[must_use]
    pub fn rewrapped(&self) -> Option<&Rewrapped> {
        self.rewrapped.as_ref()
    }
}

/// An opened object: the plaintext and the [`OpenInfo`].
pub struct Opened {
    plaintext: Vec<u8>,
    info: OpenInfo,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("info", &self.info)
            .finish()
    }
}

impl Opened {
    /// The plaintext.
    #[must_use]
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// Takes the plaintext. From here it is the caller's data: wipe it (e.g. with
    /// `zeroize`) when done if the threat model needs that.
    #[must_use]
    pub fn into_plaintext(self) -> Vec<u8> {
        self.plaintext
    }

    /// What opening told about the object: the kid, staleness, the re-wrapped header.
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        &self.info
    }

    pub(crate) fn new(plaintext: Vec<u8>, info: OpenInfo) -> Self {
        Self { plaintext, info }
    }
}

impl Envelope {
    /// Opens an attached envelope (`header ‖ body`).
    ///
    /// # Errors
    /// [`Error::Malformed`](crate::Error::Malformed) for bytes that are not an envelope;
    /// [`Error::NoKeyForKid`](crate::Error::NoKeyForKid) when no wrapper holds a slot's key;
    /// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed) for tampering, wrong
    /// associated data or a wrong key; the wrapper's key errors (access denied, disabled,
    /// not found).
    pub async fn open(&self, envelope: &[u8], aad: &[u8]) -> Result<Opened> {
        let mut plaintext = Vec::new();
        let info = self.open_into(envelope, aad, &mut plaintext).await?;
        Ok(Opened { plaintext, info })
    }

    /// Opens an attached envelope into `out`, reusing its allocation: `out` ends up holding
    /// exactly the plaintext. A service that opens many objects with one buffer avoids a
    /// fresh allocation (and its page faults) per object. On failure `out` is wiped and
    /// emptied.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open_into(
        &self,
        envelope: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<OpenInfo> {
        let opened = match parse_attached(envelope) {
            Ok((header, header_len, layout)) => {
                let body = envelope.get(header_len..).unwrap_or_default();
                self.open_parsed(&header, header_len, aad, |engine| {
                    open_body(engine, layout, self.max_threads, body, out)
                })
                .await
            }
            Err(e) => Err(e),
        };
        if opened.is_err() {
            out.zeroize();
            out.clear();
        }
        opened
    }

    /// Opens a detached header and its body.
    ///
    /// # Errors
    /// As [`Envelope::open`]; a header with trailing bytes is malformed.
    pub async fn open_detached(&self, header: &[u8], body: &[u8], aad: &[u8]) -> Result<Opened> {
        let parsed = Header::parse_detached(header)?;
        let layout =
            BodyLayout::for_ciphertext(parsed.preamble().segment_size(), body.len() as u64)?;
        let mut plaintext = Vec::new();
        let info = self
            .open_parsed(&parsed, header.len(), aad, |engine| {
                open_body(engine, layout, self.max_threads, body, &mut plaintext)
            })
            .await?;
        Ok(Opened { plaintext, info })
    }

    /// Unwraps the data key, runs `open_body` with the object's segment engine, and
    /// re-wraps lazily if configured.
    pub(super) async fn open_parsed(
        &self,
        header: &Header,
        header_len: usize,
        aad: &[u8],
        open_body: impl FnOnce(&SegmentEngine) -> Result<()>,
    ) -> Result<OpenInfo> {
        let (engine, recovered) = self.open_engine(header, aad).await?;
        open_body(&engine)?;
        Ok(self.open_info(header, header_len, &recovered).await)
    }

    /// Unwraps the data key of `header`: the object's segment engine and the rest of what
    /// was recovered.
    pub(crate) async fn open_engine(
        &self,
        header: &Header,
        aad: &[u8],
    ) -> Result<(SegmentEngine, Recovered<()>)> {
        let (schedule, recovered) = self.recover(header).await?.into_accepted();
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        Ok((engine, recovered))
    }

    /// What opening tells about an object whose key `recovered` holds: the kid and, with
    /// lazy re-wrap on, whether it is stale and the re-wrapped header.
    pub(crate) async fn open_info<T>(
        &self,
        header: &Header,
        header_len: usize,
        recovered: &Recovered<T>,
    ) -> OpenInfo {
        let slot = header.slots().get(recovered.slot_index);
        let kid = slot.map(|s| s.kid().to_owned()).unwrap_or_default();
        if !self.lazy_rewrap {
            return OpenInfo {
                kid,
                stale: false,
                rewrapped: None,
            };
        }
        // Opening never depends on the key's current version: when it cannot be read or
        // used (the newest version disabled, deleted or outside today's policy), the object
        // still opens, without a re-wrapped header.
        let Ok(current) = recovered.wrapper.current_kid().await else {
            return OpenInfo {
                kid,
                stale: false,
                rewrapped: None,
            };
        };
        let stale = current != kid;
        let rewrapped = if stale {
            self.lazy_rewrap_header(header, header_len, recovered)
                .await
                .unwrap_or(None)
        } else {
            None
        };
        OpenInfo {
            kid,
            stale,
            rewrapped,
        }
    }

    /// Unwraps the first slot whose data key derives the header's commitment.
    pub(crate) async fn recover(&self, header: &Header) -> Result<Recovered<KeySchedule>> {
        let message_id = header.preamble().message_id();
        let commitment = header.preamble().commitment();
        self.resolver
            .recover(header.slots(), SlotContext::new(&message_id), |data_key| {
                KeySchedule::derive(self.provider, data_key, &message_id)
                    .ok()
                    .filter(|s| s.commits_to(&commitment))
            })
            .await
    }

    /// When the opening slot is not under its key's current version: wrap the data key
    /// again (one wrap, no second unwrap) and return the new header.
    async fn lazy_rewrap_header<T>(
        &self,
        header: &Header,
        header_len: usize,
        recovered: &Recovered<T>,
    ) -> Result<Option<Rewrapped>> {
        let Some(slot) = header.slots().get(recovered.slot_index) else {
            return Ok(None);
        };
        let current = recovered.wrapper.current_kid().await?;
        if current == slot.kid() {
            return Ok(None);
        }
        let message_id = header.preamble().message_id();
        let new_slot = recovered
            .wrapper
            .wrap_key(&recovered.data_key, SlotContext::new(&message_id))
            .await?;
        Rewrapped::replacing(header, header_len, recovered.slot_index, new_slot).map(Some)
    }
}
