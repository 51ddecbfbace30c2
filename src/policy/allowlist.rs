//! Which key services a file may send us to: only those the operator or application named.
//!
//! An envelope's slots are untrusted input. A kid naming `https://attacker.vault.azure.net/…`
//! or another PKCS#11 token must not make a reader present its Entra token or HSM PIN there.
//! A [`KidAllowlist`] names the vaults and tokens that may be contacted; a slot naming
//! anything else is passed over before any wrapper sees it, exactly like a kid no wrapper
//! holds ([`Error::NoKeyForKid`](crate::Error::NoKeyForKid)).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::kid::{
    pkcs11_token_of, vault_host_of, BRANCH_KID_PREFIX, LOCAL_KID_PREFIX, PKCS11_SCHEME,
    VAULT_SCHEME,
};

/// The key services slots may name.
///
/// Keyring kids (`local:…`) name no service and are always allowed: the keyring is the
/// one the caller opened. So are branch kids (`branch:…`): the branch key store is the one
/// the caller named, and the CMK kids inside its records are checked against this list
/// before any key service sees them. Key Vault kids are allowed by vault (scheme and host), PKCS#11
/// kids by token label, and any other kid only after [`KidAllowlist::allow_other_kids`].
///
/// ```
/// use cmk_envelope::policy::KidAllowlist;
/// let allowlist = KidAllowlist::new()
///     .allow_vault("https://contoso.vault.azure.net")
///     .unwrap()
///     .allow_pkcs11_token("prod-hsm");
/// assert!(allowlist.allows("https://contoso.vault.azure.net/keys/orders/0123abcd"));
/// assert!(!allowlist.allows("https://attacker.vault.azure.net/keys/orders/0123abcd"));
/// assert!(allowlist.allows("pkcs11:token=prod-hsm;object=orders;id=%00%00%00%01"));
/// assert!(!allowlist.allows("pkcs11:token=other;object=orders"));
/// assert!(allowlist.allows("local:orders/0123abcd"));
/// assert!(allowlist.allows("branch:orders/0123abcd"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KidAllowlist {
    vault_hosts: BTreeSet<String>,
    pkcs11_tokens: BTreeSet<String>,
    other_kids: bool,
}

impl KidAllowlist {
    /// Allows keyring kids only.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows every key of the vault (or Managed HSM) at `url`: `https://{host}`, with or
    /// without a key path after it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything but an `https://` URL with a host.
    pub fn allow_vault(mut self, url: &str) -> Result<Self> {
        let host = vault_host_of(url).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{}: a vault is named by its URL, https://{{name}}.vault.azure.net",
                crate::redact::urls(url)
            ))
        })?;
        self.vault_hosts.insert(host);
        Ok(self)
    }

    /// Allows every key of the PKCS#11 token with this label.
    #[must_use]
    pub fn allow_pkcs11_token(mut self, label: &str) -> Self {
        self.pkcs11_tokens.insert(label.to_owned());
        self
    }

    /// Allows kids of other schemes (custom wrappers): off by default.
    #[must_use]
    pub fn allow_other_kids(mut self, allow: bool) -> Self {
        self.other_kids = allow;
        self
    }

    /// Allows what a key named by the caller lives in: its vault for a Key Vault key URL, its
    /// token for a `pkcs11:` URI; nothing more for a keyring key.
    ///
    /// # Errors
    /// As [`KidAllowlist::allow_vault`].
    pub fn allow_key(self, key: &str) -> Result<Self> {
        if key.starts_with(VAULT_SCHEME) {
            return self.allow_vault(key);
        }
        if key.starts_with(PKCS11_SCHEME) {
            return Ok(match pkcs11_token_of(key) {
                Some(token) => self.allow_pkcs11_token(&token),
                None => self,
            });
        }
        Ok(self)
    }

    /// Whether a slot naming `kid` may be offered to a wrapper.
    #[must_use]
    pub fn allows(&self, kid: &str) -> bool {
        self.refusal(kid).is_none()
    }

    /// Why `kid` is not allowed and how to allow it, or `None` when it is.
    #[must_use]
    pub fn refusal(&self, kid: &str) -> Option<String> {
        if kid.starts_with(LOCAL_KID_PREFIX) || kid.starts_with(BRANCH_KID_PREFIX) {
            return None;
        }
        if kid.starts_with(VAULT_SCHEME) {
            let host = vault_host_of(kid).unwrap_or_default();
            return (!self.vault_hosts.contains(&host)).then(|| {
                format!(
                    "vault https://{host} is not one this run may contact; if it is yours, \
                     allow it (cmke: --allow-vault https://{host}, or vaults = [\"https://{host}\"] \
                     in cmke.toml)"
                )
            });
        }
        if kid.starts_with(PKCS11_SCHEME) {
            let token = pkcs11_token_of(kid).unwrap_or_default();
            return (!self.pkcs11_tokens.contains(&token)).then(|| {
                format!(
                    "PKCS#11 token {token:?} is not one this run may log in to; if it is yours, \
                     allow it (cmke: --allow-pkcs11-token {token:?}, or pkcs11_tokens = \
                     [{token:?}] in cmke.toml)"
                )
            });
        }
        (!self.other_kids).then(|| "kids of this kind are not allowed".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_tokens_are_compared_exactly() {
        let list = KidAllowlist::new()
            .allow_vault("https://Contoso.vault.azure.net/keys/orders")
            .expect("vault")
            .allow_pkcs11_token("prod hsm");
        assert!(list.allows("https://contoso.vault.azure.net/keys/x/1"));
        // Look-alikes: a longer host, userinfo, another port are other vaults.
        assert!(!list.allows("https://contoso.vault.azure.net.evil.net/keys/x/1"));
        assert!(!list.allows("https://contoso.vault.azure.net@evil.net/keys/x/1"));
        assert!(!list.allows("https://contoso.vault.azure.net:444/keys/x/1"));
        assert!(list.allows("pkcs11:token=prod%20hsm;object=k;id=%01"));
        assert!(!list.allows("pkcs11:token=prod;object=k"));
        assert!(!list.allows("pkcs11:object=k"));
        assert!(!list.allows("custom:k/1"));
        assert!(list.clone().allow_other_kids(true).allows("custom:k/1"));
        assert!(KidAllowlist::new().allow_vault("http://x").is_err());
        let why = list
            .refusal("https://evil.vault.azure.net/keys/x/1")
            .expect("refused");
        assert!(
            why.contains("--allow-vault https://evil.vault.azure.net"),
            "{why}"
        );
    }

    #[test]
    fn named_keys_allow_their_own_service() {
        let list = KidAllowlist::new()
            .allow_key("https://contoso.vault.azure.net/keys/orders")
            .and_then(|l| l.allow_key("pkcs11:token=prod-hsm;object=orders"))
            .and_then(|l| l.allow_key("orders"))
            .expect("keys");
        assert!(list.allows("https://contoso.vault.azure.net/keys/other/1"));
        assert!(list.allows("pkcs11:token=prod-hsm;object=other;id=%01"));
    }
}
