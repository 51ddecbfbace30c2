//! What the data path needs from cryptography: the one interface both providers implement.

use zeroize::Zeroizing;

use crate::format::WrapAlgorithm;

/// A failed cryptographic operation. Deliberately carries nothing: callers map it to the
/// opaque [`Error::DecryptionFailed`](crate::Error::DecryptionFailed) or to a backend error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CryptoFailure;

/// AES-256-GCM under one key, with detached tags.
pub(crate) trait SegmentCipher: Send + Sync {
    /// Encrypts `plaintext` into `out` (of the same length) and returns the tag.
    fn seal_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure>;

    /// Decrypts `ciphertext` into `out` (of the same length) if `tag` verifies. Reading
    /// from one buffer and writing the other spares the data path a copy. On failure `out`
    /// is zeroed, so no unauthenticated plaintext survives.
    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), CryptoFailure>;

    /// Encrypts `data` where it lies and returns the tag (for buffers the caller already
    /// owns, such as a stream's batch: no second buffer and no copy).
    fn seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure>;

    /// Decrypts the ciphertext ‖ tag at `buf[from..]` into the start of `buf` (a shift
    /// towards the front, for opening where the data lies) if the tag verifies, and returns
    /// the plaintext length. On failure all of `buf` is zeroed.
    fn open_within(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        from: usize,
    ) -> Result<usize, CryptoFailure>;
}

/// An RSA public key that wraps data keys with OAEP.
pub(crate) trait RsaPublic: Send + Sync {
    fn encrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoFailure>;
}

/// An RSA private key that unwraps data keys with OAEP.
pub(crate) trait RsaPrivate: Send + Sync {
    fn public_key(&self) -> Result<Box<dyn RsaPublic>, CryptoFailure>;
    /// OAEP decryption with an empty label. Every failure (padding, length, wrong key) is the
    /// same `CryptoFailure`.
    fn decrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure>;
}

/// The operations a provider supplies.
pub(crate) trait CryptoOps: Send + Sync {
    fn name(&self) -> &'static str;
    fn fill_random(&self, out: &mut [u8]) -> Result<(), CryptoFailure>;
    fn sha256(&self, data: &[u8]) -> [u8; 32];
    /// HKDF-SHA-256: one extract with `salt` over `ikm`, then one expand per
    /// `(info, output)` pair.
    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        expansions: &mut [(&[u8], &mut [u8])],
    ) -> Result<(), CryptoFailure>;
    fn aes256_gcm(&self, key: &[u8; 32]) -> Result<Box<dyn SegmentCipher>, CryptoFailure>;
    /// Loads an RSA private key from a PKCS#8 DER document.
    fn rsa_private_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivate>, CryptoFailure>;
    /// Generates an RSA key of `bits` bits, as PKCS#8 DER.
    fn generate_rsa_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoFailure>;
    /// An RSA public key from its modulus and exponent (big-endian, as a JWK carries them),
    /// for wrapping under a key held elsewhere (Key Vault, an HSM).
    #[cfg_attr(not(any(feature = "azure", feature = "pkcs11")), allow(dead_code))] // only key-service backends wrap so
    fn rsa_public_from_components(
        &self,
        modulus: &[u8],
        exponent: &[u8],
    ) -> Result<Box<dyn RsaPublic>, CryptoFailure>;
}

/// rsaEncryption (RFC 8017, appendix A.1).
#[cfg(feature = "aws-lc")]
#[cfg_attr(not(any(feature = "azure", feature = "pkcs11")), allow(dead_code))]
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The X.509 `SubjectPublicKeyInfo` DER of an RSA public key (rsaEncryption, NULL
/// parameters, PKCS#1 `RSAPublicKey` inside).
#[cfg(feature = "aws-lc")]
#[cfg_attr(not(any(feature = "azure", feature = "pkcs11")), allow(dead_code))]
pub(crate) fn rsa_spki_der(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
    use pkcs8::der::asn1::{AnyRef, BitStringRef};
    use pkcs8::der::Encode;
    use pkcs8::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

    let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|&x| x == 0).collect() };
    let (modulus, exponent) = (strip(modulus), strip(exponent));
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(&modulus).map_err(|_| CryptoFailure)?,
        public_exponent: pkcs1::UintRef::new(&exponent).map_err(|_| CryptoFailure)?,
    }
    .to_der()
    .map_err(|_| CryptoFailure)?;
    SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        subject_public_key: BitStringRef::from_bytes(&pkcs1).map_err(|_| CryptoFailure)?,
    }
    .to_der()
    .map_err(|_| CryptoFailure)
}
