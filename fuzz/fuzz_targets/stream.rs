//! The streaming reader, fed through a reader whose chunk sizes (and `Interrupted`s) come
//! from the input: it agrees with the in-memory open and releases only verified plaintext.
#![no_main]

use std::io::{self, Read};

use cmk_envelope_fuzz::{block_on, Case, Taker};
use libfuzzer_sys::fuzz_target;

/// Hands out the bytes in chunks whose sizes come from `sizes`; size 0 means `Interrupted`.
struct Chunked<'a> {
    bytes: &'a [u8],
    sizes: Taker<'a>,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = match self.sizes.0.is_empty() {
            true => buf.len(),
            false => usize::from(self.sizes.u16()),
        };
        if size == 0 {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = size.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    // The first 64 bytes shape the reads; the rest is the case.
    let (sizes, rest) = data.split_at(data.len().min(64));
    let case = Case::from_fuzz(rest);
    let expected = case.open_in_memory();
    let source = Chunked {
        bytes: &case.sealed,
        sizes: Taker(sizes),
    };
    let mut out = Vec::new();
    let streamed = match block_on(case.envelope.open_reader(source, &case.aad)) {
        Ok(mut reader) => {
            if sizes.first().is_some_and(|b| b % 2 == 0) {
                reader.read_to_end(&mut out).map(|_| ())
            } else {
                reader.copy_to(&mut out).map(|_| ())
            }
        }
        Err(_) => Err(io::ErrorKind::InvalidData.into()),
    };
    match &expected {
        Some(plaintext) => {
            assert!(streamed.is_ok(), "the stream failed where open succeeded");
            assert!(out == *plaintext);
        }
        None => {
            assert!(streamed.is_err(), "the stream succeeded where open failed");
        }
    }
    // Whatever was released is a prefix of what was sealed.
    if !case.plaintext.is_empty() {
        assert!(
            case.plaintext.starts_with(&out),
            "released bytes that were never sealed"
        );
    }
});
