//! The std::io adapters and range reads: interchangeable with in-memory envelopes, robust
//! to awkward readers and failing writers, strict about truncation and reordering.

use crate::support;
use std::io::{self, Cursor, Read, Write};
use support::data;

use cmk_envelope::crypto::Provider;
use cmk_envelope::stream::into_cmk_error;
use cmk_envelope::{Envelope, Error};

const S: usize = 64;

fn sizes(s: usize) -> Vec<usize> {
    vec![0, 1, s - 1, s, s + 1, 2 * s, 3 * s, 3 * s + 1]
}

async fn stream_seal(e: &Envelope, plain: &[u8], aad: &[u8], chunk: usize) -> Vec<u8> {
    let mut w = e.seal_writer(Vec::new(), aad).await.expect("writer");
    for part in plain.chunks(chunk.max(1)) {
        w.write_all(part).expect("write");
    }
    w.finish().expect("finish")
}

async fn stream_open(e: &Envelope, sealed: impl Read, aad: &[u8]) -> io::Result<Vec<u8>> {
    let mut r = e
        .open_reader(sealed, aad)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[tokio::test]
async fn streaming_and_in_memory_are_interchangeable() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        for threads in [1, usize::MAX] {
            let e = support::envelope_with_threads(&t.key, provider, S as u32, threads);
            for n in sizes(S) {
                let plain = data(n);
                for chunk in [1, 7, S, 1000] {
                    let streamed = stream_seal(&e, &plain, b"a", chunk).await;
                    assert_eq!(
                        e.open(&streamed, b"a").await.expect("open").plaintext(),
                        plain.as_slice()
                    );
                    assert_eq!(
                        streamed.len(),
                        e.seal(&plain, b"a").await.expect("seal").len()
                    );
                }
                let in_memory = e.seal(&plain, b"a").await.expect("seal");
                assert_eq!(
                    stream_open(&e, Cursor::new(&in_memory), b"a")
                        .await
                        .expect("stream"),
                    plain
                );
            }
        }
    }
}

#[tokio::test]
async fn largest_segment_size() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let e = support::envelope_for(&t.key, provider, 1 << 26);
    let plain = data((1 << 26) + 1);
    let sealed = stream_seal(&e, &plain, b"", 1 << 20).await;
    assert_eq!(
        cmk_envelope::inspect::inspect(&sealed)
            .expect("inspect")
            .body
            .expect("body")
            .segments,
        2
    );
    assert!(
        stream_open(&e, Cursor::new(&sealed), b"")
            .await
            .expect("open")
            == plain
    );
}

/// A reader that hands out at most `max` bytes per call and says `Interrupted` every
/// third call.
struct Awkward<R> {
    inner: R,
    max: usize,
    calls: usize,
}

impl<R: Read> Read for Awkward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls % 3 == 0 {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "try again"));
        }
        let n = buf.len().min(self.max);
        self.inner.read(&mut buf[..n])
    }
}

/// A reader that fails after `good` bytes.
struct FailsAfter<R> {
    inner: R,
    good: usize,
}

impl<R: Read> Read for FailsAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.good == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "source went away",
            ));
        }
        let n = buf.len().min(self.good);
        let n = self.inner.read(&mut buf[..n])?;
        self.good -= n;
        Ok(n)
    }
}

#[tokio::test]
async fn short_reads_interruptions_and_failing_sources() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    // One thread: streams work a segment at a time, so release is per segment.
    let e = support::envelope_with_threads(&t.key, provider, S as u32, 1);
    let plain = data(5 * S + 9);
    let sealed = e.seal(&plain, b"").await.expect("seal");
    for max in [1, 3, 17, S + 16, 4096] {
        let got = stream_open(
            &e,
            Awkward {
                inner: Cursor::new(&sealed),
                max,
                calls: 0,
            },
            b"",
        )
        .await
        .expect("awkward reader");
        assert_eq!(got, plain, "max {max}");
    }
    // The source fails inside the body: an error, and only verified whole segments came out.
    let header_len = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    let mut r = e
        .open_reader(
            FailsAfter {
                inner: Cursor::new(&sealed),
                good: header_len + 2 * (S + 16) + 5,
            },
            b"",
        )
        .await
        .expect("header reads");
    let mut out = Vec::new();
    let err = r.read_to_end(&mut out).expect_err("source failed");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    // Two whole segments arrived, each followed by more bytes: both verified as not last.
    assert_eq!(out, plain[..2 * S], "only verified segments were released");
    assert!(
        r.read(&mut [0u8; 8]).is_err(),
        "a failed reader stays failed"
    );
}

#[tokio::test]
async fn stream_reader_rejects_truncation_extension_and_reordering() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    for threads in [1, usize::MAX] {
        let e = support::envelope_with_threads(&t.key, provider, S as u32, threads);
        let plain = data(4 * S);
        let sealed = e.seal(&plain, b"").await.expect("seal");
        let h = cmk_envelope::inspect::inspect(&sealed)
            .expect("inspect")
            .header_len;
        let w = S + 16;
        let truncated_at_boundary = sealed[..h + 3 * w].to_vec();
        let truncated_inside = sealed[..sealed.len() - 1].to_vec();
        let mut extended = sealed.clone();
        extended.extend_from_slice(&sealed[h..h + w]);
        let mut swapped = sealed[..h].to_vec();
        swapped.extend_from_slice(&sealed[h + w..h + 2 * w]);
        swapped.extend_from_slice(&sealed[h..h + w]);
        swapped.extend_from_slice(&sealed[h + 2 * w..]);
        let header_only = sealed[..h].to_vec();
        for (name, bad) in [
            ("truncated at a boundary", truncated_at_boundary),
            ("truncated inside", truncated_inside),
            ("extended", extended),
            ("swapped", swapped),
            ("header only", header_only),
        ] {
            let mut r = e.open_reader(Cursor::new(bad), b"").await.expect("header");
            let mut out = Vec::new();
            let err = r.read_to_end(&mut out).expect_err(name);
            let cmk = into_cmk_error(err);
            assert!(
                matches!(cmk, Error::DecryptionFailed | Error::Malformed(_)),
                "{name}: {cmk:?}"
            );
        }
        let err = e
            .open_reader(Cursor::new(&sealed[..40]), b"")
            .await
            .expect_err("short header");
        assert!(matches!(err, Error::Malformed(_)));
    }
}

/// A sink that accepts `budget` bytes, then fails.
struct FailingSink {
    written: Vec<u8>,
    budget: usize,
}

impl Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.budget == 0 {
            return Err(io::Error::other("disk full"));
        }
        let n = buf.len().min(self.budget);
        self.written.extend_from_slice(&buf[..n]);
        self.budget -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_writer_whose_sink_fails_leaves_nothing_that_opens() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let e = support::envelope_with_threads(&t.key, provider, S as u32, 1);
    let plain = data(10 * S);
    let full = stream_seal(&e, &plain, b"", 100).await.len();
    for budget in [0, 100, 500, full - 1] {
        let sink = FailingSink {
            written: Vec::new(),
            budget,
        };
        let Ok(mut w) = e.seal_writer(sink, b"").await else {
            continue; // the header itself could not be written
        };
        let wrote = w.write_all(&plain);
        let finished = if wrote.is_ok() {
            w.finish().map(|s| s.written)
        } else {
            Err(io::Error::other("x"))
        };
        assert!(finished.is_err(), "budget {budget}");
    }
    // Whatever reached the sink before it failed does not open.
    let sink = FailingSink {
        written: Vec::new(),
        budget: full - 1,
    };
    let mut w = e.seal_writer(sink, b"").await.expect("header fits");
    let _ = w.write_all(&plain);
    let partial = w.get_ref().written.clone();
    assert!(e.open(&partial, b"").await.is_err());
    // And an unfinished writer (dropped without finish) leaves nothing that opens either.
    let mut w = e.seal_writer(Vec::new(), b"").await.expect("writer");
    w.write_all(&plain).expect("write");
    let unfinished = w.get_ref().clone();
    drop(w);
    assert!(e.open(&unfinished, b"").await.is_err());
}

#[tokio::test]
async fn range_reads_match_in_memory_at_every_boundary() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        let e = support::envelope_for(&t.key, provider, S as u32);
        let plain = data(4 * S + 10);
        let sealed = e.seal(&plain, b"r").await.expect("seal");
        let len = plain.len() as u64;
        let mut points: Vec<u64> = (0..=4)
            .flat_map(|i| {
                let b = (i * S) as u64;
                [b.saturating_sub(1), b, b + 1]
            })
            .collect();
        points.extend([len - 1, len]);
        points.retain(|p| *p <= len);
        for &a in &points {
            for &b in &points {
                if a > b {
                    continue;
                }
                let got = e
                    .open_range(Cursor::new(&sealed), b"r", a..b)
                    .await
                    .expect("range");
                assert_eq!(got.plaintext(), &plain[a as usize..b as usize], "{a}..{b}");
            }
        }
        // Out of range, reversed, wrong aad, and a tampered segment inside the range.
        assert!(matches!(
            e.open_range(Cursor::new(&sealed), b"r", 0..len + 1).await,
            Err(Error::InvalidArgument(_))
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 5..4;
        assert!(matches!(
            e.open_range(Cursor::new(&sealed), b"r", reversed).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            e.open_range(Cursor::new(&sealed), b"x", 0..1).await,
            Err(Error::DecryptionFailed)
        ));
        let mut bad = sealed.clone();
        let h = cmk_envelope::inspect::inspect(&sealed)
            .expect("inspect")
            .header_len;
        bad[h + 2 * (S + 16) + 3] ^= 1;
        assert!(
            e.open_range(Cursor::new(&bad), b"r", 0..(S as u64))
                .await
                .is_ok(),
            "untouched segment"
        );
        assert!(matches!(
            e.open_range(Cursor::new(&bad), b"r", (2 * S) as u64..(2 * S + 1) as u64)
                .await,
            Err(Error::DecryptionFailed)
        ));
        // Truncating the object changes which segment is last: the range fails.
        let cut = sealed[..sealed.len() - (10 + 16)].to_vec();
        assert!(
            e.open_range(Cursor::new(&cut), b"r", 0..10).await.is_ok(),
            "earlier segments still verify"
        );
        assert!(e
            .open_range(Cursor::new(&cut), b"r", (3 * S) as u64..(4 * S) as u64)
            .await
            .is_err());
    }
}

#[tokio::test]
async fn inspecting_a_file_or_a_pipe_matches_inspecting_bytes() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let e = support::envelope_for(&t.key, provider, S as u32);
    for n in [0, 5, 3 * S] {
        let sealed = e.seal(&data(n), b"").await.expect("seal");
        let expected = cmk_envelope::inspect::inspect(&sealed).expect("inspect");
        assert_eq!(
            cmk_envelope::inspect::inspect_reader(Cursor::new(&sealed)).expect("reader"),
            expected
        );
        assert_eq!(
            cmk_envelope::inspect::inspect_stream(&sealed[..]).expect("stream"),
            expected
        );
    }
    let sealed = e.seal(&data(10), b"").await.expect("seal");
    // A body shorter than a tag has no possible segment layout.
    let h = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    assert!(cmk_envelope::inspect::inspect_stream(&sealed[..h + 15]).is_err());
    assert!(cmk_envelope::inspect::inspect_reader(Cursor::new(&sealed[..50])).is_err());
}

/// `copy_from` / `copy_to` (the multi-threaded stream path) against the in-memory path, with
/// awkward and failing sources and sinks, and mixed with plain `write` / `read`.
#[tokio::test]
async fn whole_stream_copies_on_several_threads() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        for threads in [1, 2, usize::MAX] {
            let e = support::envelope_with_threads(&t.key, provider, S as u32, threads);
            // Sizes that span several of the copy's batches (about 1 MiB each).
            for n in [0, 1, S, S + 1, 3 << 20, (3 << 20) + S + 1] {
                let plain = data(n);
                let mut w = e.seal_writer(Vec::new(), b"c").await.expect("writer");
                let source = Awkward {
                    inner: Cursor::new(&plain),
                    max: 100_000,
                    calls: 0,
                };
                assert_eq!(w.copy_from(source).expect("copy"), n as u64);
                let sealed = w.finish().expect("finish");
                assert!(e.open(&sealed, b"c").await.expect("open").plaintext() == plain);

                let in_memory = e.seal(&plain, b"c").await.expect("seal");
                let mut r = e
                    .open_reader(Cursor::new(&in_memory), b"c")
                    .await
                    .expect("reader");
                let mut out = Vec::new();
                assert_eq!(r.copy_to(&mut out).expect("copy"), n as u64);
                assert!(out == plain, "n {n} threads {threads}");
                assert_eq!(r.read(&mut [0u8; 4]).expect("at end"), 0);
            }
            // Mixed with writes and reads before and after.
            let plain = data(2 << 20);
            let mut w = e.seal_writer(Vec::new(), b"").await.expect("writer");
            w.write_all(&plain[..S + 5]).expect("write");
            w.copy_from(&plain[S + 5..plain.len() - 3]).expect("copy");
            w.write_all(&plain[plain.len() - 3..]).expect("write");
            let sealed = w.finish().expect("finish");
            let mut r = e.open_reader(sealed.as_slice(), b"").await.expect("reader");
            let mut head = vec![0u8; 2 * S + 1];
            r.read_exact(&mut head).expect("head");
            let mut rest = Vec::new();
            r.copy_to(&mut rest).expect("rest");
            head.extend_from_slice(&rest);
            assert!(head == plain);
        }
    }
}

#[tokio::test]
async fn whole_stream_copies_fail_cleanly() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let e = support::envelope_with_threads(&t.key, provider, S as u32, usize::MAX);
    let plain = data(3 << 20);
    let sealed = e.seal(&plain, b"").await.expect("seal");

    // A source that fails mid-way breaks the writer: nothing finishes, nothing opens.
    let mut w = e.seal_writer(Vec::new(), b"").await.expect("writer");
    let source = FailsAfter {
        inner: Cursor::new(&plain),
        good: 2 << 20,
    };
    let err = w.copy_from(source).expect_err("source failed");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    let partial = w.get_ref().clone();
    assert!(w.finish().is_err(), "a broken writer does not finish");
    assert!(e.open(&partial, b"").await.is_err());

    // A sink that fails mid-way: an error, and what reached it does not open.
    let sink = FailingSink {
        written: Vec::new(),
        budget: sealed.len() / 2,
    };
    let mut w = e.seal_writer(sink, b"").await.expect("writer");
    assert!(w.copy_from(plain.as_slice()).is_err());
    assert!(e.open(&w.get_ref().written, b"").await.is_err());
    assert!(w.finish().is_err());

    // Opening: a failing source, a failing sink, and a flipped byte near the end all fail,
    // and the reader releases nothing afterwards.
    let header_len = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    let failing_source = FailsAfter {
        inner: Cursor::new(&sealed),
        good: header_len + (2 << 20),
    };
    let mut r = e.open_reader(failing_source, b"").await.expect("header");
    let err = r.copy_to(io::sink()).expect_err("source failed");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    assert!(r.read(&mut [0u8; 4]).is_err());

    let mut r = e.open_reader(sealed.as_slice(), b"").await.expect("header");
    let sink = FailingSink {
        written: Vec::new(),
        budget: 1 << 20,
    };
    assert!(r.copy_to(sink).is_err());

    let mut tampered = sealed.clone();
    let near_end = tampered.len() - 100;
    tampered[near_end] ^= 0x80;
    let mut r = e
        .open_reader(tampered.as_slice(), b"")
        .await
        .expect("header");
    let mut out = Vec::new();
    let err = into_cmk_error(r.copy_to(&mut out).expect_err("tampered"));
    assert!(matches!(err, Error::DecryptionFailed), "{err:?}");
    assert!(
        out.len() < plain.len(),
        "the tampered batch was not released"
    );
    assert!(r.read(&mut [0u8; 4]).is_err());

    let truncated = &sealed[..sealed.len() - (S + 16)];
    let mut r = e.open_reader(truncated, b"").await.expect("header");
    assert!(r.copy_to(io::sink()).is_err());
}

/// A sync program (no runtime at all) seals and opens through the blocking constructors,
/// with the same bytes and checks as the async ones.
#[test]
fn the_blocking_constructors_need_no_runtime() {
    use std::io::{Read, Write};
    let t = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    let e = support::envelope_for(&t.key, cmk_envelope::crypto::Provider::default(), S as u32);
    let plain = data(10 * S + 3);
    let mut writer = e.seal_writer_blocking(Vec::new(), b"b").expect("writer");
    writer.write_all(&plain).expect("write");
    let sealed = writer.finish().expect("finish");
    let mut reader = e
        .open_reader_blocking(sealed.as_slice(), b"b")
        .expect("reader");
    let mut opened = Vec::new();
    reader.read_to_end(&mut opened).expect("read");
    assert_eq!(opened, plain);
    let range = e
        .open_range_blocking(Cursor::new(&sealed), b"b", 5..3 * S as u64)
        .expect("range");
    assert_eq!(range.plaintext(), &plain[5..3 * S]);
    assert!(matches!(
        e.open_reader_blocking(sealed.as_slice(), b"other")
            .and_then(|mut r| Ok(r.read_to_end(&mut Vec::new())?)),
        Err(Error::DecryptionFailed)
    ));
}
