//! How a body is cut into segments: counts, offsets, nonces and associated data.

use super::limits::{MAX_SEGMENTS, PREAMBLE_LEN};
use super::{Malformed, Preamble};

/// Length of a GCM tag, which ends every segment on the wire.
pub const TAG_LEN: usize = 16;
/// Length of a segment's associated data: preamble ‖ SHA-256(caller's associated data).
pub const SEGMENT_AAD_LEN: usize = PREAMBLE_LEN + 32;

/// The segment geometry of one body, computed from lengths alone and checked against the
/// format's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLayout {
    segment_size: u64,
    segments: u64,
    last_plain_len: u64,
}

impl BodyLayout {
    /// The layout of a body that will hold `plain_len` plaintext bytes.
    ///
    /// # Errors
    /// [`Malformed::TooManySegments`] past 2^32 segments.
    pub fn for_plaintext(segment_size: u32, plain_len: u64) -> Result<Self, Malformed> {
        let size = u64::from(segment_size.max(1));
        // An empty plaintext is one empty segment; otherwise the last segment holds 1..=S.
        let segments = plain_len.div_ceil(size).max(1);
        if segments > MAX_SEGMENTS {
            return Err(Malformed::TooManySegments);
        }
        let full = segments.saturating_sub(1).saturating_mul(size);
        Ok(Self {
            segment_size: size,
            segments,
            last_plain_len: plain_len.saturating_sub(full),
        })
    }

    /// The layout of a body of `body_len` bytes on the wire.
    ///
    /// # Errors
    /// [`Malformed::BodyMissing`] for an empty body, [`Malformed::BodyLength`] when the length
    /// is no sequence of segments (a last segment shorter than a tag, or an empty last
    /// segment after full ones), [`Malformed::TooManySegments`] past 2^32 segments.
    pub fn for_ciphertext(segment_size: u32, body_len: u64) -> Result<Self, Malformed> {
        if body_len == 0 {
            return Err(Malformed::BodyMissing);
        }
        let size = u64::from(segment_size.max(1));
        let wire = size.saturating_add(TAG_LEN as u64);
        let segments = body_len.div_ceil(wire);
        if segments > MAX_SEGMENTS {
            return Err(Malformed::TooManySegments);
        }
        let full = segments.saturating_sub(1).saturating_mul(wire);
        let last_wire = body_len.saturating_sub(full);
        let last_plain_len = last_wire
            .checked_sub(TAG_LEN as u64)
            .ok_or(Malformed::BodyLength)?;
        if last_plain_len == 0 && segments > 1 {
            return Err(Malformed::BodyLength);
        }
        Ok(Self {
            segment_size: size,
            segments,
            last_plain_len,
        })
    }

    /// Number of segments (at least 1).
    #[must_use]
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Total plaintext length.
    #[must_use]
    pub fn plaintext_len(&self) -> u64 {
        self.segments
            .saturating_sub(1)
            .saturating_mul(self.segment_size)
            .saturating_add(self.last_plain_len)
    }

    /// Total body length on the wire.
    #[must_use]
    pub fn body_len(&self) -> u64 {
        self.plaintext_len()
            .saturating_add(self.segments.saturating_mul(TAG_LEN as u64))
    }

    /// Plaintext length of segment `index` (0 past the end).
    #[must_use]
    pub fn segment_plain_len(&self, index: u64) -> u64 {
        let last = self.segments.saturating_sub(1);
        match index.cmp(&last) {
            std::cmp::Ordering::Less => self.segment_size,
            std::cmp::Ordering::Equal => self.last_plain_len,
            std::cmp::Ordering::Greater => 0,
        }
    }

    /// Where segment `index` starts in the body on the wire (plaintext starts at
    /// `index * segment_size`).
    #[must_use]
    pub fn segment_wire_offset(&self, index: u64) -> u64 {
        index.saturating_mul(self.segment_size.saturating_add(TAG_LEN as u64))
    }

    /// Whether `index` is the last segment.
    #[must_use]
    pub fn is_last(&self, index: u64) -> bool {
        index.saturating_add(1) == self.segments
    }
}

/// The nonce of segment `index`: 7 zero bytes ‖ u32 index ‖ 1 if last else 0.
#[must_use]
pub fn segment_nonce(index: u32, last: bool) -> [u8; 12] {
    let [a, b, c, d] = index.to_be_bytes();
    [0, 0, 0, 0, 0, 0, 0, a, b, c, d, u8::from(last)]
}

impl Preamble {
    /// The associated data of every segment: the preamble ‖ SHA-256 of the caller's
    /// associated data (the hash is computed by the caller: this module does no crypto).
    #[must_use]
    pub fn segment_aad(&self, caller_aad_sha256: &[u8; 32]) -> [u8; SEGMENT_AAD_LEN] {
        super::header::concat(&[self.as_bytes(), caller_aad_sha256])
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_layouts() {
        let l = BodyLayout::for_plaintext(64, 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (l.segments(), l.segment_plain_len(0), l.body_len()),
            (1, 0, 16)
        );
        let l = BodyLayout::for_plaintext(64, 320).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.segments(), l.segment_plain_len(4)), (5, 64));
        let l = BodyLayout::for_plaintext(64, 321).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.segments(), l.segment_plain_len(5)), (6, 1));
        assert_eq!(
            BodyLayout::for_plaintext(64, 64 << 32),
            Ok(BodyLayout {
                segment_size: 64,
                segments: 1 << 32,
                last_plain_len: 64
            })
        );
        assert_eq!(
            BodyLayout::for_plaintext(64, (64 << 32) + 1),
            Err(Malformed::TooManySegments)
        );
    }

    #[test]
    fn ciphertext_layouts_invert_plaintext_layouts() {
        for len in [0u64, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let p = BodyLayout::for_plaintext(64, len).unwrap_or_else(|e| panic!("{e}"));
            let c = BodyLayout::for_ciphertext(64, p.body_len()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p, c, "plaintext length {len}");
            assert_eq!(c.plaintext_len(), len);
        }
    }

    #[test]
    fn impossible_body_lengths() {
        assert_eq!(
            BodyLayout::for_ciphertext(64, 0),
            Err(Malformed::BodyMissing)
        );
        assert_eq!(
            BodyLayout::for_ciphertext(64, 15),
            Err(Malformed::BodyLength)
        );
        // One full segment then a bare tag: an empty segment may only stand alone.
        assert_eq!(
            BodyLayout::for_ciphertext(64, 80 + 16),
            Err(Malformed::BodyLength)
        );
        // One full segment then a fragment shorter than a tag.
        assert_eq!(
            BodyLayout::for_ciphertext(64, 80 + 15),
            Err(Malformed::BodyLength)
        );
        assert_eq!(
            BodyLayout::for_ciphertext(64, u64::MAX),
            Err(Malformed::TooManySegments)
        );
    }

    #[test]
    fn nonces() {
        assert_eq!(segment_nonce(0, false), [0; 12]);
        assert_eq!(
            segment_nonce(0x0102_0304, true),
            [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 1]
        );
    }
}
