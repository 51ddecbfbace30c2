//! The header: preamble and key slots.

use super::limits::{
    MAX_KID_LEN, MAX_SEGMENT_SIZE, MAX_SLOTS, MIN_SEGMENT_SIZE, MIN_SLOTS, PREAMBLE_LEN,
};
use super::reader::Reader;
use super::slot::{KeySlot, WrapAlgorithm};
use super::Malformed;

/// `CMKE`.
pub const MAGIC: [u8; 4] = *b"CMKE";
/// The only format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Suite 1: AES-256-GCM segments, HKDF-SHA-256 key schedule, key commitment.
pub const SUITE_AES256GCM_HKDF_COMMIT: u8 = 1;

/// The 74-byte preamble: fixed for the life of an object, authenticated with every segment.
#[derive(Clone, PartialEq, Eq)]
pub struct Preamble {
    bytes: [u8; PREAMBLE_LEN],
}

impl std::fmt::Debug for Preamble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preamble")
            .field("segment_size", &self.segment_size())
            .finish_non_exhaustive()
    }
}

/// Fixed-size fields laid end to end, in an array of their total length (sealing runs this
/// per object: slice copies, not a byte at a time). The callers' lengths add up to `N`.
pub(super) fn concat<const N: usize>(fields: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0usize;
    for field in fields {
        let end = at.saturating_add(field.len());
        let Some(place) = out.get_mut(at..end) else {
            break;
        };
        place.copy_from_slice(field);
        at = end;
    }
    debug_assert_eq!(at, N, "the fields fill the array");
    out
}

impl Preamble {
    /// A new preamble for suite 1.
    ///
    /// # Errors
    /// [`Malformed::SegmentSizeOutOfRange`] when `segment_size` is outside the limits.
    pub fn new(
        segment_size: u32,
        message_id: [u8; 32],
        commitment: [u8; 32],
    ) -> Result<Self, Malformed> {
        check_segment_size(segment_size)?;
        let bytes = concat(&[
            &MAGIC,
            &[VERSION],
            &[SUITE_AES256GCM_HKDF_COMMIT],
            &segment_size.to_be_bytes(),
            &message_id,
            &commitment,
        ]);
        Ok(Self { bytes })
    }

    fn parse(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(Malformed::BadMagic);
        }
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(Malformed::UnsupportedVersion(version));
        }
        let suite = r.u8("suite")?;
        if suite != SUITE_AES256GCM_HKDF_COMMIT {
            return Err(Malformed::UnsupportedSuite(suite));
        }
        let segment_size = u32::from_be_bytes(r.array("segment size")?);
        let message_id: [u8; 32] = r.array("message id")?;
        let commitment: [u8; 32] = r.array("key commitment")?;
        Self::new(segment_size, message_id, commitment)
    }

    /// The exact 74 bytes, as authenticated by every segment.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; PREAMBLE_LEN] {
        &self.bytes
    }

    /// Plaintext bytes per full segment.
    #[must_use]
    pub fn segment_size(&self) -> u32 {
        let [_, _, _, _, _, _, a, b, c, d, ..] = self.bytes;
        u32::from_be_bytes([a, b, c, d])
    }

    /// The random message id (the HKDF salt).
    #[must_use]
    pub fn message_id(&self) -> [u8; 32] {
        self.field_32(10)
    }

    /// The key commitment.
    #[must_use]
    pub fn commitment(&self) -> [u8; 32] {
        self.field_32(42)
    }

    fn field_32(&self, from: usize) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, b) in out.iter_mut().zip(self.bytes.iter().skip(from)) {
            *o = *b;
        }
        out
    }
}

fn check_segment_size(size: u32) -> Result<(), Malformed> {
    if (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(Malformed::SegmentSizeOutOfRange(size))
    }
}

/// How much of a header a prefix of bytes holds: for reading a header off a stream without
/// reading past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLen {
    /// The header is complete and this long.
    Complete(usize),
    /// At least this many more bytes are needed.
    NeedMore(usize),
}

/// Measures the header at the start of `prefix`, checking each length field against its
/// limit as soon as it is read (so a stream reader never asks for more than a valid header
/// can hold).
///
/// # Errors
/// [`Malformed`] for a field outside its limits.
pub fn header_len(prefix: &[u8]) -> Result<HeaderLen, Malformed> {
    let mut r = Reader::new(prefix);
    let fixed = PREAMBLE_LEN.saturating_add(1);
    if r.remaining() < fixed {
        return Ok(HeaderLen::NeedMore(fixed.saturating_sub(r.remaining())));
    }
    Preamble::parse(&mut r)?;
    let count = r.u8("slot count")?;
    if !(MIN_SLOTS..=MAX_SLOTS).contains(&count) {
        return Err(Malformed::SlotCountOutOfRange(count));
    }
    for _ in 0..count {
        let Ok(kid_len) = r.u16("kid length") else {
            return Ok(HeaderLen::NeedMore(2usize.saturating_sub(r.remaining())));
        };
        if kid_len == 0 || kid_len > MAX_KID_LEN {
            return Err(Malformed::KidLengthOutOfRange(kid_len));
        }
        // The kid, the algorithm byte and the wrapped length.
        let next = usize::from(kid_len).saturating_add(3);
        if r.remaining() < next {
            return Ok(HeaderLen::NeedMore(next.saturating_sub(r.remaining())));
        }
        r.take(usize::from(kid_len), "kid")?;
        let algorithm = WrapAlgorithm::from_wire_id(r.u8("wrap algorithm")?)?;
        let wrapped_len = r.u16("wrapped key length")?;
        algorithm.check_wrapped_len(wrapped_len)?;
        if r.remaining() < usize::from(wrapped_len) {
            return Ok(HeaderLen::NeedMore(
                usize::from(wrapped_len).saturating_sub(r.remaining()),
            ));
        }
        r.take(usize::from(wrapped_len), "wrapped key")?;
    }
    Ok(HeaderLen::Complete(
        prefix.len().saturating_sub(r.remaining()),
    ))
}

/// A parsed header: the preamble and 1 to 8 key slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    preamble: Preamble,
    slots: Vec<KeySlot>,
}

impl Header {
    /// A header from its parts.
    ///
    /// # Errors
    /// [`Malformed::SlotCountOutOfRange`] unless there are 1 to 8 slots.
    pub fn new(preamble: Preamble, slots: Vec<KeySlot>) -> Result<Self, Malformed> {
        let count = u8::try_from(slots.len()).unwrap_or(u8::MAX);
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&count) {
            return Err(Malformed::SlotCountOutOfRange(count));
        }
        Ok(Self { preamble, slots })
    }

    /// Parses the header at the start of an attached envelope; returns it and its length,
    /// where the body starts.
    ///
    /// # Errors
    /// [`Malformed`] naming the first field that breaks the format.
    pub fn parse_prefix(bytes: &[u8]) -> Result<(Self, usize), Malformed> {
        let mut r = Reader::new(bytes);
        let preamble = Preamble::parse(&mut r)?;
        let count = r.u8("slot count")?;
        if !(MIN_SLOTS..=MAX_SLOTS).contains(&count) {
            return Err(Malformed::SlotCountOutOfRange(count));
        }
        let mut slots = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            slots.push(KeySlot::parse(&mut r)?);
        }
        let consumed = bytes.len().saturating_sub(r.remaining());
        Ok((Self { preamble, slots }, consumed))
    }

    /// Parses a detached header, which must be exactly `bytes`.
    ///
    /// # Errors
    /// [`Malformed`] as for [`Header::parse_prefix`], and [`Malformed::TrailingBytes`] when
    /// anything follows the last slot.
    pub fn parse_detached(bytes: &[u8]) -> Result<Self, Malformed> {
        let (header, used) = Self::parse_prefix(bytes)?;
        if used != bytes.len() {
            return Err(Malformed::TrailingBytes);
        }
        Ok(header)
    }

    /// The wire bytes of this header.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        out
    }

    /// Appends the wire bytes of this header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.preamble.as_bytes());
        // 1 ..= 8 slots, checked on construction.
        out.push(self.slots.len() as u8);
        for slot in &self.slots {
            slot.write(out);
        }
    }

    /// The length of [`Header::to_bytes`].
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.slots
            .iter()
            .fold(PREAMBLE_LEN.saturating_add(1), |n, s| {
                n.saturating_add(s.encoded_len())
            })
    }

    /// The preamble.
    #[must_use]
    pub fn preamble(&self) -> &Preamble {
        &self.preamble
    }

    /// The key slots, in wire order.
    #[must_use]
    pub fn slots(&self) -> &[KeySlot] {
        &self.slots
    }

    /// The same preamble with other slots: what a re-wrap produces.
    ///
    /// # Errors
    /// [`Malformed::SlotCountOutOfRange`] unless there are 1 to 8 slots.
    pub fn with_slots(&self, slots: Vec<KeySlot>) -> Result<Self, Malformed> {
        Self::new(self.preamble.clone(), slots)
    }
}

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::format::limits::MAX_HEADER_LEN;

    fn header(slots: usize, kid_len: usize, wrapped_len: usize) -> Header {
        let preamble = Preamble::new(64, [1; 32], [2; 32]).unwrap_or_else(|e| panic!("{e}"));
        let slot = KeySlot::new(
            "k".repeat(kid_len),
            WrapAlgorithm::RsaOaepSha256,
            vec![7; wrapped_len],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Header::new(preamble, vec![slot; slots]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trips_and_measures_itself() {
        let h = header(2, 10, 256);
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), h.encoded_len());
        assert_eq!(Header::parse_detached(&bytes), Ok(h.clone()));
        let mut attached = bytes.clone();
        attached.extend_from_slice(b"body");
        assert_eq!(Header::parse_prefix(&attached), Ok((h, bytes.len())));
        assert_eq!(
            Header::parse_detached(&attached),
            Err(Malformed::TrailingBytes)
        );
    }

    #[test]
    fn the_largest_header_is_max_header_len() {
        let h = header(8, 1024, 1024);
        assert_eq!(h.to_bytes().len(), MAX_HEADER_LEN);
    }

    #[test]
    fn header_len_asks_for_exactly_what_is_missing() {
        let bytes = header(3, 10, 256).to_bytes();
        let mut have = 0;
        let mut asks = 0;
        loop {
            match header_len(&bytes[..have]) {
                Ok(HeaderLen::Complete(n)) => {
                    assert_eq!(n, bytes.len());
                    break;
                }
                Ok(HeaderLen::NeedMore(n)) => {
                    assert!(n > 0 && have + n <= bytes.len());
                    have += n;
                    asks += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(asks, 1 + 3 * 3);
        for cut in 0..bytes.len() {
            assert!(matches!(
                header_len(&bytes[..cut]),
                Ok(HeaderLen::NeedMore(_))
            ));
        }
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"body");
        assert_eq!(header_len(&trailing), Ok(HeaderLen::Complete(bytes.len())));
    }

    #[test]
    fn rejects_every_truncation() {
        let bytes = header(2, 10, 256).to_bytes();
        for cut in 0..bytes.len() {
            assert!(matches!(
                Header::parse_prefix(bytes.get(..cut).unwrap_or_default()),
                Err(Malformed::Truncated(_))
            ));
        }
    }

    #[test]
    fn rejects_out_of_range_fields() {
        let good = header(1, 4, 4).to_bytes();
        let mutate = |at: usize, value: &[u8]| {
            let mut b = good.clone();
            b.splice(at..at + value.len(), value.iter().copied());
            Header::parse_detached(&b)
        };
        assert_eq!(mutate(0, b"CMKF"), Err(Malformed::BadMagic));
        assert_eq!(mutate(4, &[2]), Err(Malformed::UnsupportedVersion(2)));
        assert_eq!(mutate(5, &[0]), Err(Malformed::UnsupportedSuite(0)));
        assert_eq!(
            mutate(6, &63u32.to_be_bytes()),
            Err(Malformed::SegmentSizeOutOfRange(63))
        );
        assert_eq!(
            mutate(6, &((1u32 << 26) + 1).to_be_bytes()),
            Err(Malformed::SegmentSizeOutOfRange((1 << 26) + 1))
        );
        assert_eq!(mutate(74, &[0]), Err(Malformed::SlotCountOutOfRange(0)));
        assert_eq!(mutate(74, &[9]), Err(Malformed::SlotCountOutOfRange(9)));
        assert_eq!(mutate(75, &[0, 0]), Err(Malformed::KidLengthOutOfRange(0)));
        assert_eq!(
            mutate(75, &1025u16.to_be_bytes()),
            Err(Malformed::KidLengthOutOfRange(1025))
        );
        assert_eq!(mutate(77, &[0xff]), Err(Malformed::KidNotUtf8));
        assert_eq!(mutate(81, &[4]), Err(Malformed::UnknownWrapAlgorithm(4)));
        assert_eq!(mutate(81, &[3]), Err(Malformed::BranchWrappedLength(4)));
        assert_eq!(
            mutate(82, &[0, 0]),
            Err(Malformed::WrappedLengthOutOfRange(0))
        );
        assert_eq!(
            mutate(82, &u16::MAX.to_be_bytes()),
            Err(Malformed::WrappedLengthOutOfRange(u16::MAX))
        );
    }
}
