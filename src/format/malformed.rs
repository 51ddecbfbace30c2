//! Why a byte string is not a CMKE v1 envelope.

/// The precise reason an input was rejected by the parser. Carried by
/// [`Error::Malformed`](crate::Error::Malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The input ended before the named field.
    #[error("input ends inside the {0}")]
    Truncated(&'static str),
    /// The first four bytes are not `CMKE`.
    #[error("not a CMKE envelope (bad magic)")]
    BadMagic,
    /// A format version this crate does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// A cipher suite this crate does not know.
    #[error("unsupported suite {0}")]
    UnsupportedSuite(u8),
    /// The segment size is outside 64 ..= 2^26.
    #[error("segment size {0} is outside 64..=67108864")]
    SegmentSizeOutOfRange(u32),
    /// The slot count is outside 1 ..= 8.
    #[error("key slot count {0} is outside 1..=8")]
    SlotCountOutOfRange(u8),
    /// A kid length is outside 1 ..= 1024.
    #[error("kid length {0} is outside 1..=1024")]
    KidLengthOutOfRange(u16),
    /// A kid is not valid UTF-8.
    #[error("kid is not UTF-8")]
    KidNotUtf8,
    /// A wrap algorithm this crate does not know.
    #[error("unknown wrap algorithm {0}")]
    UnknownWrapAlgorithm(u8),
    /// A wrapped-key length is outside 1 ..= 1024.
    #[error("wrapped key length {0} is outside 1..=1024")]
    WrappedLengthOutOfRange(u16),
    /// A branch slot (wrap algorithm 3) whose wrapped key is not exactly 60 bytes.
    #[error("branch slot's wrapped key is {0} bytes, not 60")]
    BranchWrappedLength(u16),
    /// Bytes follow a detached header.
    #[error("bytes follow the header")]
    TrailingBytes,
    /// The envelope has a header but no body.
    #[error("the body is missing")]
    BodyMissing,
    /// The body's length cannot be cut into segments (it was truncated or extended).
    #[error("the body length does not match any sequence of segments")]
    BodyLength,
    /// More than 2^32 segments.
    #[error("more than 2^32 segments")]
    TooManySegments,
}
