//! Which RSA keys a backend accepts: the key rules every backend enforces when it creates,
//! imports or wraps under a key.

use crate::error::{Error, Result};

/// RSA sizes a policy may accept. 2048 is Azure's CMK size; the others only by opt-in.
pub const RSA_SIZES: [usize; 3] = [2048, 3072, 4096];

/// The only RSA public exponent accepted: 65537. Key Vault issues no other, and FIPS 186-5
/// requires e > 2^16; a small exponent such as 3 invites the classic low-exponent attacks.
pub const RSA_PUBLIC_EXPONENT: u32 = 65_537;

/// Checks a big-endian RSA public exponent (leading zero bytes allowed) is 65537.
///
/// # Errors
/// [`Error::InvalidKey`] naming `what` and the exponent found.
pub(crate) fn check_rsa_exponent(exponent: &[u8], what: &str) -> Result<()> {
    let significant = exponent
        .iter()
        .position(|&b| b != 0)
        .and_then(|first| exponent.get(first..))
        .unwrap_or_default();
    if significant == [0x01, 0x00, 0x01] {
        return Ok(());
    }
    let shown = if significant.len() <= 8 {
        significant
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b))
            .to_string()
    } else {
        format!("a {}-byte number", significant.len())
    };
    Err(Error::InvalidKey(format!(
        "{what}: RSA public exponent {shown}; only {RSA_PUBLIC_EXPONENT} is accepted (FIPS \
         186-5 requires e > 2^16, and Key Vault issues only 65537)"
    )))
}

/// Which RSA keys may wrap data keys: the rules a backend checks when it creates, imports,
/// or wraps under a key (the software keyring, PKCS#11, Key Vault). Reading old data never
/// depends on them.
///
/// The default is Azure's CMK rule: RSA-2048 only.
///
/// ```
/// use cmk_envelope::policy::KeyRules;
/// let rules = KeyRules::default().allow_rsa_sizes(&[2048, 3072]).unwrap();
/// assert!(rules.check_rsa_size(3072).is_ok());
/// assert!(KeyRules::default().check_rsa_size(3072).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRules {
    rsa_sizes: Vec<usize>,
}

impl Default for KeyRules {
    fn default() -> Self {
        Self {
            rsa_sizes: vec![2048],
        }
    }
}

impl KeyRules {
    /// Accepts these RSA sizes instead of 2048 only. Each must be 2048, 3072 or 4096.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty list or any other size.
    pub fn allow_rsa_sizes(mut self, sizes: &[usize]) -> Result<Self> {
        if sizes.is_empty() || sizes.iter().any(|s| !RSA_SIZES.contains(s)) {
            return Err(Error::InvalidArgument(format!(
                "RSA sizes {sizes:?}: each must be one of {RSA_SIZES:?}"
            )));
        }
        self.rsa_sizes = sizes.to_vec();
        Ok(self)
    }

    /// Every size this crate supports: for reading keys that already exist.
    pub(crate) fn any_supported_size() -> Self {
        Self {
            rsa_sizes: RSA_SIZES.to_vec(),
        }
    }

    /// The RSA sizes accepted.
    #[must_use]
    pub fn rsa_sizes(&self) -> &[usize] {
        &self.rsa_sizes
    }

    /// Checks an RSA key size.
    ///
    /// # Errors
    /// [`Error::PolicyRefused`] naming the size and what is accepted.
    pub fn check_rsa_size(&self, bits: usize) -> Result<()> {
        if self.rsa_sizes.contains(&bits) {
            Ok(())
        } else {
            Err(Error::PolicyRefused(format!(
                "RSA-{bits} key: the key rules accept RSA {} only",
                self.rsa_sizes
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod exponent_tests {
    use super::check_rsa_exponent;

    #[test]
    fn only_65537_is_accepted() {
        assert!(check_rsa_exponent(&[1, 0, 1], "k").is_ok());
        assert!(check_rsa_exponent(&[0, 0, 1, 0, 1], "k").is_ok());
        for bad in [&[3u8][..], &[1, 0, 0, 1], &[], &[0], &[1, 0, 3]] {
            let error = check_rsa_exponent(bad, "k").expect_err("refused");
            assert!(error.to_string().contains("65537"), "{error}");
        }
        assert!(check_rsa_exponent(&[3], "k")
            .expect_err("refused")
            .to_string()
            .contains("exponent 3;"));
    }
}
