//! The RustCrypto provider: aes-gcm, rsa, hkdf, sha2.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand_core::{OsRng, RngCore};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoFailure, CryptoOps, RsaPrivate, RsaPublic, SegmentCipher};
use crate::format::WrapAlgorithm;

pub(super) struct RustCrypto;

fn fail<E>(_: E) -> CryptoFailure {
    CryptoFailure
}

/// The OAEP parameters of an RSA algorithm; a branch slot is no RSA ciphertext.
fn oaep(algorithm: WrapAlgorithm) -> Result<Oaep, CryptoFailure> {
    match algorithm {
        WrapAlgorithm::RsaOaepSha1 => Ok(Oaep::new::<sha1::Sha1>()),
        WrapAlgorithm::RsaOaepSha256 => Ok(Oaep::new::<Sha256>()),
        _ => Err(CryptoFailure),
    }
}

impl CryptoOps for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn fill_random(&self, out: &mut [u8]) -> Result<(), CryptoFailure> {
        OsRng.try_fill_bytes(out).map_err(fail)
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        expansions: &mut [(&[u8], &mut [u8])],
    ) -> Result<(), CryptoFailure> {
        let prk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
        for (info, out) in expansions.iter_mut() {
            prk.expand(info, out).map_err(fail)?;
        }
        Ok(())
    }

    fn aes256_gcm(&self, key: &[u8; 32]) -> Result<Box<dyn SegmentCipher>, CryptoFailure> {
        Ok(Box::new(Gcm(Aes256Gcm::new_from_slice(key).map_err(fail)?)))
    }

    fn rsa_private_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivate>, CryptoFailure> {
        let key = RsaPrivateKey::from_pkcs8_der(der).map_err(fail)?;
        key.validate().map_err(fail)?;
        Ok(Box::new(Private(key)))
    }

    fn generate_rsa_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(fail)?;
        let der = key.to_pkcs8_der().map_err(fail)?;
        Ok(Zeroizing::new(der.as_bytes().to_vec()))
    }

    fn rsa_public_from_components(
        &self,
        modulus: &[u8],
        exponent: &[u8],
    ) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        let key = RsaPublicKey::new(
            rsa::BigUint::from_bytes_be(modulus),
            rsa::BigUint::from_bytes_be(exponent),
        )
        .map_err(fail)?;
        Ok(Box::new(Public(key)))
    }
}

struct Gcm(Aes256Gcm);

impl SegmentCipher for Gcm {
    fn seal_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        if out.len() != plaintext.len() {
            return Err(CryptoFailure);
        }
        out.copy_from_slice(plaintext);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, out)
            .map_err(fail)?;
        Ok(tag.into())
    }

    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        if out.len() != ciphertext.len() {
            out.zeroize();
            return Err(CryptoFailure);
        }
        out.copy_from_slice(ciphertext);
        let opened = self.0.decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            out,
            Tag::from_slice(tag),
        );
        if opened.is_err() {
            out.zeroize();
            return Err(CryptoFailure);
        }
        Ok(())
    }

    fn seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, data)
            .map_err(fail)?;
        Ok(tag.into())
    }

    fn open_within(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        from: usize,
    ) -> Result<usize, CryptoFailure> {
        if from > buf.len() {
            buf.zeroize();
            return Err(CryptoFailure);
        }
        let wire_len = buf.len() - from;
        buf.copy_within(from.., 0);
        Self::open_in_place(self, nonce, aad, &mut buf[..wire_len]).inspect_err(|_| buf.zeroize())
    }
}

impl Gcm {
    /// Decrypts `wire` (ciphertext ‖ tag) where it lies; on failure all of it is zeroed.
    fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        wire: &mut [u8],
    ) -> Result<usize, CryptoFailure> {
        let Some((data, tag)) = wire.split_last_chunk_mut::<16>() else {
            return Err(CryptoFailure);
        };
        let tag = Tag::clone_from_slice(tag);
        let len = data.len();
        if self
            .0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, data, &tag)
            .is_err()
        {
            wire.zeroize();
            return Err(CryptoFailure);
        }
        Ok(len)
    }
}

struct Public(RsaPublicKey);

impl RsaPublic for Public {
    fn encrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoFailure> {
        self.0
            .encrypt(&mut OsRng, oaep(algorithm)?, message)
            .map_err(fail)
    }
}

struct Private(RsaPrivateKey);

impl RsaPrivate for Private {
    fn public_key(&self) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        Ok(Box::new(Public(self.0.to_public_key())))
    }

    fn decrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        // Blinded: the base RSA operation does not depend on the ciphertext in a way the
        // caller can time. The rsa crate's remaining exposure is RUSTSEC-2023-0071 (README).
        self.0
            .decrypt_blinded(&mut OsRng, oaep(algorithm)?, ciphertext)
            .map(Zeroizing::new)
            .map_err(fail)
    }
}
