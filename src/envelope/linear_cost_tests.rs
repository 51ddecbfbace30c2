//! Opening attacker input costs work linear in its length.
//!
//! Timing is not asserted (shared machines are noisy); the work is counted instead, through
//! a provider that counts every AES-GCM byte and call, RSA decryption, HKDF call and hashed
//! byte, and a source that counts the bytes and reads asked of it. Every way of opening is
//! run on valid, tampered, cut and extended inputs of growing size with 64-byte segments
//! (the most segments per byte), and each count must stay within a fixed multiple of the
//! input's length: each byte is read once and authenticated at most once, each segment
//! costs one AEAD call, and the key is recovered once.

use std::io::{Cursor, Read};
use std::sync::Arc;

use crate::crypto::counting::{counting_instances, CountingOps, Work};
use crate::crypto::Provider;
use crate::format::{BodyLayout, Header};
use crate::software::Keyring;
use crate::{Envelope, KeyWrapper};

const SEGMENT: u64 = 64;
const WIRE_SEGMENT: u64 = SEGMENT + 16;

/// A source that counts what is asked of it.
struct CountingSource<R> {
    inner: R,
    bytes: u64,
    reads: u64,
}

impl<R: Read> Read for CountingSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(future)
}

/// What one way of opening did: the provider's work and the source's reads (zero for
/// the in-memory ways).
struct Cost {
    work: Work,
    source_bytes: u64,
    source_reads: u64,
}

fn cost_of(counting: &CountingOps, run: impl FnOnce() -> (u64, u64)) -> Cost {
    counting.take();
    let (source_bytes, source_reads) = run();
    Cost {
        work: counting.take(),
        source_bytes,
        source_reads,
    }
}

fn ways_to_open(
    envelope: &Envelope,
    bytes: &[u8],
    counting: &CountingOps,
) -> Vec<(&'static str, Cost)> {
    let mut costs = Vec::new();
    costs.push((
        "open",
        cost_of(counting, || {
            let _ = block_on(envelope.open(bytes, b""));
            (0, 0)
        }),
    ));
    costs.push((
        "open_in_place",
        cost_of(counting, || {
            let mut buffer = bytes.to_vec();
            let _ = block_on(envelope.open_in_place(&mut buffer, b""));
            (0, 0)
        }),
    ));
    costs.push((
        "open_reader read",
        cost_of(counting, || {
            let mut source = CountingSource {
                inner: bytes,
                bytes: 0,
                reads: 0,
            };
            if let Ok(mut reader) = block_on(envelope.open_reader(&mut source, b"")) {
                let mut chunk = [0u8; 100];
                while matches!(reader.read(&mut chunk), Ok(n) if n > 0) {}
            }
            (source.bytes, source.reads)
        }),
    ));
    costs.push((
        "open_reader copy_to",
        cost_of(counting, || {
            let mut source = CountingSource {
                inner: bytes,
                bytes: 0,
                reads: 0,
            };
            if let Ok(mut reader) = block_on(envelope.open_reader(&mut source, b"")) {
                let _ = reader.copy_to(std::io::sink());
            }
            (source.bytes, source.reads)
        }),
    ));
    costs.push((
        "open_range (all)",
        cost_of(counting, || {
            // The whole plaintext the body's length implies, so every segment is read.
            let plaintext_len = Header::parse_prefix(bytes)
                .ok()
                .and_then(|(_, header_len)| {
                    let body_len = (bytes.len() - header_len) as u64;
                    BodyLayout::for_ciphertext(SEGMENT as u32, body_len).ok()
                })
                .map_or(1, |layout| layout.plaintext_len());
            let _ = block_on(envelope.open_range(Cursor::new(bytes), b"", 0..plaintext_len));
            (0, 0)
        }),
    ));
    costs
}

fn cases(sealed: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut last_flipped = sealed.to_vec();
    if let Some(b) = last_flipped.last_mut() {
        *b ^= 1;
    }
    let mut first_body_byte_flipped = sealed.to_vec();
    let header_len = Header::parse_prefix(sealed).map_or(0, |(_, len)| len);
    if let Some(b) = first_body_byte_flipped.get_mut(header_len) {
        *b ^= 1;
    }
    let cut = sealed
        .get(..sealed.len() - sealed.len() / 3)
        .unwrap_or(sealed)
        .to_vec();
    let mut extended = sealed.to_vec();
    extended.extend(std::iter::repeat_n(0xa5, sealed.len() / 2));
    vec![
        ("intact", sealed.to_vec()),
        ("last byte flipped", last_flipped),
        ("early byte flipped", first_body_byte_flipped),
        ("cut by a third", cut),
        ("extended by half", extended),
    ]
}

#[test]
fn every_way_of_opening_costs_work_linear_in_the_input() {
    for counting in counting_instances() {
        let counting: &'static CountingOps = counting;
        let provider = Provider::from_ops(counting);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let keyring = Keyring::create(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .provider(provider);
        keyring.create_key("k").unwrap_or_else(|e| panic!("{e}"));
        let key = Arc::new(keyring.key("k").unwrap_or_else(|e| panic!("{e}")));
        let envelope = Envelope::builder()
            .seal_with(key as Arc<dyn KeyWrapper>)
            .provider(provider)
            .segment_size(SEGMENT as u32)
            .max_threads(2)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));

        for plain_len in [1usize << 10, 1 << 14, 1 << 18, 1 << 21] {
            let plaintext = vec![0x11u8; plain_len];
            let sealed = block_on(envelope.seal(&plaintext, b"")).unwrap_or_else(|e| panic!("{e}"));
            for (case, bytes) in cases(&sealed) {
                let n = bytes.len() as u64;
                let segments = n / WIRE_SEGMENT + 1;
                for (way, cost) in ways_to_open(&envelope, &bytes, counting) {
                    let what = format!("{} {case} {n} bytes, {way}", provider.name());
                    let w = cost.work;
                    if case == "intact" {
                        // The counters see the work (a bound over zeros would prove nothing).
                        assert!(w.aead_bytes >= plain_len as u64 / 2, "{what}: {w:?}");
                        assert_eq!(w.rsa_decryptions, 1, "{what}");
                    }
                    assert!(w.aead_bytes <= n, "{what}: {} AEAD bytes", w.aead_bytes);
                    assert!(
                        w.aead_calls <= segments,
                        "{what}: {} AEAD calls",
                        w.aead_calls
                    );
                    assert!(w.rsa_decryptions <= 1, "{what}: {} RSA", w.rsa_decryptions);
                    assert!(w.hkdf_calls <= 1, "{what}: {} HKDF", w.hkdf_calls);
                    assert!(w.sha256_bytes <= 4096, "{what}: {} hashed", w.sha256_bytes);
                    assert!(cost.source_bytes <= n, "{what}: read {}", cost.source_bytes);
                    assert!(
                        cost.source_reads <= 2 * segments + 64,
                        "{what}: {} reads",
                        cost.source_reads
                    );
                }
            }
        }
    }
}
