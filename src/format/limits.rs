//! The limits of CMKE v1. The parser checks each one before using the length it bounds.

/// Length of the immutable preamble.
pub const PREAMBLE_LEN: usize = 74;
/// Smallest allowed segment size (plaintext bytes per full segment).
pub const MIN_SEGMENT_SIZE: u32 = 64;
/// Largest allowed segment size: 2^26 bytes (64 MiB).
pub const MAX_SEGMENT_SIZE: u32 = 1 << 26;
/// Segment size used when the caller does not choose one.
pub const DEFAULT_SEGMENT_SIZE: u32 = 65_536;
/// Fewest key slots in a header.
pub const MIN_SLOTS: u8 = 1;
/// Most key slots in a header.
pub const MAX_SLOTS: u8 = 8;
/// Longest key identifier, in bytes.
pub const MAX_KID_LEN: u16 = 1024;
/// Longest wrapped data key, in bytes (an RSA-8192 ciphertext).
pub const MAX_WRAPPED_LEN: u16 = 1024;
/// Most segments in one body: 2^32 (the segment index is a `u32`).
pub const MAX_SEGMENTS: u64 = 1 << 32;
/// Largest header the limits allow: preamble, count, and eight maximal slots.
pub const MAX_HEADER_LEN: usize = PREAMBLE_LEN
    + 1
    + MAX_SLOTS as usize * (2 + MAX_KID_LEN as usize + 1 + 2 + MAX_WRAPPED_LEN as usize);
