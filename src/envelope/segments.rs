//! Sealing and opening a whole body held in memory.

use zeroize::Zeroize;

use crate::crypto::SegmentCipher;
use crate::error::{Error, Result};
use crate::format::{segment_nonce, BodyLayout, TAG_LEN};

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
    u32::try_from(index).map_err(|_| Error::Malformed(crate::format::Malformed::TooManySegments))
}

/// Appends the sealed body of `plaintext` to `out`. Each segment is copied once into `out`
/// and encrypted there while it is still in cache.
pub(crate) fn seal_body_into(
    ctx: &SegmentContext<'_>,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let segments = ctx.layout.segments();
    let mut chunks = plaintext.chunks(ctx.segment_size);
    for index in 0..segments {
        let chunk = chunks.next().unwrap_or_default();
        let nonce = segment_nonce(index_u32(index as usize)?, ctx.layout.is_last(index));
        let start = out.len();
        out.extend_from_slice(chunk);
        let tag = ctx
            .cipher
            .seal_in_place(&nonce, ctx.aad, &mut out[start..])
            .map_err(|_| Error::Backend {
                backend: "aes-gcm",
                message: "segment encryption failed".to_owned(),
            })?;
        out.extend_from_slice(&tag);
    }
    Ok(())
}

/// Opens a whole body. No plaintext is returned unless every segment verifies; on failure
/// the partial output is wiped.
pub(crate) fn open_body(ctx: &SegmentContext<'_>, body: &[u8]) -> Result<Vec<u8>> {
    let plain_len = usize::try_from(ctx.layout.plaintext_len())
        .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
    let mut out = Vec::with_capacity(plain_len);
    let wire_segment = ctx.segment_size + TAG_LEN;
    for (index, wire) in body.chunks(wire_segment).enumerate() {
        let last = ctx.layout.is_last(index as u64);
        let opened = wire
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Error::DecryptionFailed)
            .and_then(|(ciphertext, tag)| {
                let nonce = segment_nonce(index_u32(index)?, last);
                let start = out.len();
                out.extend_from_slice(ciphertext);
                ctx.cipher
                    .open_in_place(&nonce, ctx.aad, &mut out[start..], tag)
                    .map_err(|_| Error::DecryptionFailed)
            });
        if let Err(e) = opened {
            out.zeroize();
            return Err(e);
        }
    }
    Ok(out)
}
