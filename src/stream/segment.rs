//! One segment at a time: what the stream adapters share.

use crate::crypto::{KeySchedule, SegmentCipher};
use crate::error::{Error, Result};
use crate::format::{segment_nonce, Malformed, Preamble, SEGMENT_AAD_LEN};

/// The cipher and associated data of one object, for segment-at-a-time work.
pub(crate) struct SegmentCrypter {
    cipher: Box<dyn SegmentCipher>,
    aad: [u8; SEGMENT_AAD_LEN],
}

impl SegmentCrypter {
    pub(crate) fn new(schedule: KeySchedule, preamble: &Preamble, aad_hash: &[u8; 32]) -> Self {
        Self {
            cipher: schedule.cipher,
            aad: preamble.segment_aad(aad_hash),
        }
    }

    fn nonce(index: u64, last: bool) -> Result<[u8; 12]> {
        let index = u32::try_from(index).map_err(|_| Malformed::TooManySegments)?;
        Ok(segment_nonce(index, last))
    }

    /// Seals one segment: `out` becomes ciphertext ‖ tag.
    pub(crate) fn seal(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let nonce = Self::nonce(index, last)?;
        out.resize(plaintext.len(), 0);
        let tag = self
            .cipher
            .seal_to(&nonce, &self.aad, plaintext, out)
            .map_err(|_| Error::Backend {
                backend: "aes-gcm",
                message: "segment encryption failed".to_owned(),
            })?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens one segment (`wire` = ciphertext ‖ tag) into `out`, which is resized to the
    /// plaintext length; on failure `out` is zeroed.
    pub(crate) fn open(
        &self,
        index: u64,
        last: bool,
        wire: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let (ciphertext, tag) = wire.split_last_chunk::<16>().ok_or(Malformed::BodyLength)?;
        let nonce = Self::nonce(index, last)?;
        out.resize(ciphertext.len(), 0);
        self.cipher
            .open_to(&nonce, &self.aad, ciphertext, tag, out)
            .map_err(|_| Error::DecryptionFailed)
    }
}
