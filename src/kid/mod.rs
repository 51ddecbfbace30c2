//! Key identifiers: the one place a kid string is taken apart.
//!
//! A slot's kid names the key service, the key and the version that wrapped it
//! (docs/FORMAT.md, "Key slots": the kids in use). [`Kid::parse`] reads every kind this crate writes;
//! anything else is [`Kid::Other`], kept as it was, since other implementations may write
//! kids of their own.

//!
//! This module is a leaf: it imports no backend, and every backend takes its names, versions
//! and kid parsers from here.

mod branch;
mod hosts;
pub(crate) mod key_url;
mod names;
mod pkcs11_uri;

pub use branch::{BranchKid, BRANCH_KID_PREFIX};
pub(crate) use hosts::VAULT_SCHEME;
pub use hosts::{pkcs11_token_of, vault_host_of};
pub(crate) use key_url::KeyUrl;
pub use names::{KeyName, KeyVersion, LocalKid, LOCAL_KID_PREFIX};
pub use pkcs11_uri::{Pkcs11Uri, PKCS11_SCHEME};

/// A parsed key identifier.
///
/// ```
/// use cmk_envelope::kid::Kid;
///
/// let kid = Kid::parse("https://contoso.vault.azure.net/keys/orders/0123456789abcdef0123456789abcdef");
/// assert_eq!(kid.key(), "https://contoso.vault.azure.net/keys/orders");
/// assert_eq!(kid.version().as_deref(), Some("0123456789abcdef0123456789abcdef"));
///
/// let kid = Kid::parse("pkcs11:token=prod-hsm;object=orders;id=%00%00%00%02");
/// assert_eq!(kid.key(), "pkcs11:token=prod-hsm;object=orders");
/// assert_eq!(kid.version().as_deref(), Some("00000002"));
///
/// assert_eq!(Kid::parse("kms:alias/other").key(), "kms:alias/other");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kid {
    /// A software keyring key: `local:{name}/{version}`.
    Local(LocalKid),
    /// A Key Vault or Managed HSM key version: `https://{host}/keys/{name}/{version}`.
    KeyVault {
        /// `https://{host}`.
        vault: String,
        /// The key name.
        name: String,
        /// The version (32 hexadecimal characters).
        version: String,
    },
    /// A PKCS#11 key version: `pkcs11:token={label};object={label};id={bytes}`.
    Pkcs11 {
        /// The token label.
        token: String,
        /// The key's `CKA_LABEL`.
        object: String,
        /// The version's `CKA_ID`.
        id: Vec<u8>,
    },
    /// A branch key version: `branch:{name}/{version}` (docs/FORMAT.md, "Branch keys").
    Branch(BranchKid),
    /// Any other kid (another implementation's, or one of ours that does not parse).
    Other(String),
}

impl Kid {
    /// Reads `kid`. Never fails: what is not one of this crate's kinds is [`Kid::Other`].
    #[must_use]
    pub fn parse(kid: &str) -> Kid {
        if let Ok(local) = LocalKid::parse(kid) {
            return Kid::Local(local);
        }
        if let Ok(branch) = BranchKid::parse(kid) {
            return Kid::Branch(branch);
        }
        if let Ok(KeyUrl {
            vault,
            name,
            version: Some(version),
        }) = KeyUrl::parse(kid)
        {
            return Kid::KeyVault {
                vault,
                name,
                version,
            };
        }
        if let Ok(Pkcs11Uri {
            token: Some(token),
            object: Some(object),
            id: Some(id),
        }) = Pkcs11Uri::parse(kid)
        {
            return Kid::Pkcs11 { token, object, id };
        }
        Kid::Other(kid.to_owned())
    }

    /// The key, without the version: `local:orders`, `https://{host}/keys/orders`,
    /// `pkcs11:token=…;object=…`, `branch:orders`; an other kid as it is.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Kid::Local(local) => format!("local:{}", local.name.as_str()),
            Kid::Branch(branch) => format!("branch:{}", branch.name.as_str()),
            Kid::KeyVault { vault, name, .. } => format!("{vault}/keys/{name}"),
            Kid::Pkcs11 { token, object, .. } => Pkcs11Uri {
                token: Some(token.clone()),
                object: Some(object.clone()),
                id: None,
            }
            .to_uri(),
            Kid::Other(text) => text.clone(),
        }
    }

    /// Whether this kid names a version of `key` (as [`Kid::key`] writes keys). Key Vault
    /// key names compare without regard to case, as the service treats them; an other kid
    /// names no key of ours.
    #[must_use]
    pub fn is_version_of(&self, key: &str) -> bool {
        match self {
            Kid::Other(_) => false,
            Kid::KeyVault { .. } => self.key().eq_ignore_ascii_case(key),
            _ => self.key() == key,
        }
    }

    /// The version: the keyring's or Key Vault's version string, a PKCS#11 `CKA_ID` in
    /// lowercase hex; `None` for an other kid.
    #[must_use]
    pub fn version(&self) -> Option<String> {
        match self {
            Kid::Local(local) => Some(local.version.as_str().to_owned()),
            Kid::Branch(branch) => Some(branch.version.as_str().to_owned()),
            Kid::KeyVault { version, .. } => Some(version.clone()),
            Kid::Pkcs11 { id, .. } => Some(id.iter().map(|b| format!("{b:02x}")).collect()),
            Kid::Other(_) => None,
        }
    }
}

impl std::fmt::Display for Kid {
    /// The kid in its canonical form (the one this crate writes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kid::Local(local) => write!(f, "{local}"),
            Kid::Branch(branch) => write!(f, "{branch}"),
            Kid::KeyVault {
                vault,
                name,
                version,
            } => write!(f, "{vault}/keys/{name}/{version}"),
            Kid::Pkcs11 { token, object, id } => f.write_str(
                &Pkcs11Uri {
                    token: Some(token.clone()),
                    object: Some(object.clone()),
                    id: Some(id.clone()),
                }
                .to_uri(),
            ),
            Kid::Other(text) => f.write_str(text),
        }
    }
}

/// A kid equals the text of its canonical form, so a kid returned by `create_key` or
/// `rotate_key` compares with the kid strings of slots and [`OpenInfo`](crate::OpenInfo).
impl PartialEq<str> for Kid {
    fn eq(&self, other: &str) -> bool {
        let canonical: String = self.to_string();
        canonical.as_str() == other
    }
}

impl PartialEq<&str> for Kid {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for Kid {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Kid> for str {
    fn eq(&self, other: &Kid) -> bool {
        other == self
    }
}

impl PartialEq<Kid> for &str {
    fn eq(&self, other: &Kid) -> bool {
        other == *self
    }
}

impl PartialEq<Kid> for String {
    fn eq(&self, other: &Kid) -> bool {
        other == self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::Kid;

    const VERSION: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn each_kind_parses_to_its_key_and_version_and_prints_back() {
        for (text, key, version) in [
            (
                format!("local:orders/{VERSION}"),
                "local:orders".to_owned(),
                Some(VERSION.to_owned()),
            ),
            (
                format!("https://contoso.vault.azure.net/keys/orders/{VERSION}"),
                "https://contoso.vault.azure.net/keys/orders".to_owned(),
                Some(VERSION.to_owned()),
            ),
            (
                format!("https://contoso-hsm.managedhsm.azure.net/keys/orders/{VERSION}"),
                "https://contoso-hsm.managedhsm.azure.net/keys/orders".to_owned(),
                Some(VERSION.to_owned()),
            ),
            (
                format!("branch:orders/{VERSION}"),
                "branch:orders".to_owned(),
                Some(VERSION.to_owned()),
            ),
            (
                "pkcs11:token=prod-hsm;object=orders;id=%00%00%00%01".to_owned(),
                "pkcs11:token=prod-hsm;object=orders".to_owned(),
                Some("00000001".to_owned()),
            ),
        ] {
            let kid = Kid::parse(&text);
            assert!(!matches!(kid, Kid::Other(_)), "{text}");
            assert_eq!(kid.key(), key);
            assert_eq!(kid.version(), version);
            assert_eq!(kid.to_string(), text);
        }
    }

    #[test]
    fn what_is_not_a_whole_kid_of_ours_is_other_and_kept() {
        for text in [
            "kms:alias/orders",
            "local:orders",
            "branch:orders",
            "local:bad name/0123",
            "https://contoso.vault.azure.net/keys/orders",
            "https://evil.example.com/keys/orders/0123456789abcdef0123456789abcdef",
            "pkcs11:token=prod-hsm;object=orders",
            "",
        ] {
            let kid = Kid::parse(text);
            assert_eq!(kid, Kid::Other(text.to_owned()), "{text}");
            assert_eq!(kid.key(), text);
            assert_eq!(kid.version(), None);
            assert_eq!(kid.to_string(), text);
        }
    }
}
