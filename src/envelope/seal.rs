//! Sealing: a fresh data key, wrapped, then the body.

use super::Envelope;
use crate::crypto::{CryptoFailure, KeySchedule};
use crate::data_key::{DataKey, DATA_KEY_LEN};
use crate::engine::body::seal_body;
use crate::engine::SegmentEngine;
use crate::error::{Error, Result};
use crate::format::{BodyLayout, Header, Preamble};
use crate::wrap::SlotContext;

/// A sealed object as a separate header and body (store the header in metadata, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The header: preamble and key slots.
    pub header: Vec<u8>,
    /// The segments.
    pub body: Vec<u8>,
}

impl Envelope {
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
    pub async fn seal_into(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let sealed = self.seal_into_inner(plaintext, aad, out).await;
        if sealed.is_err() {
            out.clear();
        }
        sealed
    }

    async fn seal_into_inner(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let (header, schedule, layout) = self.start(plaintext.len()).await?;
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

    /// Seals with the header and body apart (detached). `header ‖ body` is the same as what
    /// [`Envelope::seal`] returns.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_detached(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed> {
        let (header, schedule, layout) = self.start(plaintext.len()).await?;
        let body_len = usize::try_from(layout.body_len())
            .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
        let mut body = vec![0u8; body_len];
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        seal_body(&engine, layout, self.max_threads, plaintext, &mut body)?;
        Ok(Sealed {
            header: header.to_bytes(),
            body,
        })
    }

    /// Checks the plaintext length, then starts a new object.
    pub(super) async fn start(
        &self,
        plain_len: usize,
    ) -> Result<(Header, KeySchedule, BodyLayout)> {
        let layout = BodyLayout::for_plaintext(self.segment_size, plain_len as u64)?;
        let (header, schedule) = self.new_object().await?;
        Ok((header, schedule, layout))
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
        let slot = sealer
            .wrap_key(&data_key, SlotContext::new(&message_id))
            .await?;
        let preamble = Preamble::new(self.segment_size, message_id, schedule.commitment)?;
        let header = Header::new(preamble, vec![slot])?;
        Ok((header, schedule))
    }
}

/// Header plus body length, if it fits in memory.
pub(super) fn envelope_len(header_len: usize, layout: BodyLayout) -> Result<usize> {
    usize::try_from(layout.body_len())
        .ok()
        .and_then(|body| body.checked_add(header_len))
        .ok_or_else(|| Error::InvalidArgument("object too large for memory".to_owned()))
}
