//! Whole bodies in memory, into a separate output.
//!
//! The cipher reads each segment from its input and writes it straight to its place in the
//! output: one pass over the data, no intermediate copy. Large bodies are cut into runs of
//! segments, one per thread ([`super::runs`]).

use std::ops::Range;

use zeroize::Zeroize;

use super::runs::{run_all, segment_runs};
use super::SegmentEngine;
use crate::error::{Error, Result};
use crate::format::BodyLayout;

/// Seals `plaintext` (of `layout`'s plaintext length) into `out`, which is exactly the
/// layout's body length, on up to `max_threads` threads.
pub(crate) fn seal_body(
    engine: &SegmentEngine,
    layout: BodyLayout,
    max_threads: usize,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let jobs = cut(
        &segment_runs(layout, max_threads),
        (plaintext, engine.segment_size()),
        (out, engine.wire_segment()),
    );
    run_all(jobs, |(first, plaintext, out)| {
        // An empty plaintext is one empty segment.
        let empty = plaintext.is_empty().then_some(&[][..]);
        let chunks = plaintext.chunks(engine.segment_size()).chain(empty);
        let wires = out.chunks_mut(engine.wire_segment());
        for ((index, chunk), wire) in (first..).zip(chunks).zip(wires) {
            engine.seal(index, layout.is_last(index), chunk, wire)?;
        }
        Ok(())
    })
}

/// Opens `body` (of `layout`'s body length) into `out`, which is resized to the plaintext
/// length (only bytes past its old length are filled first; the rest is overwritten), on up
/// to `max_threads` threads. No plaintext is left unless every segment verifies: on failure
/// `out` is wiped and emptied.
pub(crate) fn open_body(
    engine: &SegmentEngine,
    layout: BodyLayout,
    max_threads: usize,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let plain_len = usize::try_from(layout.plaintext_len())
        .map_err(|_| Error::InvalidArgument("object too large for memory".to_owned()))?;
    out.resize(plain_len, 0);
    let jobs = cut(
        &segment_runs(layout, max_threads),
        (body, engine.wire_segment()),
        (out.as_mut_slice(), engine.segment_size()),
    );
    let opened = run_all(jobs, |(first, body, out)| {
        let mut outs = out.chunks_mut(engine.segment_size());
        for (index, wire) in (first..).zip(body.chunks(engine.wire_segment())) {
            // An empty body's one segment has no plaintext chunk.
            let dest = outs.next().unwrap_or_default();
            engine.open(index, layout.is_last(index), wire, dest)?;
        }
        Ok(())
    });
    if opened.is_err() {
        out.zeroize();
        out.clear();
    }
    opened
}

/// Cuts `input` and `output` at the same segment runs (`step` bytes per segment on each
/// side): one job per run, as (index of its first segment, its input, its output). The last
/// run takes whatever is left, so a short last segment needs no arithmetic.
fn cut<'i, 'o>(
    runs: &[Range<u64>],
    (mut input, input_step): (&'i [u8], usize),
    (mut output, output_step): (&'o mut [u8], usize),
) -> Vec<(u64, &'i [u8], &'o mut [u8])> {
    let mut jobs = Vec::with_capacity(runs.len());
    for (n, run) in runs.iter().enumerate() {
        let segments = usize::try_from(run.end - run.start).unwrap_or(usize::MAX);
        let (this_input, this_output) = if n + 1 == runs.len() {
            (std::mem::take(&mut input), std::mem::take(&mut output))
        } else {
            let at_in = segments.saturating_mul(input_step).min(input.len());
            let at_out = segments.saturating_mul(output_step).min(output.len());
            let (head_in, tail_in) = input.split_at(at_in);
            let (head_out, tail_out) = std::mem::take(&mut output).split_at_mut(at_out);
            input = tail_in;
            output = tail_out;
            (head_in, head_out)
        };
        jobs.push((run.start, this_input, this_output));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Provider;

    fn engine(provider: Provider) -> SegmentEngine {
        let cipher = provider.ops().aes256_gcm(&[5; 32]).expect("key");
        SegmentEngine::for_tests(cipher, 64)
    }

    /// The body one segment at a time on this thread: what every other path must equal.
    fn one_by_one(engine: &SegmentEngine, layout: BodyLayout, plaintext: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; layout.body_len() as usize];
        for index in 0..layout.segments() {
            let start = index as usize * 64;
            let len = layout.segment_plain_len(index) as usize;
            let wire = layout.segment_wire_offset(index) as usize;
            engine
                .seal(
                    index,
                    layout.is_last(index),
                    &plaintext[start..start + len],
                    &mut body[wire..wire + len + 16],
                )
                .expect("seal");
        }
        body
    }

    #[test]
    fn parallel_output_is_byte_identical_and_opens() {
        for provider in Provider::all() {
            let engine = engine(provider);
            // Around the parallel threshold, and with run lengths that do not divide evenly.
            for plain_len in [0u64, 1, 64 * 3, 300_001, 64 * 70_001 + 17, 5_000_000] {
                let layout = BodyLayout::for_plaintext(64, plain_len).expect("layout");
                let plaintext: Vec<u8> = (0..plain_len).map(|i| i as u8).collect();
                let expected = one_by_one(&engine, layout, &plaintext);
                for threads in [1, 2, 3] {
                    let mut body = vec![0u8; expected.len()];
                    seal_body(&engine, layout, threads, &plaintext, &mut body).expect("seal");
                    assert!(body == expected, "{} len {plain_len}", provider.name());
                    let mut opened = vec![1, 2, 3];
                    open_body(&engine, layout, threads, &body, &mut opened).expect("open");
                    assert!(opened == plaintext, "len {plain_len}");
                    if plain_len > 0 {
                        // A flip in the last run fails the whole body and leaves nothing.
                        let last = body.len() - 1;
                        body[last] ^= 1;
                        let opened_again = open_body(&engine, layout, threads, &body, &mut opened);
                        assert!(matches!(opened_again, Err(Error::DecryptionFailed)));
                        assert!(opened.is_empty());
                    }
                }
            }
        }
    }
}
