//! Every method of [`Envelope`](crate::Envelope) but the streaming ones (those are in
//! `src/stream/start.rs`): seal, open and re-wrap, in memory and in place.

use std::sync::Arc;

use zeroize::Zeroize;

use super::open::{OpenInfo, Opened};
use super::rewrap::{RewrapTarget, Rewrapped};
use super::seal::{envelope_len, Sealed};
use super::{Envelope, EnvelopeBuilder};
use crate::crypto::{CryptoFailure, KeySchedule, Provider};
use crate::data_key::{DataKey, DATA_KEY_LEN};
use crate::engine::body::{open_body, seal_body};
use crate::engine::{in_place, SegmentEngine};
use crate::error::{Error, Result};
use crate::format::limits::DEFAULT_SEGMENT_SIZE;
#[cfg(feature = "azure-blob")]
use crate::format::KeySlot;
use crate::format::{BodyLayout, Header, Malformed, Preamble};
use crate::policy::{RewrapEndpoint, RewrapPolicy};
use crate::wrap::{KeyWrapper, Recovered, SlotContext};

impl Envelope {
    /// Starts building an envelope.
    pub fn builder() -> EnvelopeBuilder {
        EnvelopeBuilder {
            sealer: None,
            extra_sealers: Vec::new(),
            failover_cooldown: std::time::Duration::from_secs(30),
            failover_state: None,
            slot_order: crate::wrap::SlotOrder::default(),
            openers: Vec::new(),
            provider: Provider::default(),
            rewrap_policy: RewrapPolicy::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            lazy_rewrap: true,
            max_threads: usize::MAX,
            allowlist: None,
        }
    }

    /// The crypto provider in use.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Where a re-wrap may move data keys ([`EnvelopeBuilder::rewrap_policy`]).
    #[must_use]
    pub fn rewrap_policy(&self) -> &RewrapPolicy {
        &self.rewrap_policy
    }

    /// Seals `plaintext` under a fresh data key wrapped by the sealing wrapper. `aad` is
    /// authenticated, not stored: the same bytes must be given to open.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] without a sealing wrapper; the wrapper's errors (policy,
    /// key, backend).
    pub async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(plaintext, aad, &mut out).await?;
        Ok(out)
    }

    /// Seals into `out`, reusing its allocation: `out` ends up holding exactly the
    /// envelope. A service that seals many objects with one buffer avoids a fresh
    /// allocation (and its page faults) per object.
    ///
    /// # Errors
    /// As [`Envelope::seal`]; on error `out` is emptied.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.seal", skip_all, fields(bytes = plaintext.len())))]
    pub async fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let sealed = self.seal_into_inner(plaintext, aad, out).await;
        if sealed.is_err() {
            out.clear();
        } else {
            crate::observe::object("seal", "memory", plaintext.len() as u64);
        }
        sealed
    }

    /// Seals with the header and body apart (detached). `header ‖ body` is the same as what
    /// [`Envelope::seal`] returns.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.seal", skip_all, fields(bytes = plaintext.len())))]
    pub async fn seal_detached(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed> {
        let (header, schedule, layout) = self.start_object(plaintext.len()).await?;
        let body_len = usize::try_from(layout.body_len())
            .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
        let mut body = vec![0u8; body_len];
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        seal_body(&engine, layout, self.max_threads, plaintext, &mut body)?;
        crate::observe::object("seal", "memory", plaintext.len() as u64);
        Ok(Sealed {
            header: header.to_bytes(),
            body,
        })
    }

    /// Seals the plaintext held in `buffer` where it lies: afterwards `buffer` holds the
    /// envelope, exactly as [`Envelope::seal`] would return it. No second buffer of the
    /// object's size is used; if `buffer`'s capacity is short of the envelope's length
    /// (plaintext + header + 16 bytes per segment) it grows once.
    ///
    /// For objects larger than the CPU cache this is the fastest way to seal: about the
    /// speed of the raw cipher, against about two thirds of it with a separate output.
    ///
    /// # Errors
    /// As [`Envelope::seal`]. On error `buffer` is wiped and emptied (the plaintext is
    /// lost: keep a copy if you need to retry).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cmk_envelope::Error> {
    /// # use std::sync::Arc;
    /// # use cmk_envelope::{software::Keyring, Envelope};
    /// # let dir = tempfile::tempdir()?;
    /// # let keyring = Keyring::create(dir.path())?;
    /// # keyring.create_key("logs")?;
    /// let envelope = Envelope::builder().seal_with(Arc::new(keyring.key("logs")?)).build()?;
    /// let mut buffer = b"a large object".to_vec();
    /// envelope.seal_in_place(&mut buffer, b"id=7").await?;
    /// envelope.open_in_place(&mut buffer, b"id=7").await?;
    /// assert_eq!(buffer, b"a large object");
    /// # Ok(()) }
    /// ```
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.seal", skip_all, fields(bytes = buffer.len())))]
    pub async fn seal_in_place(&self, buffer: &mut Vec<u8>, aad: &[u8]) -> Result<()> {
        let plain_len = buffer.len() as u64;
        let sealed = self.seal_in_place_inner(buffer, aad).await;
        if sealed.is_err() {
            buffer.zeroize();
            buffer.clear();
        } else {
            crate::observe::object("seal", "memory", plain_len);
        }
        sealed
    }

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
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.open", skip_all, fields(bytes = envelope.len())))]
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
        } else {
            crate::observe::object("open", "memory", out.len() as u64);
        }
        opened
    }

    /// Opens a detached header and its body.
    ///
    /// # Errors
    /// As [`Envelope::open`]; a header with trailing bytes is malformed.
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.open", skip_all, fields(bytes = body.len())))]
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
        crate::observe::object("open", "memory", plaintext.len() as u64);
        Ok(Opened { plaintext, info })
    }

    /// Opens the envelope held in `buffer` where it lies: afterwards `buffer` holds the
    /// plaintext. The in-place counterpart of [`Envelope::open_into`].
    ///
    /// # Errors
    /// As [`Envelope::open`]. On error `buffer` is wiped and emptied: no unauthenticated
    /// plaintext survives, and neither does the envelope (keep a copy to retry).
    #[cfg_attr(feature = "tracing", tracing::instrument(name = "cmke.open", skip_all, fields(bytes = buffer.len())))]
    pub async fn open_in_place(&self, buffer: &mut Vec<u8>, aad: &[u8]) -> Result<OpenInfo> {
        let opened = self.open_in_place_inner(buffer, aad).await;
        if opened.is_err() {
            buffer.zeroize();
            buffer.clear();
        } else {
            crate::observe::object("open", "memory", buffer.len() as u64);
        }
        opened
    }

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
    #[cfg_attr(
        feature = "tracing",
        tracing::instrument(name = "cmke.rewrap", skip_all)
    )]
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

    /// Checks the plaintext length, then starts a new object.
    async fn start_object(&self, plain_len: usize) -> Result<(Header, KeySchedule, BodyLayout)> {
        let layout = BodyLayout::for_plaintext(self.segment_size, plain_len as u64)?;
        let (header, schedule) = self.new_object().await?;
        Ok((header, schedule, layout))
    }

    async fn seal_into_inner(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (header, schedule, layout) = self.start_object(plaintext.len()).await?;
        let header_len = header.encoded_len();
        let total = envelope_len(header_len, layout)?;
        if out.len() > header_len {
            // A reused buffer keeps its bytes, and only what lies past them is zero-filled:
            // the header and every body byte are overwritten below. Clearing it first would
            // zero-fill the whole body again for every object.
            out.resize(total, 0);
            let (head, _) = out.split_at_mut(header_len);
            head.copy_from_slice(&header.to_bytes());
        } else {
            out.clear();
            out.reserve(total);
            header.write(out);
            out.resize(total, 0);
        }
        let (_, body) = out.split_at_mut(header_len);
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        seal_body(&engine, layout, self.max_threads, plaintext, body)
    }

    async fn seal_in_place_inner(&self, buffer: &mut Vec<u8>, aad: &[u8]) -> Result<()> {
        let (header, schedule, layout) = self.start_object(buffer.len()).await?;
        let header_bytes = header.to_bytes();
        let total = envelope_len(header_bytes.len(), layout)?;
        buffer.resize(total, 0);
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        in_place::seal_in_place(
            &engine,
            layout,
            self.max_threads,
            buffer,
            header_bytes.len(),
        )?;
        buffer[..header_bytes.len()].copy_from_slice(&header_bytes);
        Ok(())
    }

    /// Unwraps a slot of another format whose wrapped bytes are `prefix ‖ data key` (Azure
    /// Storage client-side encryption v2), with this envelope's keys and allowlist: the data
    /// key and the wrapper that held it.
    #[cfg(feature = "azure-blob")]
    pub(crate) async fn unwrap_foreign(
        &self,
        slot: &KeySlot,
        prefix: &[u8],
    ) -> Result<(DataKey, Arc<dyn KeyWrapper>)> {
        let no_message = [0u8; 32];
        let context = SlotContext::new(&no_message).with_key_prefix(prefix);
        let recovered = self
            .resolver
            .recover(std::slice::from_ref(slot), context, |_| Some(()))
            .await?;
        Ok((recovered.data_key, recovered.wrapper))
    }

    /// [`Envelope::rewrap`] of a slot of another format (`prefix ‖ data key`): the new slot,
    /// or `None` when it is already under the target's current version. The same policy
    /// and the same confirmation of the new slot as for this crate's headers.
    #[cfg(feature = "azure-blob")]
    pub(crate) async fn rewrap_foreign(
        &self,
        slot: &KeySlot,
        prefix: &[u8],
        target: RewrapTarget,
    ) -> Result<Option<KeySlot>> {
        let (data_key, holder) = self.unwrap_foreign(slot, prefix).await?;
        let target = match target {
            RewrapTarget::CurrentVersion => Arc::clone(&holder),
            RewrapTarget::Key(wrapper) => wrapper,
        };
        let to_kid = target.current_kid().await?;
        if to_kid == slot.kid() {
            return Ok(None);
        }
        self.rewrap_policy.check_rewrap(
            &RewrapEndpoint {
                kid: slot.kid(),
                protection: holder.key_facts().protection,
                domain: holder.key_facts().domain,
            },
            &RewrapEndpoint {
                kid: &to_kid,
                protection: target.key_facts().protection,
                domain: target.key_facts().domain,
            },
        )?;
        let no_message = [0u8; 32];
        let context = SlotContext::new(&no_message).with_key_prefix(prefix);
        let new_slot = target.wrap_key(&data_key, context).await?;
        target.confirm_wrap(&new_slot, &data_key, context).await?;
        Ok(Some(new_slot))
    }

    /// Random bytes from the envelope's crypto provider (block ids, names: nothing secret).
    #[cfg(feature = "azure-blob")]
    pub(crate) fn fill_random(&self, out: &mut [u8]) -> Result<()> {
        self.provider
            .ops()
            .fill_random(out)
            .map_err(|_| Error::Backend {
                backend: self.provider.name(),
                message: "random number generator failed".to_owned(),
            })
    }

    /// Makes the data key, wraps it, and builds the header.
    pub(crate) async fn new_object(&self) -> Result<(Header, KeySchedule)> {
        let sealer = self.sealer()?;
        let ops = self.provider.ops();
        let random_failed = |_: CryptoFailure| Error::Backend {
            backend: self.provider.name(),
            message: "random number generator failed".to_owned(),
        };
        // One call to the generator for both: the data key, then the message id.
        let mut random = zeroize::Zeroizing::new([0u8; DATA_KEY_LEN + 32]);
        ops.fill_random(random.as_mut()).map_err(random_failed)?;
        let (dek_bytes, id_bytes) = random.split_at(DATA_KEY_LEN);
        let data_key =
            DataKey::from_slice(dek_bytes).ok_or_else(|| random_failed(CryptoFailure))?;
        let message_id: [u8; 32] = id_bytes
            .try_into()
            .map_err(|_| random_failed(CryptoFailure))?;
        let schedule =
            KeySchedule::derive(self.provider, &data_key, &message_id).map_err(|_| {
                Error::Backend {
                    backend: self.provider.name(),
                    message: "key derivation failed".to_owned(),
                }
            })?;
        let context = SlotContext::new(&message_id);
        let mut slots = vec![sealer.wrap_key(&data_key, context).await?];
        for extra in &self.extra_sealers {
            slots.push(extra.wrap_key(&data_key, context).await?);
        }
        let preamble = Preamble::new(self.segment_size, message_id, schedule.commitment)?;
        let header = Header::new(preamble, slots)?;
        Ok((header, schedule))
    }

    fn sealer(&self) -> Result<&Arc<dyn KeyWrapper>> {
        self.sealer.as_ref().ok_or_else(|| {
            Error::InvalidArgument("this envelope has no key to seal with (seal_with)".to_owned())
        })
    }

    pub(crate) fn aad_hash(&self, aad: &[u8]) -> [u8; 32] {
        // SHA-256 of nothing, the common case, without hashing it per object.
        const EMPTY_SHA256: [u8; 32] = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        if aad.is_empty() {
            return EMPTY_SHA256;
        }
        self.provider.ops().sha256(aad)
    }

    /// Unwraps the data key, runs `open_body` with the object's segment engine, and
    /// re-wraps lazily if configured.
    async fn open_parsed(
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

    async fn open_in_place_inner(&self, buffer: &mut Vec<u8>, aad: &[u8]) -> Result<OpenInfo> {
        let (header, header_len, layout) = parse_attached(buffer)?;
        let plain_len = usize::try_from(layout.plaintext_len())
            .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
        let info = self
            .open_parsed(&header, header_len, aad, |engine| {
                in_place::open_in_place(engine, layout, self.max_threads, buffer, header_len)
            })
            .await?;
        buffer.truncate(plain_len);
        Ok(info)
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
        let rewrapped = Rewrapped::replacing(header, header_len, recovered.slot_index, new_slot)?;
        crate::observe::lazy_rewrap();
        Ok(Some(rewrapped))
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

/// Splits an attached envelope into its parsed header, header length and body layout.
fn parse_attached(envelope: &[u8]) -> Result<(Header, usize, BodyLayout)> {
    let (header, header_len) = Header::parse_prefix(envelope)?;
    let body = envelope.get(header_len..).ok_or(Malformed::BodyMissing)?;
    let layout = BodyLayout::for_ciphertext(header.preamble().segment_size(), body.len() as u64)?;
    Ok((header, header_len, layout))
}
