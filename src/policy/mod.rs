//! The rules a caller sets: which keys may wrap ([`KeyRules`]), which key services an
//! envelope's slots may send us to ([`KidAllowlist`]), and where a re-wrap may move a data key
//! ([`RewrapPolicy`], Azure's CMK model by default).

mod allowlist;
mod key_rules;
mod protection;

pub use allowlist::KidAllowlist;
pub(crate) use key_rules::check_rsa_exponent;
pub use key_rules::{KeyRules, RSA_PUBLIC_EXPONENT, RSA_SIZES};
pub use protection::ProtectionLevel;

use crate::error::{Error, Result};

/// Where a re-wrap (explicit, or lazy on open) may move a data key.
///
/// The default is Azure's CMK model: only within the same vault or keyring (or up from a
/// software key to a customer-managed one); never from a customer-managed key (HSM, Key
/// Vault) back to a software key. Set it on the envelope with
/// [`EnvelopeBuilder::rewrap_policy`](crate::EnvelopeBuilder::rewrap_policy). Which keys may
/// wrap at all is the backends' [`KeyRules`].
///
/// ```
/// use cmk_envelope::policy::RewrapPolicy;
/// let migration = RewrapPolicy::default().allow_rewrap_across_vaults(true);
/// assert_ne!(migration, RewrapPolicy::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapPolicy {
    allow_rewrap_across_vaults: bool,
    allow_rewrap_to_software: bool,
}

impl RewrapPolicy {
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
