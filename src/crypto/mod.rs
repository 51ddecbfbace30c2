//! The crypto providers: one small interface, two implementations.
//!
//! Everything the data path needs from cryptography goes through [`CryptoOps`]: random bytes,
//! SHA-256, HKDF-SHA-256, AES-256-GCM with detached tags, and RSA-OAEP. The providers are
//! `aws-lc` (aws-lc-rs, the default) and `rustcrypto` (aes-gcm, rsa, hkdf, sha2).
//!
//! With feature `fips`, `aws-lc` runs on AWS-LC's FIPS 140-3 validated module and
//! `rustcrypto` is not compiled at all, even when its feature is on: nothing in the data path
//! can be served by an unvalidated implementation.

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(test)]
pub(crate) mod counting;
#[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
mod rust_crypto;
mod schedule;
#[cfg(test)]
mod wycheproof_tests;

pub(crate) use schedule::KeySchedule;

use zeroize::Zeroizing;

use crate::format::WrapAlgorithm;

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("enable a crypto provider: feature `aws-lc` (default) or `rustcrypto`");

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
fn rsa_spki_der(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, CryptoFailure> {
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

/// A crypto provider: which library performs the cryptography of the data path.
///
/// A cheap handle; pick one with `Provider::aws_lc()` or `Provider::rustcrypto()` (each
/// under its feature; a `fips` build has no `rustcrypto`), or take [`Provider::default`]
/// (aws-lc when its feature is on). Envelopes sealed by one provider open with the other:
/// the format does not depend on the provider.
#[derive(Clone, Copy)]
pub struct Provider {
    ops: &'static dyn CryptoOps,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Provider").field(&self.ops.name()).finish()
    }
}

impl Provider {
    /// aws-lc-rs: the default, fastest, and constant-time RSA.
    #[cfg(feature = "aws-lc")]
    #[must_use]
    pub fn aws_lc() -> Self {
        Self {
            ops: &aws_lc::AwsLc,
        }
    }

    /// RustCrypto (`aes-gcm`, `rsa`, `hkdf`, `sha2`): pure Rust.
    ///
    /// The `rsa` crate still carries RUSTSEC-2023-0071 (the Marvin timing side channel on
    /// decryption); see the README's security section before unwrapping with it where an
    /// attacker can time you.
    #[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
    #[must_use]
    pub fn rustcrypto() -> Self {
        Self {
            ops: &rust_crypto::RustCrypto,
        }
    }

    /// Every provider compiled into this build, default first.
    #[must_use]
    #[allow(clippy::vec_init_then_push)] // which pushes happen depends on the features
    pub fn all() -> Vec<Self> {
        let mut all = Vec::new();
        #[cfg(feature = "aws-lc")]
        all.push(Self::aws_lc());
        #[cfg(all(feature = "rustcrypto", not(feature = "fips")))]
        all.push(Self::rustcrypto());
        all
    }

    /// The provider's name: `aws-lc` or `rustcrypto`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.ops.name()
    }

    /// What implements it, with versions: `AWS-LC 1.x` (the library aws-lc-rs links, the
    /// FIPS module in a `fips` build) or the RustCrypto crates.
    #[must_use]
    pub fn implementation(&self) -> String {
        match self.name() {
            #[cfg(feature = "aws-lc")]
            "aws-lc" => format!(
                "AWS-LC {}{}",
                aws_lc_rs::awslc_version(),
                if cfg!(feature = "fips") {
                    " (FIPS module)"
                } else {
                    ""
                }
            ),
            _ => "RustCrypto aes-gcm 0.10, rsa 0.9, hkdf 0.12, sha2 0.10".to_owned(),
        }
    }

    pub(crate) fn ops(&self) -> &'static dyn CryptoOps {
        self.ops
    }

    /// A provider over any operations: for tests that count or break them.
    #[cfg(test)]
    pub(crate) fn from_ops(ops: &'static dyn CryptoOps) -> Self {
        Self { ops }
    }
}

impl Default for Provider {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Self::aws_lc();
        #[cfg(not(feature = "aws-lc"))]
        return Self::rustcrypto();
    }
}

#[cfg(test)]
mod public_components_tests {
    use pkcs8::der::Decode;

    use super::Provider;
    use crate::format::WrapAlgorithm;

    /// A public key rebuilt from (n, e), as a JWK carries them, wraps for the private key,
    /// on every provider and with both OAEP hashes; leading zero bytes (as Key Vault may
    /// send) do not matter.
    #[test]
    fn a_key_from_its_components_wraps_for_the_private_key() {
        for provider in Provider::all() {
            let ops = provider.ops();
            let der = ops
                .generate_rsa_pkcs8(2048)
                .unwrap_or_else(|_| panic!("generate"));
            let info = pkcs8::PrivateKeyInfo::from_der(&der).unwrap_or_else(|e| panic!("{e}"));
            let rsa =
                pkcs1::RsaPrivateKey::from_der(info.private_key).unwrap_or_else(|e| panic!("{e}"));
            let mut padded = vec![0u8];
            padded.extend_from_slice(rsa.modulus.as_bytes());
            let public = ops
                .rsa_public_from_components(&padded, rsa.public_exponent.as_bytes())
                .unwrap_or_else(|_| panic!("{}: components", provider.name()));
            let private = ops
                .rsa_private_from_pkcs8(&der)
                .unwrap_or_else(|_| panic!("private"));
            for algorithm in [WrapAlgorithm::RsaOaepSha256, WrapAlgorithm::RsaOaepSha1] {
                let wrapped = public
                    .encrypt_oaep(algorithm, &[7; 32])
                    .unwrap_or_else(|_| panic!("wrap"));
                let unwrapped = private
                    .decrypt_oaep(algorithm, &wrapped)
                    .unwrap_or_else(|_| panic!("{}: unwrap", provider.name()));
                assert_eq!(unwrapped.as_slice(), &[7; 32]);
            }
            assert!(ops.rsa_public_from_components(&[], &[1, 0, 1]).is_err());
        }
    }
}
