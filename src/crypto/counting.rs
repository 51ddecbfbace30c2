//! A provider that counts the work done through it, for tests that bound the cost of
//! opening hostile input.

use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use super::{CryptoFailure, CryptoOps, RsaPrivate, RsaPublic, SegmentCipher};
use crate::format::WrapAlgorithm;

/// Counters of what went through a [`CountingOps`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Work {
    /// Bytes encrypted or decrypted by AES-GCM (ciphertext and plaintext, not tags).
    pub(crate) aead_bytes: u64,
    /// AES-GCM seal and open calls.
    pub(crate) aead_calls: u64,
    /// RSA-OAEP decryptions.
    pub(crate) rsa_decryptions: u64,
    /// HKDF extract-and-expand calls.
    pub(crate) hkdf_calls: u64,
    /// Bytes hashed by SHA-256.
    pub(crate) sha256_bytes: u64,
}

/// Wraps a real provider and counts.
pub(crate) struct CountingOps {
    inner: &'static dyn CryptoOps,
    aead_bytes: AtomicU64,
    aead_calls: AtomicU64,
    rsa_decryptions: AtomicU64,
    hkdf_calls: AtomicU64,
    sha256_bytes: AtomicU64,
}

impl CountingOps {
    pub(crate) const fn new(inner: &'static dyn CryptoOps) -> Self {
        Self {
            inner,
            aead_bytes: AtomicU64::new(0),
            aead_calls: AtomicU64::new(0),
            rsa_decryptions: AtomicU64::new(0),
            hkdf_calls: AtomicU64::new(0),
            sha256_bytes: AtomicU64::new(0),
        }
    }

    /// The work counted since the last call, resetting the counters.
    pub(crate) fn take(&self) -> Work {
        Work {
            aead_bytes: self.aead_bytes.swap(0, Ordering::SeqCst),
            aead_calls: self.aead_calls.swap(0, Ordering::SeqCst),
            rsa_decryptions: self.rsa_decryptions.swap(0, Ordering::SeqCst),
            hkdf_calls: self.hkdf_calls.swap(0, Ordering::SeqCst),
            sha256_bytes: self.sha256_bytes.swap(0, Ordering::SeqCst),
        }
    }

    fn aead(&'static self, bytes: usize) {
        self.aead_calls.fetch_add(1, Ordering::SeqCst);
        self.aead_bytes.fetch_add(bytes as u64, Ordering::SeqCst);
    }
}

impl CryptoOps for CountingOps {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CryptoFailure> {
        self.inner.fill_random(out)
    }
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        self.sha256_bytes
            .fetch_add(data.len() as u64, Ordering::SeqCst);
        self.inner.sha256(data)
    }
    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        expansions: &mut [(&[u8], &mut [u8])],
    ) -> Result<(), CryptoFailure> {
        self.hkdf_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.hkdf_sha256(salt, ikm, expansions)
    }
    fn aes256_gcm(&self, key: &[u8; 32]) -> Result<Box<dyn SegmentCipher>, CryptoFailure> {
        // Counting needs `'static` counters; every CountingOps in use is a static.
        let counters: &'static CountingOps = static_self(self)?;
        Ok(Box::new(CountingCipher {
            inner: self.inner.aes256_gcm(key)?,
            counters,
        }))
    }
    fn rsa_private_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivate>, CryptoFailure> {
        let counters: &'static CountingOps = static_self(self)?;
        Ok(Box::new(CountingRsa {
            inner: self.inner.rsa_private_from_pkcs8(der)?,
            counters,
        }))
    }
    fn generate_rsa_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        self.inner.generate_rsa_pkcs8(bits)
    }
    fn rsa_public_from_components(
        &self,
        modulus: &[u8],
        exponent: &[u8],
    ) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        self.inner.rsa_public_from_components(modulus, exponent)
    }
}

/// The registered static that `ops` is.
fn static_self(ops: &CountingOps) -> Result<&'static CountingOps, CryptoFailure> {
    COUNTING_INSTANCES
        .iter()
        .copied()
        .find(|c| std::ptr::eq(*c, ops))
        .ok_or(CryptoFailure)
}

#[cfg(feature = "aws-lc")]
static COUNTING_AWS_LC: CountingOps = CountingOps::new(&super::aws_lc::AwsLc);
#[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
static COUNTING_RUSTCRYPTO: CountingOps = CountingOps::new(&super::rust_crypto::RustCrypto);

static COUNTING_INSTANCES: &[&CountingOps] = &[
    #[cfg(feature = "aws-lc")]
    &COUNTING_AWS_LC,
    #[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
    &COUNTING_RUSTCRYPTO,
];

/// A counting wrapper around each compiled-in provider.
pub(crate) fn counting_instances() -> &'static [&'static CountingOps] {
    COUNTING_INSTANCES
}

struct CountingCipher {
    inner: Box<dyn SegmentCipher>,
    counters: &'static CountingOps,
}

impl SegmentCipher for CountingCipher {
    fn seal_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        self.counters.aead(plaintext.len());
        self.inner.seal_to(nonce, aad, plaintext, out)
    }
    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        self.counters.aead(ciphertext.len());
        self.inner.open_to(nonce, aad, ciphertext, tag, out)
    }
    fn seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        self.counters.aead(data.len());
        self.inner.seal_in_place(nonce, aad, data)
    }
    fn open_within(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        from: usize,
    ) -> Result<usize, CryptoFailure> {
        self.counters
            .aead(buf.len().saturating_sub(from).saturating_sub(16));
        self.inner.open_within(nonce, aad, buf, from)
    }
}

struct CountingRsa {
    inner: Box<dyn RsaPrivate>,
    counters: &'static CountingOps,
}

impl RsaPrivate for CountingRsa {
    fn public_key(&self) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        self.inner.public_key()
    }
    fn decrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        self.counters.rsa_decryptions.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt_oaep(algorithm, ciphertext)
    }
}
