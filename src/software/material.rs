//! Reading RSA key material: PEM, PKCS#8, key type and size, before any provider sees it.

use pkcs8::der::Decode;
use pkcs8::{LineEnding, PrivateKeyInfo, SecretDocument};
use zeroize::Zeroizing;

use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::policy::KeyRules;

const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A PKCS#8 RSA private key, checked: parsed, RSA, a size the key rules accept, and accepted
/// by the provider.
pub(crate) struct RsaKeyMaterial {
    der: Zeroizing<Vec<u8>>,
    bits: usize,
}

impl RsaKeyMaterial {
    /// Reads a `-----BEGIN PRIVATE KEY-----` PEM document.
    pub(crate) fn from_pem(pem: &str, rules: &KeyRules, provider: Provider) -> Result<Self> {
        match pem_label(pem) {
            Some("PRIVATE KEY") => {}
            other => return Err(Error::InvalidKey(wrong_label(other))),
        }
        let (_, document) = SecretDocument::from_pem(pem)
            .map_err(|_| Error::InvalidKey("malformed PEM document".to_owned()))?;
        Self::from_pkcs8_der(document.as_bytes(), rules, provider)
    }

    /// Reads a PKCS#8 DER document.
    pub(crate) fn from_pkcs8_der(der: &[u8], rules: &KeyRules, provider: Provider) -> Result<Self> {
        let info = PrivateKeyInfo::try_from(der)
            .map_err(|_| Error::InvalidKey("not a PKCS#8 private key".to_owned()))?;
        if info.algorithm.oid != RSA_ENCRYPTION {
            return Err(Error::InvalidKey(format!(
                "key type {} (OID {}): only RSA keys can wrap data keys",
                key_type_name(&info.algorithm.oid),
                info.algorithm.oid
            )));
        }
        let rsa = pkcs1::RsaPrivateKey::from_der(info.private_key)
            .map_err(|_| Error::InvalidKey("malformed RSA private key".to_owned()))?;
        let bits = modulus_bits(rsa.modulus.as_bytes());
        crate::policy::check_rsa_exponent(rsa.public_exponent.as_bytes(), "the key")?;
        rules.check_rsa_size(bits)?;
        provider
            .ops()
            .rsa_private_from_pkcs8(der)
            .map_err(|_| Error::InvalidKey(format!("{} rejected the RSA key", provider.name())))?;
        Ok(Self {
            der: Zeroizing::new(der.to_vec()),
            bits,
        })
    }

    /// Generates a fresh key.
    pub(crate) fn generate(bits: usize, rules: &KeyRules, provider: Provider) -> Result<Self> {
        rules.check_rsa_size(bits)?;
        let der = provider
            .ops()
            .generate_rsa_pkcs8(bits)
            .map_err(|_| Error::Backend {
                backend: provider.name(),
                message: format!("RSA-{bits} key generation failed"),
            })?;
        Ok(Self { der, bits })
    }

    pub(crate) fn bits(&self) -> usize {
        self.bits
    }

    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    pub(crate) fn to_pem(&self) -> Result<Zeroizing<String>> {
        let document = SecretDocument::try_from(self.der.as_slice())
            .map_err(|_| Error::InvalidKey("not a DER document".to_owned()))?;
        document
            .to_pem("PRIVATE KEY", LineEnding::LF)
            .map_err(|_| Error::InvalidKey("cannot encode PEM".to_owned()))
    }
}

fn wrong_label(label: Option<&str>) -> String {
    match label {
        Some("RSA PRIVATE KEY") => "PKCS#1 PEM (BEGIN RSA PRIVATE KEY): convert it with \
                                    `openssl pkcs8 -topk8 -nocrypt`"
            .to_owned(),
        Some("ENCRYPTED PRIVATE KEY") => {
            "encrypted PKCS#8 is not supported: decrypt it first".to_owned()
        }
        Some(other) => format!("PEM labelled {other:?}, expected PRIVATE KEY (PKCS#8)"),
        None => "not a PEM document".to_owned(),
    }
}

fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")?;
    let rest = pem.get(start + "-----BEGIN ".len()..)?;
    let end = rest.find("-----")?;
    rest.get(..end)
}

fn key_type_name(oid: &pkcs8::ObjectIdentifier) -> &'static str {
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC",
        "1.3.101.112" => "Ed25519",
        "1.3.101.110" => "X25519",
        "1.2.840.113549.1.1.10" => "RSA-PSS",
        "1.2.840.10040.4.1" => "DSA",
        _ => "unknown",
    }
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let significant: Vec<u8> = modulus.iter().copied().skip_while(|b| *b == 0).collect();
    match significant.first() {
        Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}
