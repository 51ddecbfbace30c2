//! The crate's errors and `std::io` errors, both ways.

use crate::error::Error;

/// The crate's error inside an `io::Error` made by these adapters, or the I/O error itself.
/// The same as `Error::from` (and so `?`), which recovers the crate's error too.
#[must_use]
pub fn into_cmk_error(error: std::io::Error) -> Error {
    Error::from(error)
}

/// Wraps the crate's error for `std::io` callers (the one mapping, `From<Error>`).
pub(crate) fn to_io(error: Error) -> std::io::Error {
    std::io::Error::from(error)
}
