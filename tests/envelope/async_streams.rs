//! tokio adapters: interchangeable with the in-memory and std::io paths, correct across
//! `Pending` (a duplex pipe with a tiny buffer), strict about truncation.
#![cfg(feature = "tokio")]

use crate::support;
use cmk_envelope::crypto::Provider;
use support::data;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_adapters_round_trip_through_a_tiny_pipe() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        let e = std::sync::Arc::new(support::envelope_for(&t.key, provider, S as u32));
        for n in [0, 1, S - 1, S, S + 1, 3 * S, 3 * S + 1, 10_000] {
            let plain = data(n);
            // Seal through a 7-byte pipe: the writer sees Pending again and again.
            let (pipe_in, mut pipe_out) = tokio::io::duplex(7);
            let writer_env = std::sync::Arc::clone(&e);
            let to_write = plain.clone();
            let writer = tokio::spawn(async move {
                let mut w = writer_env
                    .seal_async_writer(pipe_in, b"x")
                    .await
                    .expect("writer");
                for part in to_write.chunks(13) {
                    w.write_all(part).await.expect("write");
                }
                w.shutdown().await.expect("shutdown finishes the object");
            });
            let mut sealed = Vec::new();
            pipe_out
                .read_to_end(&mut sealed)
                .await
                .expect("read sealed");
            writer.await.expect("writer task");
            assert_eq!(
                e.open(&sealed, b"x").await.expect("open").plaintext(),
                plain.as_slice()
            );

            // Open through a 5-byte pipe.
            let (mut feed, pipe_read) = tokio::io::duplex(5);
            let to_feed = sealed.clone();
            let feeder = tokio::spawn(async move {
                feed.write_all(&to_feed).await.expect("feed");
                feed.shutdown().await.expect("close");
            });
            let mut r = e.open_async_reader(pipe_read, b"x").await.expect("reader");
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.expect("read");
            feeder.await.expect("feeder task");
            assert_eq!(got, plain, "{} n={n}", provider.name());
        }
    }
}

#[tokio::test]
async fn async_reader_rejects_truncation_and_unfinished_writers_do_not_open() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let e = support::envelope_for(&t.key, provider, S as u32);
    let plain = data(4 * S);
    let sealed = e.seal(&plain, b"").await.expect("seal");
    let h = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    for cut in [h, h + 80, h + 3 * 80, sealed.len() - 1] {
        let mut r = e
            .open_async_reader(&sealed[..cut], b"")
            .await
            .expect("header");
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).await.is_err(), "cut at {cut}");
        assert!(out.len() <= 3 * S, "never the whole plaintext");
    }
    // No shutdown: no last segment, nothing that opens.
    let mut w = e.seal_async_writer(Vec::new(), b"").await.expect("writer");
    w.write_all(&plain).await.expect("write");
    w.flush().await.expect("flush");
    let unfinished = w.into_inner();
    assert!(e.open(&unfinished, b"").await.is_err());
}

/// `open_async_range` over a tokio file gives what `open_range` gives for every range
/// around segment boundaries, and fails the same way on tampering, a cut object and a range
/// past the end.
#[tokio::test]
async fn async_ranges_match_the_std_ranges() {
    use cmk_envelope::Error;
    use std::io::Cursor;

    let t = support::temp_keyring(Provider::default());
    let e = support::envelope_for(&t.key, Provider::default(), S as u32);
    let plain = data(5 * S + 7);
    let sealed = e.seal(&plain, b"r").await.expect("seal");
    let path = t.dir.path().join("object.cmke");
    std::fs::write(&path, &sealed).expect("write");
    let len = plain.len() as u64;
    let points = [
        0,
        1,
        S as u64 - 1,
        S as u64,
        S as u64 + 1,
        3 * S as u64,
        len - 1,
        len,
    ];
    for &a in &points {
        for &b in points.iter().filter(|&&b| b >= a) {
            let file = tokio::fs::File::open(&path).await.expect("open");
            let got = e
                .open_async_range(file, b"r", a..b)
                .await
                .expect("async range");
            let want = e
                .open_range(Cursor::new(&sealed), b"r", a..b)
                .await
                .expect("range");
            assert_eq!(got.plaintext(), want.plaintext(), "{a}..{b}");
            assert_eq!(got.info().kid(), want.info().kid());
        }
    }
    let file = tokio::fs::File::open(&path).await.expect("open");
    assert!(matches!(
        e.open_async_range(file, b"r", 0..len + 1).await,
        Err(Error::InvalidArgument(_))
    ));
    let mut bad = sealed.clone();
    let h = cmk_envelope::inspect::inspect(&sealed)
        .expect("inspect")
        .header_len;
    bad[h + 2 * (S + 16) + 3] ^= 1;
    assert!(matches!(
        e.open_async_range(Cursor::new(bad), b"r", 2 * S as u64..2 * S as u64 + 1)
            .await,
        Err(Error::DecryptionFailed)
    ));
    // Cut at a segment boundary: the range reaching the new end finds no last segment.
    let cut = sealed[..sealed.len() - (7 + 16)].to_vec();
    assert!(matches!(
        e.open_async_range(Cursor::new(cut), b"r", 0..5 * S as u64)
            .await,
        Err(Error::DecryptionFailed)
    ));
}
