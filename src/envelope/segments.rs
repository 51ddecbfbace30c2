//! Sealing and opening a whole body held in memory.
//!
//! The cipher reads each segment from its input and writes it straight to its place in the
//! output: one pass over the data, no intermediate copy. Bodies of more than a few segments
//! are cut into contiguous runs of segments, one per core; every segment's nonce and place
//! depend only on its index, so the output is byte-identical to a single-threaded run.

use std::sync::OnceLock;

use rayon::prelude::*;

use zeroize::Zeroize;

use crate::crypto::SegmentCipher;
use crate::error::{Error, Result};
use crate::format::{segment_nonce, BodyLayout, Malformed, TAG_LEN};

/// Below this many body bytes a second thread costs more than it saves: waking a pool
/// thread costs tens to hundreds of microseconds, and at 1 MiB the parallel path was slower
/// than one thread (`cargo bench --bench seal_open -- 1MiB`; figures in the README,
/// "Performance").
const PARALLEL_MIN_BYTES: u64 = 4 * 1024 * 1024;
/// ...and below this many segments there is nothing to share.
const PARALLEL_MIN_SEGMENTS: u64 = 4;

/// What every segment of one run of segments shares: a whole body, or a batch of a stream.
pub(crate) struct SegmentContext<'a> {
    pub(crate) cipher: &'a dyn SegmentCipher,
    /// Preamble ‖ SHA-256(caller's associated data).
    pub(crate) aad: &'a [u8],
    /// The geometry of this run (for a batch: as if it were a body of its own).
    pub(crate) layout: BodyLayout,
    pub(crate) segment_size: usize,
    /// Index, in the object, of the run's first segment.
    pub(crate) first_index: u64,
    /// Whether the run's last segment is the object's last segment.
    pub(crate) ends_object: bool,
    /// Most threads to use (1: this thread only).
    pub(crate) max_threads: usize,
}

impl SegmentContext<'_> {
    pub(super) fn wire_segment(&self) -> usize {
        self.segment_size + TAG_LEN
    }

    /// How many threads to use, and how many segments each takes (the last takes the rest).
    pub(super) fn split(&self) -> (usize, usize) {
        let segments = self.layout.segments();
        let workers =
            if segments < PARALLEL_MIN_SEGMENTS || self.layout.body_len() < PARALLEL_MIN_BYTES {
                1
            } else {
                cores()
                    .min(self.max_threads.max(1))
                    .min(usize::try_from(segments).unwrap_or(usize::MAX))
            };
        let per = usize::try_from(segments.div_ceil(workers as u64)).unwrap_or(usize::MAX);
        (workers, per)
    }

    /// The nonce of the run's segment `offset`.
    pub(super) fn nonce(&self, offset: usize) -> Result<[u8; 12]> {
        let index = self
            .first_index
            .checked_add(offset as u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or(Malformed::TooManySegments)?;
        let last = self.ends_object && self.layout.is_last(offset as u64);
        Ok(segment_nonce(index, last))
    }
}

/// Threads of the pool, read once.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(rayon::current_num_threads)
}

/// Runs `job(first_segment, input_run, output_run)` over consecutive runs of `per`
/// segments, on rayon's pool when there is more than one run (a pool, because spawning a
/// thread per object costs about as much as encrypting a megabyte).
fn for_each_run<F>(
    workers: usize,
    per: usize,
    (input, input_step): (&[u8], usize),
    (output, output_step): (&mut [u8], usize),
    job: F,
) -> Result<()>
where
    F: Fn(usize, &[u8], &mut [u8]) -> Result<()> + Sync,
{
    if workers <= 1 {
        return job(0, input, output);
    }
    input
        .par_chunks(per * input_step)
        .zip(output.par_chunks_mut(per * output_step))
        .enumerate()
        .try_for_each(|(run, (input, output))| job(run * per, input, output))
}

/// Seals `plaintext` into `out`, which is exactly the body length of the layout.
pub(crate) fn seal_body_into(
    ctx: &SegmentContext<'_>,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let (workers, per) = ctx.split();
    for_each_run(
        workers,
        per,
        (plaintext, ctx.segment_size),
        (out, ctx.wire_segment()),
        |first, plaintext, out| seal_run(ctx, first, plaintext, out),
    )
}

fn seal_run(
    ctx: &SegmentContext<'_>,
    first: usize,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    // An empty plaintext is one empty segment.
    let chunks: Box<dyn Iterator<Item = &[u8]>> = if plaintext.is_empty() {
        Box::new(std::iter::once(&[][..]))
    } else {
        Box::new(plaintext.chunks(ctx.segment_size))
    };
    for ((offset, chunk), wire) in chunks.enumerate().zip(out.chunks_mut(ctx.wire_segment())) {
        let nonce = ctx.nonce(first + offset)?;
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
    let (workers, per) = ctx.split();
    let opened = for_each_run(
        workers,
        per,
        (body, ctx.wire_segment()),
        (out.as_mut_slice(), ctx.segment_size),
        |first, body, out| open_run(ctx, first, body, out),
    );
    if opened.is_err() {
        out.zeroize();
        out.clear();
    }
    opened
}

fn open_run(ctx: &SegmentContext<'_>, first: usize, body: &[u8], out: &mut [u8]) -> Result<()> {
    let mut at = 0usize;
    for (offset, wire) in body.chunks(ctx.wire_segment()).enumerate() {
        let (ciphertext, tag) = wire
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Error::DecryptionFailed)?;
        let nonce = ctx.nonce(first + offset)?;
        let end = at + ciphertext.len();
        let dest = out.get_mut(at..end).ok_or(Error::DecryptionFailed)?;
        at = end;
        ctx.cipher
            .open_to(&nonce, ctx.aad, ciphertext, tag, dest)
            .map_err(|_| Error::DecryptionFailed)?;
    }
    Ok(())
}

/// A zeroed buffer of `len` bytes.
pub(crate) fn zeroed(len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len)
        .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
    Ok(vec![0u8; len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Provider;

    fn context<'a>(cipher: &'a dyn SegmentCipher, plain_len: u64) -> SegmentContext<'a> {
        SegmentContext {
            cipher,
            aad: b"associated",
            layout: BodyLayout::for_plaintext(64, plain_len).expect("layout"),
            segment_size: 64,
            first_index: 0,
            ends_object: true,
            max_threads: usize::MAX,
        }
    }

    #[test]
    fn parallel_output_is_byte_identical_and_opens() {
        for provider in Provider::all() {
            let cipher = provider.ops().aes256_gcm(&[5; 32]).expect("key");
            // Around the parallel threshold, and with run lengths that do not divide evenly.
            for plain_len in [
                0u64,
                1,
                64 * 3,
                300_001,
                64 * 70_001,
                64 * 70_001 + 17,
                5_000_000,
            ] {
                let ctx = context(cipher.as_ref(), plain_len);
                let parallel_expected = ctx.layout.body_len() >= PARALLEL_MIN_BYTES && cores() > 1;
                assert_eq!(ctx.split().0 > 1, parallel_expected, "len {plain_len}");
                let plaintext: Vec<u8> = (0..plain_len).map(|i| i as u8).collect();
                let body_len = ctx.layout.body_len() as usize;
                let (mut single, mut parallel) = (vec![0u8; body_len], vec![0u8; body_len]);
                seal_run(&ctx, 0, &plaintext, &mut single).expect("single");
                seal_body_into(&ctx, &plaintext, &mut parallel).expect("parallel");
                assert!(single == parallel, "{} len {plain_len}", provider.name());
                let mut opened = vec![1, 2, 3];
                open_body_into(&ctx, &parallel, &mut opened).expect("open");
                assert!(opened == plaintext, "len {plain_len}");
                if plain_len > 0 {
                    // A flip in the last run fails the whole body and leaves nothing.
                    let last = body_len - 1;
                    parallel[last] ^= 1;
                    assert!(open_body_into(&ctx, &parallel, &mut opened).is_err());
                    assert!(opened.is_empty());
                }
            }
        }
    }
}
