//! Reading a header off a stream: exactly the header's bytes, asked for field by field by
//! the sans-I/O [`header_len`], so no length is trusted before it is checked.

use std::io::Read;

use crate::error::{Error, Result};
use crate::format::{header_len, Header, HeaderLen, Malformed};

/// Reads exactly one header's bytes from `source`, nothing past it: each field is asked for
/// only once the lengths before it are checked (for example to learn which keys an
/// envelope needs before opening it from a pipe).
///
/// # Errors
/// [`Error::Malformed`](crate::Error::Malformed) for a bad or truncated header;
/// [`Error::Io`](crate::Error::Io) for the source.
pub fn read_header_bytes(source: &mut impl Read) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    loop {
        match header_len(&bytes)? {
            HeaderLen::Complete(_) => return Ok(bytes),
            HeaderLen::NeedMore(n) => {
                let start = bytes.len();
                bytes.resize(start + n, 0);
                source
                    .read_exact(&mut bytes[start..])
                    .map_err(truncated_or_io)?;
            }
        }
    }
}

/// Reads exactly one header from `source` (nothing past it) and parses it.
pub(crate) fn read_header(source: &mut impl Read) -> Result<(Header, usize)> {
    let bytes = read_header_bytes(source)?;
    Ok((Header::parse_detached(&bytes)?, bytes.len()))
}

/// The same over a tokio `AsyncRead`.
#[cfg(feature = "tokio")]
pub(crate) async fn read_header_async(
    source: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<(Header, usize)> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    loop {
        match header_len(&bytes)? {
            HeaderLen::Complete(len) => return Ok((Header::parse_detached(&bytes)?, len)),
            HeaderLen::NeedMore(n) => {
                let start = bytes.len();
                bytes.resize(start + n, 0);
                source
                    .read_exact(&mut bytes[start..])
                    .await
                    .map_err(truncated_or_io)?;
            }
        }
    }
}

fn truncated_or_io(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Malformed::Truncated("header").into(),
        _ => Error::from(e),
    }
}
