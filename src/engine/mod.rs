//! The segment engine: the one place that knows how a segment is sealed and opened.
//!
//! [`SegmentEngine`] owns the rules of the format's body (docs/FORMAT.md, "Body"): the nonce of
//! segment `i` and its last flag, the associated data every segment shares, which lengths a
//! segment may have and its size on the wire. Every data path calls it: whole bodies in
//! memory ([`body`]), in the caller's own buffer ([`in_place`]), one segment at a time
//! (the stream adapters) and batch by batch on several threads (the stream pipeline).
//! Readers ask it which buffered bytes form the next segment and whether that segment is the
//! last ([`SegmentEngine::next_segment`]), and every path asks [`workers`] how many threads
//! it may use.

pub(crate) mod body;
pub(crate) mod in_place;
mod runs;

use std::num::NonZeroUsize;
use std::sync::OnceLock;

use zeroize::Zeroize;

use crate::crypto::{KeySchedule, SegmentCipher};
use crate::error::{Error, Result};
use crate::format::{segment_nonce, Malformed, Preamble, SEGMENT_AAD_LEN, TAG_LEN};

/// Seals and opens the segments of one object: its cipher, its segments' associated data
/// and its segment size.
pub(crate) struct SegmentEngine {
    cipher: Box<dyn SegmentCipher>,
    aad: [u8; SEGMENT_AAD_LEN],
    segment_size: usize,
}

impl SegmentEngine {
    /// The engine of the object whose preamble is `preamble`, keyed by `schedule`, for the
    /// caller's associated data whose SHA-256 is `aad_hash`.
    pub(crate) fn new(schedule: KeySchedule, preamble: &Preamble, aad_hash: &[u8; 32]) -> Self {
        Self {
            cipher: schedule.cipher,
            aad: preamble.segment_aad(aad_hash),
            segment_size: preamble.segment_size() as usize,
        }
    }

    /// An engine over a bare cipher, for tests of the segment machinery.
    #[cfg(test)]
    pub(crate) fn for_tests(cipher: Box<dyn SegmentCipher>, segment_size: usize) -> Self {
        Self {
            cipher,
            aad: [9; SEGMENT_AAD_LEN],
            segment_size,
        }
    }

    /// Plaintext bytes of a full segment.
    pub(crate) fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// Wire bytes of a full segment: its ciphertext and its tag.
    pub(crate) fn wire_segment(&self) -> usize {
        self.segment_size + TAG_LEN
    }

    /// Checks that segment `index` may hold `plain_len` plaintext bytes: a full segment
    /// unless it is the last, never more, and empty only as a body's sole segment.
    fn check_plain_len(&self, index: u64, last: bool, plain_len: usize) -> Result<()> {
        let allowed = plain_len <= self.segment_size
            && (last || plain_len == self.segment_size)
            && (plain_len > 0 || index == 0);
        if allowed {
            Ok(())
        } else {
            Err(Malformed::BodyLength.into())
        }
    }

    /// The nonce of segment `index` to open: past 2^32 segments there is none.
    fn nonce(index: u64, last: bool) -> Result<[u8; 12]> {
        let index = u32::try_from(index).map_err(|_| Malformed::TooManySegments)?;
        Ok(segment_nonce(index, last))
    }

    /// The nonce of segment `index` to seal: refusing segment 2^32 rather than wrapping is
    /// the caller's choice of segment size to change.
    fn sealing_nonce(index: u64, last: bool) -> Result<[u8; 12]> {
        Self::nonce(index, last).map_err(|_| {
            Error::InvalidArgument(
                "object exceeds 2^32 segments: use a larger segment size".to_owned(),
            )
        })
    }

    /// Seals segment `index` from `plaintext` into `out`, which is exactly its wire length
    /// (ciphertext ‖ tag).
    pub(crate) fn seal(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        self.check_plain_len(index, last, plaintext.len())?;
        let (data, tag_out) = out
            .split_at_mut_checked(plaintext.len())
            .filter(|(_, tag)| tag.len() == TAG_LEN)
            .ok_or(Malformed::BodyLength)?;
        let tag = self
            .cipher
            .seal_to(
                &Self::sealing_nonce(index, last)?,
                &self.aad,
                plaintext,
                data,
            )
            .map_err(|_| sealing_failed())?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Seals segment `index` where it lies: `segment` is the plaintext followed by
    /// [`TAG_LEN`] bytes of room, which receive the tag.
    pub(crate) fn seal_in_place(&self, index: u64, last: bool, segment: &mut [u8]) -> Result<()> {
        let plain_len = segment
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Malformed::BodyLength)?;
        self.check_plain_len(index, last, plain_len)?;
        let (data, tag_out) = segment.split_at_mut(plain_len);
        let tag = self
            .cipher
            .seal_in_place(&Self::sealing_nonce(index, last)?, &self.aad, data)
            .map_err(|_| sealing_failed())?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// As [`SegmentEngine::seal`], into `out` resized to the segment's wire length.
    pub(crate) fn seal_to_vec(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.resize(plaintext.len().saturating_add(TAG_LEN), 0);
        self.seal(index, last, plaintext, out)
    }

    /// As [`SegmentEngine::open`], into `out` resized to the plaintext length; on failure
    /// `out` is wiped and emptied.
    pub(crate) fn open_to_vec(
        &self,
        index: u64,
        last: bool,
        wire: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.resize(wire.len().saturating_sub(TAG_LEN), 0);
        let opened = self.open(index, last, wire, out);
        if opened.is_err() {
            out.zeroize();
            out.clear();
        }
        opened
    }

    /// Opens segment `index` (`wire` = ciphertext ‖ tag) into `out`, which is exactly its
    /// plaintext length. On failure `out` is zeroed.
    pub(crate) fn open(&self, index: u64, last: bool, wire: &[u8], out: &mut [u8]) -> Result<()> {
        let (ciphertext, tag) = wire
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Malformed::BodyLength)?;
        self.check_plain_len(index, last, ciphertext.len())?;
        if out.len() != ciphertext.len() {
            return Err(Malformed::BodyLength.into());
        }
        self.cipher
            .open_to(&Self::nonce(index, last)?, &self.aad, ciphertext, tag, out)
            .map_err(|_| Error::DecryptionFailed)
    }

    /// Opens segment `index`, whose wire bytes are `buf[from..]`, into the start of `buf`
    /// (a move towards the front, for opening where the data lies) and returns its
    /// plaintext length. On failure all of `buf` is zeroed.
    pub(crate) fn open_within(
        &self,
        index: u64,
        last: bool,
        buf: &mut [u8],
        from: usize,
    ) -> Result<usize> {
        let plain_len = buf
            .len()
            .checked_sub(from)
            .and_then(|wire| wire.checked_sub(TAG_LEN))
            .ok_or(Malformed::BodyLength)?;
        self.check_plain_len(index, last, plain_len)?;
        self.cipher
            .open_within(&Self::nonce(index, last)?, &self.aad, buf, from)
            .map_err(|_| Error::DecryptionFailed)
    }

    /// Which of `buffered` wire bytes form segment `index`, and whether it is the object's
    /// last: the one rule every reader follows. `source_ended` says that nothing follows the
    /// buffered bytes. A segment is the last exactly when the source ends within one wire
    /// segment of its start; `None` means more bytes must be read to tell.
    ///
    /// # Errors
    /// [`Malformed::BodyMissing`] when the body has no segment at all.
    pub(crate) fn next_segment(
        &self,
        index: u64,
        buffered: usize,
        source_ended: bool,
    ) -> Result<Option<(usize, bool)>> {
        let wire = self.wire_segment();
        if buffered > wire || (buffered == wire && !source_ended) {
            return Ok(Some((wire, false)));
        }
        if !source_ended {
            return Ok(None);
        }
        if buffered == 0 && index == 0 {
            return Err(Malformed::BodyMissing.into());
        }
        Ok(Some((buffered, true)))
    }
}

fn sealing_failed() -> Error {
    Error::Backend {
        backend: "aes-gcm",
        message: "segment encryption failed".to_owned(),
    }
}

/// How many threads a data path may use: at most `max_threads`
/// ([`EnvelopeBuilder::max_threads`](crate::EnvelopeBuilder::max_threads)) and at most the
/// machine's cores (read once).
pub(crate) fn workers(max_threads: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores =
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
    cores.min(max_threads).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Provider;

    fn engine() -> SegmentEngine {
        let cipher = Provider::default().ops().aes256_gcm(&[4; 32]).expect("key");
        SegmentEngine::for_tests(cipher, 64)
    }

    #[test]
    fn every_way_of_sealing_and_opening_agrees() {
        let engine = engine();
        for (index, last, len) in [
            (0u64, true, 0usize),
            (0, false, 64),
            (3, true, 1),
            (7, true, 64),
        ] {
            let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = vec![0u8; len + TAG_LEN];
            engine
                .seal(index, last, &plaintext, &mut wire)
                .expect("seal");
            let mut in_place = plaintext.clone();
            in_place.resize(len + TAG_LEN, 0);
            engine
                .seal_in_place(index, last, &mut in_place)
                .expect("seal in place");
            assert_eq!(wire, in_place);

            let mut out = vec![0u8; len];
            engine.open(index, last, &wire, &mut out).expect("open");
            assert_eq!(out, plaintext);
            let mut shifted = vec![0u8; 5];
            shifted.extend_from_slice(&wire);
            assert_eq!(
                engine
                    .open_within(index, last, &mut shifted, 5)
                    .expect("within"),
                len
            );
            assert_eq!(shifted[..len], plaintext[..]);
            // The other index or the other last flag is another nonce.
            assert!(matches!(
                engine.open(index + 1, last, &wire, &mut out),
                Err(Error::DecryptionFailed | Error::Malformed(_))
            ));
            assert!(matches!(
                engine.open(index, !last, &wire, &mut out),
                Err(Error::DecryptionFailed | Error::Malformed(_))
            ));
        }
    }

    #[test]
    fn lengths_a_segment_cannot_have_are_refused() {
        let engine = engine();
        let body_length = |r: Result<()>| matches!(r, Err(Error::Malformed(Malformed::BodyLength)));
        let mut wire = vec![0u8; 64 + TAG_LEN + 1];
        // Longer than a segment, a short middle segment, an empty segment after the first.
        assert!(body_length(engine.seal(0, true, &[0; 65], &mut wire)));
        assert!(body_length(engine.seal(
            0,
            false,
            &[0; 63],
            &mut wire[..79]
        )));
        assert!(body_length(engine.seal(1, true, &[], &mut wire[..16])));
        // An output of the wrong length.
        assert!(body_length(engine.seal(0, true, &[0; 3], &mut wire[..20])));
        assert!(body_length(engine.open(0, true, &wire[..15], &mut [])));
        assert!(body_length(engine.open(2, true, &wire[..16], &mut [])));
        assert!(matches!(
            engine.seal(1 << 32, true, &[1], &mut wire[..17]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            engine.open(1 << 32, true, &wire[..17], &mut [0]),
            Err(Error::Malformed(Malformed::TooManySegments))
        ));
    }

    #[test]
    fn the_last_segment_is_the_one_the_source_ends_within() {
        let engine = engine();
        let wire = engine.wire_segment();
        assert_eq!(
            engine.next_segment(0, wire + 1, false).ok(),
            Some(Some((wire, false)))
        );
        assert_eq!(
            engine.next_segment(0, wire + 1, true).ok(),
            Some(Some((wire, false)))
        );
        assert_eq!(
            engine.next_segment(3, wire, false).ok(),
            Some(Some((wire, false)))
        );
        assert_eq!(
            engine.next_segment(3, wire, true).ok(),
            Some(Some((wire, true)))
        );
        assert_eq!(
            engine.next_segment(3, 20, true).ok(),
            Some(Some((20, true)))
        );
        assert_eq!(engine.next_segment(3, 20, false).ok(), Some(None));
        assert!(matches!(
            engine.next_segment(0, 0, true),
            Err(Error::Malformed(Malformed::BodyMissing))
        ));
    }

    #[test]
    fn workers_never_exceed_the_limit_or_fall_below_one() {
        assert_eq!(workers(1), 1);
        assert_eq!(workers(0), 1);
        assert!(workers(usize::MAX) >= 1);
    }
}
