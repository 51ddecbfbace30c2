//! The pipeline against one segment at a time: byte-identical output, and failures that stop
//! every later batch.

use super::*;
use crate::crypto::Provider;
use crate::format::TAG_LEN;

const SEGMENT: usize = 64;

fn engine(provider: Provider) -> SegmentEngine {
    let cipher = provider.ops().aes256_gcm(&[3; 32]).expect("key");
    SegmentEngine::for_tests(cipher, SEGMENT)
}

/// The body one segment at a time, as `SealWriter::write` + `finish` make it.
fn sequential_body(engine: &SegmentEngine, plaintext: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut sealed = Vec::new();
    let segments: Vec<&[u8]> = if plaintext.is_empty() {
        vec![&[]]
    } else {
        plaintext.chunks(SEGMENT).collect()
    };
    for (index, segment) in segments.iter().enumerate() {
        let last = index + 1 == segments.len();
        engine
            .seal_to_vec(index as u64, last, segment, &mut sealed)
            .expect("seal");
        body.extend_from_slice(&sealed);
    }
    body
}

/// What `SealWriter::copy_from` + `finish` make, on `threads` threads.
fn pipelined_body(engine: &SegmentEngine, plaintext: &[u8], threads: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let finished = run(Direction::Seal, engine, 0, threads, plaintext, &mut body).expect("run");
    let mut sealed = Vec::new();
    engine
        .seal_to_vec(finished.next_index, true, &finished.tail, &mut sealed)
        .expect("last");
    body.extend_from_slice(&sealed);
    body
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

#[test]
fn byte_identical_to_one_segment_at_a_time_around_batch_boundaries() {
    let batch = BATCH_BYTES / (SEGMENT + TAG_LEN) * SEGMENT;
    for provider in Provider::all() {
        let engine = engine(provider);
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            batch - 1,
            batch,
            batch + 1,
            batch + SEGMENT,
            3 * batch + 5,
        ] {
            let plaintext = data(len);
            let expected = sequential_body(&engine, &plaintext);
            for threads in [1, 2, 3] {
                let body = pipelined_body(&engine, &plaintext, threads);
                assert!(body == expected, "seal len {len} threads {threads}");
                let mut opened = Vec::new();
                let finished = run(
                    Direction::Open,
                    &engine,
                    0,
                    threads,
                    body.as_slice(),
                    &mut opened,
                )
                .expect("open");
                assert!(opened == plaintext, "open len {len} threads {threads}");
                assert_eq!(finished.written, len as u64);
            }
        }
    }
}

#[test]
fn a_bad_batch_stops_every_later_batch() {
    let engine = engine(Provider::default());
    let batch_wire = BATCH_BYTES / (SEGMENT + TAG_LEN) * (SEGMENT + TAG_LEN);
    let plaintext = data(4 * BATCH_BYTES);
    let body = sequential_body(&engine, &plaintext);
    for threads in [1, 2] {
        // A flip in the second batch.
        let mut tampered = body.clone();
        tampered[batch_wire + 5] ^= 1;
        let mut opened = Vec::new();
        let result = run(
            Direction::Open,
            &engine,
            0,
            threads,
            tampered.as_slice(),
            &mut opened,
        );
        assert!(matches!(result, Err(Error::DecryptionFailed)));
        let first_batch = BATCH_BYTES / (SEGMENT + TAG_LEN) * SEGMENT;
        // Nothing of the bad batch or after it; on two threads the first batch may
        // not have had its turn yet when the second failed.
        assert!(opened.len() <= first_batch, "threads {threads}");
        assert!(opened == plaintext[..opened.len()]);
        if threads == 1 {
            assert_eq!(opened.len(), first_batch);
        }
        // Cut at a segment boundary: the new last segment lacks the last flag.
        let cut = &body[..body.len() - (SEGMENT + TAG_LEN)];
        let result = run(Direction::Open, &engine, 0, threads, cut, Vec::new());
        assert!(matches!(result, Err(Error::DecryptionFailed)));
        // An empty body is not an object.
        let result = run(Direction::Open, &engine, 0, threads, &[][..], Vec::new());
        assert!(matches!(
            result,
            Err(Error::Malformed(Malformed::BodyMissing))
        ));
    }
}
