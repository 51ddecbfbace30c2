//! Buffers for wire bytes grow with the bytes that arrive, not with what the header claims.
//!
//! A header may claim segments of up to 64 MiB. Sized from that claim, a 200-byte hostile
//! stream would make each reader allocate 64 MiB before reading a byte. Growing by doubling
//! from a small start keeps every allocation within twice the bytes that actually arrived
//! plus [`FIRST_WIRE_ALLOCATION`], at amortized linear cost.

use zeroize::Zeroize;

/// The first allocation of a wire buffer: one default segment and its tag, plus the
/// look-ahead byte, so streams with the default segment size allocate exactly once.
pub(crate) const FIRST_WIRE_ALLOCATION: usize = 65_536 + 16 + 1;

/// The length to give a full buffer of `filled` bytes that needs `want`: double what has
/// arrived, at least [`FIRST_WIRE_ALLOCATION`], never past `want`.
pub(crate) fn next_wire_len(filled: usize, want: usize) -> usize {
    filled
        .saturating_mul(2)
        .max(FIRST_WIRE_ALLOCATION)
        .min(want)
}

/// Lengthens `buffer` to `new_len` with zeros, moving its bytes to a new allocation of
/// exactly that size and wiping the old one (a plain `resize` would free the old bytes
/// unwiped, and over-allocate by doubling the capacity).
pub(crate) fn grow_wiping(buffer: &mut Vec<u8>, new_len: usize) {
    if new_len <= buffer.len() {
        return;
    }
    if new_len <= buffer.capacity() {
        buffer.resize(new_len, 0);
        return;
    }
    let mut grown = Vec::with_capacity(new_len);
    grown.extend_from_slice(buffer);
    grown.resize(new_len, 0);
    let mut old = std::mem::replace(buffer, grown);
    // Wipe all of the old allocation, not only its current length.
    old.resize(old.capacity(), 0);
    old.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_doubles_from_the_first_allocation_and_stops_at_want() {
        let want = (64 << 20) + 17;
        assert_eq!(next_wire_len(0, want), FIRST_WIRE_ALLOCATION);
        assert_eq!(
            next_wire_len(FIRST_WIRE_ALLOCATION, want),
            2 * FIRST_WIRE_ALLOCATION
        );
        assert_eq!(next_wire_len(want - 1, want), want);
        assert_eq!(next_wire_len(0, 100), 100);
        assert_eq!(next_wire_len(usize::MAX, want), want);
    }

    #[test]
    fn growing_keeps_the_bytes_and_allocates_exactly() {
        let mut buffer = vec![1, 2, 3];
        grow_wiping(&mut buffer, 1000);
        assert_eq!(&buffer[..3], &[1, 2, 3]);
        assert_eq!(buffer.len(), 1000);
        assert_eq!(buffer.capacity(), 1000);
        assert!(buffer[3..].iter().all(|&b| b == 0));
        grow_wiping(&mut buffer, 10);
        assert_eq!(buffer.len(), 1000, "never shrinks");
    }
}
