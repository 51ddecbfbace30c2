//! The crypto provider a caller picks: aws-lc-rs or RustCrypto.

use super::CryptoOps;

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
            ops: &super::aws_lc::AwsLc,
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
            ops: &super::rust_crypto::RustCrypto,
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
