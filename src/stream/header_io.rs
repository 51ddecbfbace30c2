//! Reading a header off a stream, field by field, checking each length before reading it.

use std::io::Read;

use crate::error::{Error, Result};
use crate::format::limits::{MAX_KID_LEN, MAX_SLOTS, MAX_WRAPPED_LEN, MIN_SLOTS, PREAMBLE_LEN};
use crate::format::{Header, Malformed};

/// Reads exactly one header from `source` (nothing past it) and parses it.
pub(crate) fn read_header(source: &mut impl Read) -> Result<(Header, usize)> {
    let mut bytes = Vec::with_capacity(PREAMBLE_LEN + 1 + 300);
    take(source, &mut bytes, PREAMBLE_LEN + 1, "preamble")?;
    let count = bytes.last().copied().unwrap_or(0);
    if !(MIN_SLOTS..=MAX_SLOTS).contains(&count) {
        // Let the parser name the problem (bad magic comes before a bad count).
        return Err(parse(&bytes)
            .err()
            .unwrap_or(Malformed::SlotCountOutOfRange(count).into()));
    }
    for _ in 0..count {
        let kid_len = take_u16(source, &mut bytes, "kid length")?;
        if kid_len == 0 || kid_len > MAX_KID_LEN {
            return Err(Malformed::KidLengthOutOfRange(kid_len).into());
        }
        take(source, &mut bytes, usize::from(kid_len) + 1, "kid")?;
        let wrapped_len = take_u16(source, &mut bytes, "wrapped key length")?;
        if wrapped_len == 0 || wrapped_len > MAX_WRAPPED_LEN {
            return Err(Malformed::WrappedLengthOutOfRange(wrapped_len).into());
        }
        take(source, &mut bytes, usize::from(wrapped_len), "wrapped key")?;
    }
    let header = parse(&bytes)?;
    Ok((header, bytes.len()))
}

fn parse(bytes: &[u8]) -> Result<Header> {
    Ok(Header::parse_detached(bytes)?)
}

fn take_u16(source: &mut impl Read, bytes: &mut Vec<u8>, what: &'static str) -> Result<u16> {
    take(source, bytes, 2, what)?;
    let [.., a, b] = bytes.as_slice() else {
        return Err(Malformed::Truncated(what).into());
    };
    Ok(u16::from_be_bytes([*a, *b]))
}

/// Appends exactly `n` bytes (n ≤ 1027, checked by the callers) or fails as truncated.
fn take(source: &mut impl Read, bytes: &mut Vec<u8>, n: usize, what: &'static str) -> Result<()> {
    let start = bytes.len();
    bytes.resize(start + n, 0);
    source
        .read_exact(&mut bytes[start..])
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Malformed(Malformed::Truncated(what)),
            _ => Error::from(e),
        })
}
