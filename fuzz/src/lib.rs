//! Helpers shared by the fuzz targets: a key wrapper with no security, so the fuzzer gets
//! past the key slots to the segment code, and a way to turn fuzz bytes into a valid
//! envelope plus edits.
#![forbid(unsafe_code)]

pub mod branch;

use std::sync::Arc;

use cmk_envelope::format::{KeySlot, WrapAlgorithm};
use cmk_envelope::{
    async_trait, DataKey, Envelope, Error, KeyFacts, KeyWrapper, ProtectionLevel, Result,
    SlotContext, Unwrapped,
};

/// The only kid [`InsecureCleartextWrapper`] answers to.
pub const CLEARTEXT_KID: &str = "fuzz:cleartext";

/// **Provides no security.** "Wraps" a data key by storing it in the clear, so that fuzz
/// inputs can carry working keys. For fuzzing only: never use it anywhere else.
pub struct InsecureCleartextWrapper;

#[async_trait]
impl KeyWrapper for InsecureCleartextWrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(CLEARTEXT_KID.to_owned())
    }

    async fn wrap_key(&self, data_key: &DataKey, _: SlotContext<'_>) -> Result<KeySlot> {
        Ok(KeySlot::new(
            CLEARTEXT_KID.to_owned(),
            WrapAlgorithm::RsaOaepSha256,
            data_key.expose_secret().to_vec(),
        )?)
    }

    async fn unwrap_key(&self, slot: &KeySlot, _: SlotContext<'_>) -> Result<Unwrapped> {
        if slot.kid() != CLEARTEXT_KID {
            return Ok(Unwrapped::NotMine);
        }
        DataKey::from_slice(slot.wrapped())
            .map(Unwrapped::Key)
            .ok_or(Error::DecryptionFailed)
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Software, "fuzz")
    }
}

/// An envelope that seals and opens with [`InsecureCleartextWrapper`].
pub fn envelope(segment_size: u32, threads: usize) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::new(InsecureCleartextWrapper))
        .segment_size(segment_size)
        .max_threads(threads)
        .build()
        .unwrap_or_else(|e| panic!("segment size {segment_size} is valid: {e}"))
}

/// Runs a future that never waits on anything (the cleartext wrapper is synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// Takes values off the front of the fuzz input; zeros once it runs out.
pub struct Taker<'a>(pub &'a [u8]);

impl<'a> Taker<'a> {
    pub fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }
}

/// A valid envelope built from fuzz bytes, then edited by them: the fuzzer explores the
/// body and header code with a working key instead of stopping at the first tag.
pub struct Case {
    pub envelope: Envelope,
    pub plaintext: Vec<u8>,
    pub aad: Vec<u8>,
    pub sealed: Vec<u8>,
    /// Whether any edit changed the sealed bytes (if not, opening must succeed).
    pub edited: bool,
}

impl Case {
    /// First byte even: `data` is taken as a whole envelope. Odd: a plaintext, associated
    /// data and segment size are taken from `data`, sealed, and the rest of `data` is a
    /// list of edits (flip, truncate, insert, copy a range).
    pub fn from_fuzz(data: &[u8]) -> Case {
        let mut t = Taker(data);
        let mode = t.byte();
        let segment_size = 64 + u32::from(t.byte() % 4) * 64;
        let threads = 1 + usize::from(t.byte() % 2);
        let envelope = envelope(segment_size, threads);
        if mode % 2 == 0 {
            let aad_len = usize::from(t.byte() % 8);
            let aad = t.bytes(aad_len).to_vec();
            return Case {
                envelope,
                plaintext: Vec::new(),
                aad,
                sealed: t.rest().to_vec(),
                edited: true,
            };
        }
        let plain_len = usize::from(t.u16() % 2048);
        let plaintext = t.bytes(plain_len).to_vec();
        let aad_len = usize::from(t.byte() % 8);
        let aad = t.bytes(aad_len).to_vec();
        let mut sealed = block_on(envelope.seal(&plaintext, &aad))
            .unwrap_or_else(|e| panic!("sealing {plain_len} bytes failed: {e}"));
        let original = sealed.clone();
        while !t.0.is_empty() && !sealed.is_empty() {
            let op = t.byte();
            let at = usize::from(t.u16()) % sealed.len();
            match op % 4 {
                0 => sealed[at] ^= t.byte() | 1,
                1 => sealed.truncate(at),
                2 => sealed.insert(at, t.byte()),
                _ => {
                    let len = usize::from(t.u16()) % 256;
                    let to = usize::from(t.u16()) % sealed.len();
                    let chunk: Vec<u8> = sealed[at..(at + len).min(sealed.len())].to_vec();
                    let end = (to + chunk.len()).min(sealed.len());
                    sealed[to..end].copy_from_slice(&chunk[..end - to]);
                }
            }
        }
        let edited = sealed != original;
        Case {
            envelope,
            plaintext,
            aad,
            sealed,
            edited,
        }
    }

    /// Opens in memory, and checks what must hold whatever the bytes: an unedited envelope
    /// opens to its plaintext; an edited one either fails or opens to the original
    /// plaintext (an edit that restores a byte, say).
    pub fn open_in_memory(&self) -> Option<Vec<u8>> {
        match block_on(self.envelope.open(&self.sealed, &self.aad)) {
            Ok(opened) => {
                if !self.plaintext.is_empty() || !self.edited {
                    assert!(
                        opened.plaintext() == self.plaintext.as_slice(),
                        "opened to something that was never sealed"
                    );
                }
                Some(opened.plaintext().to_vec())
            }
            Err(e) => {
                assert!(self.edited, "an unedited envelope failed to open: {e}");
                None
            }
        }
    }
}
