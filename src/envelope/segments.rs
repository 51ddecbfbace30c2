//! Sealing and opening a whole body held in memory.
//!
//! The cipher reads each segment from its input and writes it straight to its place in the
//! output: one pass over the data, no intermediate copy.

use zeroize::Zeroize;

use crate::crypto::SegmentCipher;
use crate::error::{Error, Result};
use crate::format::{segment_nonce, BodyLayout, Malformed, TAG_LEN};

/// What every segment of one body shares.
pub(crate) struct SegmentContext<'a> {
    pub(crate) cipher: &'a dyn SegmentCipher,
    /// Preamble ‖ SHA-256(caller's associated data).
    pub(crate) aad: &'a [u8],
    pub(crate) layout: BodyLayout,
    pub(crate) segment_size: usize,
}

fn index_u32(index: usize) -> Result<u32> {
    // The layout bounds segments to 2^32, so this only fails on a broken invariant.
    u32::try_from(index).map_err(|_| Error::Malformed(Malformed::TooManySegments))
}

/// A zeroed buffer of `len` bytes.
pub(crate) fn zeroed(len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len)
        .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
    Ok(vec![0u8; len])
}

/// Seals `plaintext` into `out`, which is exactly the body length of the layout.
pub(crate) fn seal_body_into(
    ctx: &SegmentContext<'_>,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let wire_segment = ctx.segment_size + TAG_LEN;
    let segments = usize::try_from(ctx.layout.segments())
        .map_err(|_| Error::Malformed(Malformed::TooManySegments))?;
    // An empty plaintext still has one (empty) segment.
    let chunks = plaintext
        .chunks(ctx.segment_size)
        .chain(std::iter::repeat(&[][..]))
        .take(segments);
    for ((index, chunk), wire) in chunks.enumerate().zip(out.chunks_mut(wire_segment)) {
        let nonce = segment_nonce(index_u32(index)?, ctx.layout.is_last(index as u64));
        let (data, tag_out) = wire.split_at_mut(chunk.len());
        let tag = ctx
            .cipher
            .seal_to(&nonce, ctx.aad, chunk, data)
            .map_err(|_| Error::Backend {
                backend: "aes-gcm",
                message: "segment encryption failed".to_owned(),
            })?;
        tag_out.copy_from_slice(&tag);
    }
    Ok(())
}

/// Opens a whole body into `out`, which is resized to the plaintext length (only bytes past
/// its old length are filled first; the rest is overwritten). No plaintext is left unless
/// every segment verifies: on failure `out` is wiped and emptied.
pub(crate) fn open_body_into(
    ctx: &SegmentContext<'_>,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let plain_len = usize::try_from(ctx.layout.plaintext_len())
        .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
    out.resize(plain_len, 0);
    let wire_segment = ctx.segment_size + TAG_LEN;
    let mut at = 0usize;
    for (index, wire) in body.chunks(wire_segment).enumerate() {
        let last = ctx.layout.is_last(index as u64);
        let opened = wire
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Error::DecryptionFailed)
            .and_then(|(ciphertext, tag)| {
                let nonce = segment_nonce(index_u32(index)?, last);
                let end = at + ciphertext.len();
                let dest = out.get_mut(at..end).ok_or(Error::DecryptionFailed)?;
                at = end;
                ctx.cipher
                    .open_to(&nonce, ctx.aad, ciphertext, tag, dest)
                    .map_err(|_| Error::DecryptionFailed)
            });
        if let Err(e) = opened {
            out.zeroize();
            out.clear();
            return Err(e);
        }
    }
    Ok(())
}
