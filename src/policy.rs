//! The CMK rules this crate enforces, and the few knowing opt-outs.

use crate::error::{Error, Result};
use crate::wrap::ProtectionLevel;

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

/// Which keys may wrap data keys, and where a re-wrap may move them.
///
/// The default is Azure's CMK model: RSA-2048 only; re-wrap only within the same vault or
/// keyring (or up from a software key to a customer-managed one); never from a
/// customer-managed key (HSM, Key Vault) back to a software key.
///
/// ```
/// use cmk_envelope::KeyPolicy;
/// let policy = KeyPolicy::default().allow_rsa_sizes(&[2048, 3072]).unwrap();
/// assert!(policy.check_rsa_size(3072).is_ok());
/// assert!(KeyPolicy::default().check_rsa_size(3072).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    rsa_sizes: Vec<usize>,
    allow_rewrap_across_vaults: bool,
    allow_rewrap_to_software: bool,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            rsa_sizes: vec![2048],
            allow_rewrap_across_vaults: false,
            allow_rewrap_to_software: false,
        }
    }
}

impl KeyPolicy {
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

    /// Allows re-wrapping to a key in another vault or keyring of the same protection level.
    /// Azure keeps rotation within one vault; turn this on only for a deliberate migration.
    #[must_use]
    pub fn allow_rewrap_across_vaults(mut self, allow: bool) -> Self {
        self.allow_rewrap_across_vaults = allow;
        self
    }

    /// Allows re-wrapping data keys from a customer-managed key (HSM, Key Vault) to a software
    /// key. This undoes customer-managed protection: whoever holds the software key can then
    /// read the data without the customer's key. The name is the warning.
    #[must_use]
    pub fn dangerously_allow_rewrap_to_software(mut self, allow: bool) -> Self {
        self.allow_rewrap_to_software = allow;
        self
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
                "RSA-{bits} key: policy accepts RSA {} only",
                self.rsa_sizes
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    /// Checks that a data key may move from one wrapper's key to another's.
    ///
    /// # Errors
    /// [`Error::PolicyRefused`] for a move from a customer-managed key to a software key, or
    /// to another vault or keyring of the same protection level.
    pub fn check_rewrap(&self, from: &RewrapEndpoint<'_>, to: &RewrapEndpoint<'_>) -> Result<()> {
        if from.protection.is_customer_managed()
            && !to.protection.is_customer_managed()
            && !self.allow_rewrap_to_software
        {
            return Err(Error::PolicyRefused(format!(
                "re-wrap from a customer-managed key ({}, {}) to a software key ({}) would \
                 leave no way back to customer-managed protection",
                from.protection, from.kid, to.kid
            )));
        }
        if from.protection == to.protection
            && from.domain != to.domain
            && !self.allow_rewrap_across_vaults
        {
            return Err(Error::PolicyRefused(format!(
                "re-wrap from {} to {}: rotation must stay in the same vault or keyring \
                 ({} is not {})",
                from.kid, to.kid, to.domain, from.domain
            )));
        }
        Ok(())
    }
}

/// One side of a re-wrap, as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct RewrapEndpoint<'a> {
    /// The kid of the slot (from) or of the new slot (to).
    pub kid: &'a str,
    /// How the key is protected.
    pub protection: ProtectionLevel,
    /// The vault or keyring holding the key.
    pub domain: &'a str,
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
