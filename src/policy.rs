//! The CMK rules this crate enforces, and the few knowing opt-outs.

use crate::error::{Error, Result};
use crate::wrap::ProtectionLevel;

/// RSA sizes a policy may accept. 2048 is Azure's CMK size; the others only by opt-in.
pub const RSA_SIZES: [usize; 3] = [2048, 3072, 4096];

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
