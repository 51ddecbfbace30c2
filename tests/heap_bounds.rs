//! No input makes the library allocate more than the bytes present plus a constant.
//!
//! dhat is this test binary's allocator, so every allocation is counted, and the peak heap
//! of each operation is compared with the size of its input. The inputs are hostile: a
//! header that claims 64 MiB segments over a few bytes of body, a maximal header, cuts,
//! flips and garbage. Before the streaming readers grew their buffers with what arrived,
//! the first of these made each of them allocate 64 MiB for a 500-byte input.
//!
//! One `#[test]` only: dhat counts every thread's allocations, so nothing else may run in
//! this binary at the same time.

mod support;
use std::io::{Cursor, Read};
use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::format::{Header, MAGIC};
use cmk_envelope::format::{KeySlot, WrapAlgorithm};
use cmk_envelope::{Envelope, KeyWrapper};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// What any operation may allocate whatever its input: runtime bookkeeping, an RSA
/// unwrap, a header's slots, a first wire buffer of one default segment, a thread.
const CONSTANT: u64 = 512 << 10;

/// In memory, the input is already allocated (by the caller) and the output is at most
/// its size.
const IN_MEMORY_FACTOR: u64 = 1;

/// A stream reader holds at most its wire buffer and the plaintext of one segment. The
/// wire buffer doubles as bytes arrive, so it is at most twice what arrived, and while it
/// grows the old and new allocations coexist: three times, plus the plaintext.
const STREAM_FACTOR: u64 = 4;

struct Input {
    name: &'static str,
    bytes: Vec<u8>,
}

fn inputs(envelope: &Envelope, rt: &tokio::runtime::Runtime) -> Vec<Input> {
    let seal = |plaintext: &[u8]| rt.block_on(envelope.seal(plaintext, b"aad")).expect("seal");
    let huge_segments = seal(&[7u8; 100]);
    let header_len = Header::parse_prefix(&huge_segments).expect("header").1;

    let mut flipped = huge_segments.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 1;
    }
    let cut = huge_segments[..header_len + 10].to_vec();

    // Eight slots of the longest kid and wrapped key the format allows.
    let (header, _) = Header::parse_prefix(&huge_segments).expect("header");
    let slot = KeySlot::new(
        "k".repeat(1024),
        WrapAlgorithm::RsaOaepSha256,
        vec![9; 1024],
    )
    .expect("slot");
    let maximal = header.with_slots(vec![slot; 8]).expect("eight slots");
    let mut maximal_header = maximal.to_bytes();
    maximal_header.extend_from_slice(&huge_segments[header_len..]);

    // A body of 3 MiB in one partial 64 MiB segment, its tag broken.
    let mut big_partial = seal(&vec![3u8; 3 << 20]);
    if let Some(last) = big_partial.last_mut() {
        *last ^= 1;
    }

    let mut garbage = MAGIC.to_vec();
    garbage.extend((0..65_536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));

    vec![
        Input {
            name: "64 MiB segments, 100-byte body",
            bytes: huge_segments,
        },
        Input {
            name: "the same, last tag flipped",
            bytes: flipped,
        },
        Input {
            name: "the same, cut 10 bytes into the body",
            bytes: cut,
        },
        Input {
            name: "eight maximal slots",
            bytes: maximal_header,
        },
        Input {
            name: "3 MiB in one 64 MiB segment, tag flipped",
            bytes: big_partial,
        },
        Input {
            name: "magic then 64 KiB of garbage",
            bytes: garbage,
        },
    ]
}

/// The most bytes live at once while `operation` runs, not counting what was allocated
/// before it started.
fn peak_heap(operation: impl FnOnce()) -> u64 {
    let profiler = dhat::Profiler::builder().testing().build();
    operation();
    let stats = dhat::HeapStats::get();
    drop(profiler);
    stats.max_bytes as u64
}

/// Reads everything through a small buffer, as a caller streaming to a socket would.
fn drain(mut reader: impl Read) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk) {
        if n == 0 {
            break;
        }
    }
}

#[test]
fn peak_heap_stays_within_the_bytes_present_plus_a_constant() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let keys = support::temp_keyring(Provider::default());
    let envelope = Envelope::builder()
        .seal_with(Arc::clone(&keys.key) as Arc<dyn KeyWrapper>)
        .segment_size(1 << 26)
        .max_threads(2)
        .build()
        .expect("envelope");
    let inputs = inputs(&envelope, &rt);

    // Warm up what is allocated once per process (thread pools, lazy tables), so that it
    // is not charged to the first measurement.
    for input in &inputs {
        let _ = rt.block_on(envelope.open(&input.bytes, b"aad"));
        if let Ok(mut reader) = rt.block_on(envelope.open_reader(input.bytes.as_slice(), b"aad")) {
            let _ = reader.copy_to(std::io::sink());
        }
    }

    let mut failures = Vec::new();
    let mut check = |input: &Input, operation: &str, factor: u64, peak: u64| {
        let present = input.bytes.len() as u64;
        let bound = factor * present + CONSTANT;
        println!(
            "{:<44} {:<22} present {:>8}  peak {:>8}  bound {:>9}",
            input.name, operation, present, peak, bound
        );
        if peak > bound {
            failures.push(format!(
                "{}: {operation} allocated {peak} bytes for {present} present",
                input.name
            ));
        }
    };

    for input in &inputs {
        let bytes = &input.bytes;
        let peak = peak_heap(|| {
            let _ = cmk_envelope::inspect::inspect(bytes);
        });
        check(input, "inspect", IN_MEMORY_FACTOR, peak);

        let peak = peak_heap(|| {
            let _ = cmk_envelope::inspect::inspect_stream(bytes.as_slice());
        });
        check(input, "inspect_stream", STREAM_FACTOR, peak);

        let peak = peak_heap(|| {
            let _ = rt.block_on(envelope.open(bytes, b"aad"));
        });
        check(input, "open", IN_MEMORY_FACTOR, peak);

        let peak = peak_heap(|| {
            let mut buffer = Vec::with_capacity(bytes.len());
            buffer.extend_from_slice(bytes);
            let _ = rt.block_on(envelope.open_in_place(&mut buffer, b"aad"));
        });
        // The buffer is the input, copied inside the measurement.
        check(input, "open_in_place", IN_MEMORY_FACTOR + 1, peak);

        let peak = peak_heap(|| {
            if let Ok(reader) = rt.block_on(envelope.open_reader(bytes.as_slice(), b"aad")) {
                drain(reader);
            }
        });
        check(input, "open_reader read", STREAM_FACTOR, peak);

        let peak = peak_heap(|| {
            if let Ok(mut reader) = rt.block_on(envelope.open_reader(bytes.as_slice(), b"aad")) {
                let _ = reader.copy_to(std::io::sink());
            }
        });
        check(input, "open_reader copy_to", STREAM_FACTOR, peak);

        let peak = peak_heap(|| {
            let _ = rt.block_on(envelope.open_range(Cursor::new(bytes), b"aad", 0..1));
        });
        check(input, "open_range 0..1", STREAM_FACTOR, peak);

        #[cfg(feature = "tokio")]
        {
            let peak = peak_heap(|| {
                rt.block_on(async {
                    if let Ok(mut reader) =
                        envelope.open_async_reader(bytes.as_slice(), b"aad").await
                    {
                        let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
                    }
                });
            });
            check(input, "open_async_reader", STREAM_FACTOR, peak);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
