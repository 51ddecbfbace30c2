//! Sealing: a fresh data key, wrapped, then the body.

use crate::error::{Error, Result};
use crate::format::BodyLayout;

/// A sealed object as a separate header and body (store the header in metadata, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The header: preamble and key slots.
    pub header: Vec<u8>,
    /// The segments.
    pub body: Vec<u8>,
}

/// Header plus body length, if it fits in memory.
pub(super) fn envelope_len(header_len: usize, layout: BodyLayout) -> Result<usize> {
    usize::try_from(layout.body_len())
        .ok()
        .and_then(|body| body.checked_add(header_len))
        .ok_or_else(|| Error::InvalidArgument("object too large for memory".to_owned()))
}
