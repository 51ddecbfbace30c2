//! The aws-lc-rs provider (default).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::{digest, hkdf, rand};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoFailure, CryptoOps, RsaPrivate, RsaPublic, SegmentCipher};
use crate::format::WrapAlgorithm;

pub(super) struct AwsLc;

fn fail<E>(_: E) -> CryptoFailure {
    CryptoFailure
}

/// The OAEP parameters of an RSA algorithm; a branch slot is no RSA ciphertext.
fn oaep(algorithm: WrapAlgorithm) -> Result<&'static OaepAlgorithm, CryptoFailure> {
    match algorithm {
        WrapAlgorithm::RsaOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        WrapAlgorithm::RsaOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        _ => Err(CryptoFailure),
    }
}

/// HKDF output length for aws-lc's `KeyType`.
struct OutputLen(usize);

impl hkdf::KeyType for OutputLen {
    fn len(&self) -> usize {
        self.0
    }
}

impl CryptoOps for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc"
    }

    fn fill_random(&self, out: &mut [u8]) -> Result<(), CryptoFailure> {
        rand::fill(out).map_err(fail)
    }

    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    fn hkdf_sha256(
        &self,
        salt: &[u8],
        ikm: &[u8],
        expansions: &mut [(&[u8], &mut [u8])],
    ) -> Result<(), CryptoFailure> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
        for (info, out) in expansions.iter_mut() {
            let info = [*info];
            prk.expand(&info, OutputLen(out.len()))
                .map_err(fail)?
                .fill(out)
                .map_err(fail)?;
        }
        Ok(())
    }

    fn aes256_gcm(&self, key: &[u8; 32]) -> Result<Box<dyn SegmentCipher>, CryptoFailure> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(fail)?;
        Ok(Box::new(Gcm(LessSafeKey::new(key))))
    }

    fn rsa_private_from_pkcs8(&self, der: &[u8]) -> Result<Box<dyn RsaPrivate>, CryptoFailure> {
        let key = PrivateDecryptingKey::from_pkcs8(der).map_err(fail)?;
        let public = key.public_key();
        let private = OaepPrivateDecryptingKey::new(key).map_err(fail)?;
        Ok(Box::new(Private { private, public }))
    }

    fn generate_rsa_pkcs8(&self, bits: usize) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(CryptoFailure),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(fail)?;
        let der = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(fail)?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    fn rsa_public_from_components(
        &self,
        modulus: &[u8],
        exponent: &[u8],
    ) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        let spki = super::rsa_spki_der(modulus, exponent)?;
        let public = PublicEncryptingKey::from_der(&spki).map_err(fail)?;
        Ok(Box::new(Public(
            OaepPublicEncryptingKey::new(public).map_err(fail)?,
        )))
    }
}

struct Gcm(LessSafeKey);

impl SegmentCipher for Gcm {
    fn seal_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<[u8; 16], CryptoFailure> {
        // Out of place: one pass over the data instead of a copy and an in-place pass. A
        // `fips` build makes this same call inside the validated module; whether the module's
        // service indicator counts this GCM call (caller-chosen nonce) as approved is not
        // checked here, and the README's FIPS section says so.
        let mut tag = [0u8; 16];
        self.0
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                plaintext,
                out,
                &[],
                &mut tag,
            )
            .map_err(fail)?;
        Ok(tag)
    }

    fn open_to(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; 16],
        out: &mut [u8],
    ) -> Result<(), CryptoFailure> {
        let opened = self.0.open_separate_gather(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            ciphertext,
            tag,
            out,
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
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), data)
            .map_err(fail)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open_within(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        from: usize,
    ) -> Result<usize, CryptoFailure> {
        let opened = self
            .0
            .open_within(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                buf,
                from..,
            )
            .map(|plaintext| plaintext.len());
        opened.map_err(|_| {
            buf.zeroize();
            CryptoFailure
        })
    }
}

struct Public(OaepPublicEncryptingKey);

impl RsaPublic for Public {
    fn encrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, CryptoFailure> {
        let mut out = vec![0u8; self.0.ciphertext_size()];
        let len = self
            .0
            .encrypt(oaep(algorithm)?, message, &mut out, None)
            .map_err(fail)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

struct Private {
    private: OaepPrivateDecryptingKey,
    public: PublicEncryptingKey,
}

impl RsaPrivate for Private {
    fn public_key(&self) -> Result<Box<dyn RsaPublic>, CryptoFailure> {
        let public = OaepPublicEncryptingKey::new(self.public.clone()).map_err(fail)?;
        Ok(Box::new(Public(public)))
    }

    fn decrypt_oaep(
        &self,
        algorithm: WrapAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoFailure> {
        let mut out = Zeroizing::new(vec![0u8; self.private.min_output_size()]);
        let len = self
            .private
            .decrypt(oaep(algorithm)?, ciphertext, &mut out, None)
            .map_err(fail)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}
