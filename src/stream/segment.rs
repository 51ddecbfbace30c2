//! Batches of segments: what the stream adapters share with the in-memory data path.

use crate::crypto::{KeySchedule, SegmentCipher};
use crate::envelope::segments::{open_body_into, seal_body_into, SegmentContext};
use crate::error::Result;
use crate::format::{BodyLayout, Malformed, Preamble, SEGMENT_AAD_LEN};

/// The cipher and associated data of one object, for batch-at-a-time work.
pub(crate) struct SegmentCrypter {
    cipher: Box<dyn SegmentCipher>,
    aad: [u8; SEGMENT_AAD_LEN],
    segment_size: usize,
    max_threads: usize,
}

impl SegmentCrypter {
    pub(crate) fn new(
        schedule: KeySchedule,
        preamble: &Preamble,
        aad_hash: &[u8; 32],
        max_threads: usize,
    ) -> Self {
        Self {
            cipher: schedule.cipher,
            aad: preamble.segment_aad(aad_hash),
            segment_size: preamble.segment_size() as usize,
            max_threads,
        }
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Segments per batch. One: measured on a 4 GiB file, sealing 8 MiB batches across
    /// both cores took 7.4 s against 1.5 s segment by segment (and opening 3.6 s against
    /// 1.4 s), because reading and writing the batch stay on one thread and an 8 MiB batch
    /// no longer fits in cache. Using both cores for streams needs I/O overlapped with the
    /// crypto (a pipeline), not bigger batches.
    pub(crate) fn batch_segments(&self) -> usize {
        1
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
            max_threads: self.max_threads,
        }
    }

    /// Seals a batch of segments starting at segment `first_index`; `out` becomes their wire
    /// bytes. Returns the number of segments. Unless the batch ends the object, `plaintext`
    /// is whole segments.
    pub(crate) fn seal(
        &self,
        first_index: u64,
        ends_object: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        let layout = BodyLayout::for_plaintext(self.segment_size as u32, plaintext.len() as u64)?;
        out.resize(layout.body_len() as usize, 0);
        seal_body_into(
            &self.context(layout, first_index, ends_object),
            plaintext,
            out,
        )?;
        Ok(layout.segments())
    }

    /// Opens a batch of wire segments starting at segment `first_index` into `out`, which is
    /// resized to the plaintext; on failure `out` is wiped and emptied. Returns the number
    /// of segments.
    pub(crate) fn open(
        &self,
        first_index: u64,
        ends_object: bool,
        wire: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        let layout = BodyLayout::for_ciphertext(self.segment_size as u32, wire.len() as u64)?;
        // Only a body's sole segment may be empty.
        if ends_object && first_index > 0 && layout.plaintext_len() == 0 {
            return Err(Malformed::BodyLength.into());
        }
        open_body_into(&self.context(layout, first_index, ends_object), wire, out)?;
        Ok(layout.segments())
    }
}
