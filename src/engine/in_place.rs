//! Whole bodies in the caller's own buffer: no second buffer of the object's size.
//!
//! A separate output buffer is a third stream of memory traffic (read the input, fetch and
//! write the output), so for objects larger than the cache it costs about a third of the
//! cipher's speed. Here each segment is moved to its place in the other layout and sealed
//! or opened there while it is still in cache: one read and one write of each byte, as for
//! the raw cipher.
//!
//! Sealing moves segments towards the end (they gain a tag each and the header goes in
//! front), so it works from the last segment back; opening moves them towards the front,
//! so it works forwards. On several threads each thread takes a run of segments and its own
//! region of the buffer; the few segments at the start (sealing) or end (opening) of a run
//! whose source lies in a neighbour's region are copied aside first and processed from the
//! copy.

use std::ops::Range;

use zeroize::Zeroizing;

use super::runs::{run_all, segment_runs};
use super::SegmentEngine;
use crate::error::Result;
use crate::format::{BodyLayout, TAG_LEN};

/// One thread's share: a run of segments and the part of the buffer it owns.
struct Run<'a> {
    segments: Range<u64>,
    /// Offset of `region` in the whole buffer.
    region_start: usize,
    region: &'a mut [u8],
    /// Segments whose source lies partly in a neighbour's region, copied out beforehand.
    aside: Aside,
}

/// Consecutive segments copied out of the buffer before the runs start: the first ones of
/// a run when sealing, the last ones when opening.
struct Aside {
    first: u64,
    copies: Vec<Zeroizing<Vec<u8>>>,
}

impl Aside {
    /// The copy of segment `index`, if it was set aside (constant time per segment: a run
    /// of small segments can have thousands of them).
    fn get(&self, index: u64) -> Option<&[u8]> {
        let at = usize::try_from(index.checked_sub(self.first)?).ok()?;
        self.copies.get(at).map(|copy| copy.as_slice())
    }
}

/// Where segment `index`'s plaintext and wire bytes lie when the body follows a header of
/// `header_len` bytes: (plaintext offset, wire offset, plaintext length). Every value fits:
/// the caller's buffer already holds the whole envelope.
fn places(
    engine: &SegmentEngine,
    layout: BodyLayout,
    header_len: usize,
    index: u64,
) -> (usize, usize, usize) {
    let i = index as usize;
    (
        i * engine.segment_size(),
        header_len + i * engine.wire_segment(),
        layout.segment_plain_len(index) as usize,
    )
}

/// `buf` is `header_len` + the layout's body length, with the plaintext at its start;
/// afterwards the body is at `buf[header_len..]` (the header bytes are the caller's to
/// write).
pub(crate) fn seal_in_place(
    engine: &SegmentEngine,
    layout: BodyLayout,
    max_threads: usize,
    buf: &mut [u8],
    header_len: usize,
) -> Result<()> {
    let place = |j| places(engine, layout, header_len, j);
    let runs = segment_runs(layout, max_threads);
    // Run k (k > 0) owns the buffer from where its first segment's wire bytes go; its
    // segments whose plaintext starts below that are copied aside.
    let cuts: Vec<usize> = runs.iter().skip(1).map(|run| place(run.start).1).collect();
    let asides = runs
        .iter()
        .enumerate()
        .map(|(k, run)| {
            let below = k
                .checked_sub(1)
                .and_then(|c| cuts.get(c))
                .copied()
                .unwrap_or(0);
            let copies = run
                .clone()
                .take_while(|&j| place(j).0 < below)
                .map(|j| {
                    let (plain, _, len) = place(j);
                    Zeroizing::new(buf[plain..plain + len].to_vec())
                })
                .collect();
            Aside {
                first: run.start,
                copies,
            }
        })
        .collect();
    run_all(split_runs(buf, &cuts, runs, asides), |run| {
        let Run {
            segments,
            region_start,
            region,
            aside,
        } = run;
        // Backwards: each segment moves towards the end, over bytes already moved.
        for j in segments.rev() {
            let (plain, wire, len) = place(j);
            let dest = wire - region_start;
            let segment = &mut region[dest..dest + len + TAG_LEN];
            match aside.get(j) {
                Some(plaintext) => engine.seal(j, layout.is_last(j), plaintext, segment)?,
                None => {
                    let source = plain - region_start;
                    region.copy_within(source..source + len, dest);
                    engine.seal_in_place(
                        j,
                        layout.is_last(j),
                        &mut region[dest..dest + len + TAG_LEN],
                    )?;
                }
            }
        }
        Ok(())
    })
}

/// `buf` is `header_len` + the layout's body length; afterwards the plaintext is at its
/// start (the caller truncates). On failure the caller wipes `buf`.
pub(crate) fn open_in_place(
    engine: &SegmentEngine,
    layout: BodyLayout,
    max_threads: usize,
    buf: &mut [u8],
    header_len: usize,
) -> Result<()> {
    let place = |j| places(engine, layout, header_len, j);
    let runs = segment_runs(layout, max_threads);
    // Run k (k > 0) owns the buffer from where its first segment's plaintext goes; a run's
    // segments whose wire bytes end past its region are copied aside.
    let cuts: Vec<usize> = runs.iter().skip(1).map(|run| place(run.start).0).collect();
    let asides = runs
        .iter()
        .enumerate()
        .map(|(k, run)| {
            let limit = cuts.get(k).copied().unwrap_or(usize::MAX);
            let first = run
                .clone()
                .rev()
                .take_while(|&j| {
                    let (_, wire, len) = place(j);
                    wire + len + TAG_LEN > limit
                })
                .last()
                .unwrap_or(run.end);
            let copies = (first..run.end)
                .map(|j| {
                    let (_, wire, len) = place(j);
                    Zeroizing::new(buf[wire..wire + len + TAG_LEN].to_vec())
                })
                .collect();
            Aside { first, copies }
        })
        .collect();
    run_all(split_runs(buf, &cuts, runs, asides), |run| {
        let Run {
            segments,
            region_start,
            region,
            aside,
        } = run;
        // Forwards: each segment moves towards the front, over bytes already moved.
        for j in segments {
            let (plain, wire, len) = place(j);
            let dest = plain - region_start;
            match aside.get(j) {
                Some(wire_bytes) => {
                    engine.open(
                        j,
                        layout.is_last(j),
                        wire_bytes,
                        &mut region[dest..dest + len],
                    )?;
                }
                None => {
                    let source = wire - region_start;
                    let window = &mut region[dest..source + len + TAG_LEN];
                    engine.open_within(j, layout.is_last(j), window, source - dest)?;
                }
            }
        }
        Ok(())
    })
}

/// Cuts `buf` at `cuts` (ascending, each within `buf`): one run per region.
fn split_runs<'a>(
    mut buf: &'a mut [u8],
    cuts: &[usize],
    runs: Vec<Range<u64>>,
    asides: Vec<Aside>,
) -> Vec<Run<'a>> {
    let mut out = Vec::with_capacity(runs.len());
    let mut start = 0;
    let ends = cuts.iter().copied().map(Some).chain(std::iter::once(None));
    for ((segments, aside), end) in runs.into_iter().zip(asides).zip(ends) {
        let region = match end {
            Some(cut) => {
                let (head, tail) = std::mem::take(&mut buf).split_at_mut(cut - start);
                buf = tail;
                head
            }
            None => std::mem::take(&mut buf),
        };
        out.push(Run {
            segments,
            region_start: start,
            region,
            aside,
        });
        start = end.unwrap_or(start);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Provider;
    use crate::engine::body::{open_body, seal_body};
    use crate::error::Error;

    fn engine(provider: Provider, segment: usize) -> SegmentEngine {
        let cipher = provider.ops().aes256_gcm(&[8; 32]).expect("key");
        SegmentEngine::for_tests(cipher, segment)
    }

    #[test]
    fn byte_identical_to_a_separate_buffer_on_one_and_several_threads() {
        const HEADER: usize = 301;
        for provider in Provider::all() {
            // Small segments over 4 MiB put thousands of segments aside per run.
            for (segment, len) in [
                (64u32, 0u64),
                (64, 1),
                (64, 64),
                (64, 1000),
                (64, 5_000_000),
                (65_536, 5_000_000),
                (65_536, 4 * 65_536 * 16 + 1),
                (1 << 20, 9 << 20),
            ] {
                let engine = engine(provider, segment as usize);
                let layout = BodyLayout::for_plaintext(segment, len).expect("layout");
                let plaintext: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
                for threads in [1, 2, 3] {
                    let body_len = layout.body_len() as usize;
                    let mut expected = vec![0u8; body_len];
                    seal_body(&engine, layout, threads, &plaintext, &mut expected).expect("seal");

                    let mut buf = plaintext.clone();
                    buf.resize(HEADER + body_len, 0);
                    seal_in_place(&engine, layout, threads, &mut buf, HEADER)
                        .expect("seal in place");
                    assert!(
                        buf[HEADER..] == expected[..],
                        "seal {segment}/{len}/{threads}"
                    );

                    open_in_place(&engine, layout, threads, &mut buf, HEADER)
                        .expect("open in place");
                    assert!(
                        buf[..len as usize] == plaintext[..],
                        "open {segment}/{len}/{threads}"
                    );

                    let mut opened = Vec::new();
                    open_body(&engine, layout, threads, &expected, &mut opened).expect("open");
                    assert!(opened == plaintext);
                }
            }
        }
    }

    #[test]
    fn any_flip_fails_in_every_run() {
        let engine = engine(Provider::default(), 64);
        let layout = BodyLayout::for_plaintext(64, 5_000_000).expect("layout");
        let body_len = layout.body_len() as usize;
        let mut body = vec![0u8; body_len];
        seal_body(&engine, layout, 2, &[5u8; 5_000_000], &mut body).expect("seal");
        // First byte, middle (a run boundary on two threads), around the middle, last.
        for at in [
            0,
            body_len / 2 - 1,
            body_len / 2,
            body_len / 2 + 80,
            body_len - 1,
        ] {
            for threads in [1, 2] {
                let mut buf = vec![0u8; 7];
                buf.extend_from_slice(&body);
                buf[7 + at] ^= 1;
                assert!(matches!(
                    open_in_place(&engine, layout, threads, &mut buf, 7),
                    Err(Error::DecryptionFailed)
                ));
            }
        }
    }
}
