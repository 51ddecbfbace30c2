//! One segment at a time, through the same code as the in-memory data path.
//!
//! `write` and `read` on the stream adapters work segment by segment on the calling thread.
//! Whole-stream copies (`copy_from` / `copy_to`) use [`super::pipeline`], which overlaps
//! one thread's I/O with another's crypto. Its batches are 1 MiB and each worker does its
//! own I/O: large batches split across cores with the I/O on one thread were several times
//! slower, because a large batch no longer fits in cache (figures: README, "Performance").

use crate::crypto::{KeySchedule, SegmentCipher};
use crate::envelope::segments::{open_body_into, seal_body_into, SegmentContext};
use crate::envelope::{Envelope, OpenInfo};
use crate::error::{Error, Result};
use crate::format::{
    segment_nonce, BodyLayout, Header, Malformed, Preamble, SEGMENT_AAD_LEN, TAG_LEN,
};

/// The cipher and associated data of one object, for segment-at-a-time work.
pub(crate) struct SegmentCrypter {
    cipher: Box<dyn SegmentCipher>,
    aad: [u8; SEGMENT_AAD_LEN],
    segment_size: usize,
}

impl SegmentCrypter {
    pub(crate) fn new(schedule: KeySchedule, preamble: &Preamble, aad_hash: &[u8; 32]) -> Self {
        Self {
            cipher: schedule.cipher,
            aad: preamble.segment_aad(aad_hash),
            segment_size: preamble.segment_size() as usize,
        }
    }

    /// A crypter over a bare cipher, for tests of the segment machinery.
    #[cfg(test)]
    pub(crate) fn for_tests(cipher: Box<dyn SegmentCipher>, segment_size: usize) -> Self {
        Self {
            cipher,
            aad: [9; SEGMENT_AAD_LEN],
            segment_size,
        }
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segment_size
    }

    fn context(
        &self,
        layout: BodyLayout,
        first_index: u64,
        ends_object: bool,
    ) -> SegmentContext<'_> {
        SegmentContext {
            cipher: self.cipher.as_ref(),
            aad: &self.aad,
            layout,
            segment_size: self.segment_size,
            first_index,
            ends_object,
            max_threads: 1,
        }
    }

    /// Seals segment `index` (`plaintext` is at most one segment); `out` becomes its wire
    /// bytes.
    pub(crate) fn seal(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let layout = BodyLayout::for_plaintext(self.segment_size as u32, plaintext.len() as u64)?;
        if layout.segments() != 1 {
            return Err(Malformed::BodyLength.into());
        }
        out.resize(layout.body_len() as usize, 0);
        seal_body_into(&self.context(layout, index, last), plaintext, out)
    }

    /// Opens segment `index` (`wire` = ciphertext ‖ tag) into `out`, which is resized to the
    /// plaintext; on failure `out` is wiped and emptied.
    pub(crate) fn open(
        &self,
        index: u64,
        last: bool,
        wire: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let layout = BodyLayout::for_ciphertext(self.segment_size as u32, wire.len() as u64)?;
        // One segment; only a body's sole segment may be empty.
        if layout.segments() != 1 || (index > 0 && layout.plaintext_len() == 0) {
            return Err(Malformed::BodyLength.into());
        }
        open_body_into(&self.context(layout, index, last), wire, out)
    }

    fn nonce(index: u64, last: bool) -> Result<[u8; 12]> {
        let index = u32::try_from(index).map_err(|_| Malformed::TooManySegments)?;
        Ok(segment_nonce(index, last))
    }

    /// Seals segment `index` where it lies and returns its tag.
    pub(crate) fn seal_in_place(
        &self,
        index: u64,
        last: bool,
        data: &mut [u8],
    ) -> Result<[u8; 16]> {
        // Only a body's sole segment may be empty, and none is longer than a segment.
        if data.len() > self.segment_size || (data.is_empty() && index > 0) {
            return Err(Malformed::BodyLength.into());
        }
        let nonce = Self::nonce(index, last)?;
        self.cipher
            .seal_in_place(&nonce, &self.aad, data)
            .map_err(|_| Error::Backend {
                backend: "aes-gcm",
                message: "segment encryption failed".to_owned(),
            })
    }

    /// Opens segment `index` (`wire` = ciphertext ‖ tag) where it lies and returns the
    /// plaintext length; on failure `wire` is zeroed.
    pub(crate) fn open_in_place(&self, index: u64, last: bool, wire: &mut [u8]) -> Result<usize> {
        let full = self.segment_size + TAG_LEN;
        let well_formed = if last {
            wire.len() <= full && (wire.len() > TAG_LEN || (index == 0 && wire.len() == TAG_LEN))
        } else {
            wire.len() == full
        };
        if !well_formed {
            return Err(Malformed::BodyLength.into());
        }
        let nonce = Self::nonce(index, last)?;
        self.cipher
            .open_in_place(&nonce, &self.aad, wire)
            .map_err(|_| Error::DecryptionFailed)
    }
}

impl Envelope {
    /// Starts a streamed object: its header bytes and the crypter for its segments.
    pub(crate) async fn start_stream_seal(&self, aad: &[u8]) -> Result<(Vec<u8>, SegmentCrypter)> {
        let (header, schedule) = self.new_object().await?;
        let crypter = SegmentCrypter::new(schedule, header.preamble(), &self.aad_hash(aad));
        Ok((header.to_bytes(), crypter))
    }

    /// Unwraps a streamed object's data key: the crypter for its segments and the kid that
    /// opened it.
    pub(crate) async fn start_stream_open(
        &self,
        header: &Header,
        header_len: usize,
        aad: &[u8],
    ) -> Result<(SegmentCrypter, OpenInfo)> {
        let recovered = self.recover(header).await?;
        let info = self.open_info(header, header_len, &recovered).await;
        let crypter =
            SegmentCrypter::new(recovered.accepted, header.preamble(), &self.aad_hash(aad));
        Ok((crypter, info))
    }
}
