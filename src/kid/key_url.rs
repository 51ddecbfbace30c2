//! Key Vault and Managed HSM key URLs: `https://{vault}.vault.azure.net/keys/{name}[/{version}]`.
//!
//! Parsing only, no I/O: the URL names the vault (the rotation domain), the key, and
//! optionally the version. A slot's kid is always the versioned form.

use crate::error::{Error, Result};

/// Host suffixes of Key Vault and Managed HSM in Azure's clouds. A key URL on any other host
/// is refused: the credential's token must never be sent to a look-alike.
const VAULT_HOST_SUFFIXES: [&str; 6] = [
    ".vault.azure.net",
    ".managedhsm.azure.net",
    ".vault.azure.cn",
    ".managedhsm.azure.cn",
    ".vault.usgovcloudapi.net",
    ".managedhsm.usgovcloudapi.net",
];

/// A parsed key URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyUrl {
    /// `https://{host}`, no trailing slash: the vault, and the rotation domain.
    pub(crate) vault: String,
    pub(crate) name: String,
    pub(crate) version: Option<String>,
}

impl KeyUrl {
    /// Parses `https://{host}/keys/{name}` or `https://{host}/keys/{name}/{version}`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming what is wrong: scheme, host, path, name or version.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::InvalidArgument(format!("key URL {}: {why}", crate::redact::urls(url)))
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| invalid("must start with https://"))?;
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("no /keys/{name} path"))?;
        let host = host.to_ascii_lowercase();
        let host_ok = VAULT_HOST_SUFFIXES
            .iter()
            .any(|suffix| host.len() > suffix.len() && host.ends_with(suffix))
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !host_ok {
            return Err(invalid(
                "host is not a Key Vault or Managed HSM host (*.vault.azure.net, \
                 *.managedhsm.azure.net, or their sovereign-cloud forms)",
            ));
        }
        let path = path.trim_end_matches('/');
        let mut parts = path.split('/');
        if parts.next() != Some("keys") {
            return Err(invalid("path must be /keys/{name}[/{version}]"));
        }
        let name = parts
            .next()
            .filter(|n| valid_name(n))
            .ok_or_else(|| invalid("key name must be 1-127 of A-Z, a-z, 0-9 and -"))?;
        let version = match parts.next() {
            None => None,
            Some(v) if valid_version(v) => Some(v.to_owned()),
            Some(_) => return Err(invalid("version must be 32 hexadecimal characters")),
        };
        if parts.next().is_some() {
            return Err(invalid("path must be /keys/{name}[/{version}]"));
        }
        Ok(Self {
            vault: format!("https://{host}"),
            name: name.to_owned(),
            version,
        })
    }

    /// The versioned kid of `version` of this key.
    #[cfg(feature = "azure")]
    pub(crate) fn kid(&self, version: &str) -> String {
        format!("{}/keys/{}/{}", self.vault, self.name, version)
    }

    /// Whether `kid` names a version of this key (same vault, same name), and which.
    #[cfg(feature = "azure")]
    pub(crate) fn version_in(&self, kid: &str) -> Option<String> {
        match KeyUrl::parse(kid) {
            Ok(KeyUrl {
                vault,
                name,
                version: Some(version),
            }) if vault == self.vault && name.eq_ignore_ascii_case(&self.name) => Some(version),
            _ => None,
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_version(version: &str) -> bool {
    version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_versioned_and_unversioned_urls_on_vault_and_hsm_hosts() {
        let url = KeyUrl::parse(&format!("https://Contoso.vault.azure.net/keys/orders/{V}"));
        assert_eq!(
            url.ok(),
            Some(KeyUrl {
                vault: "https://contoso.vault.azure.net".into(),
                name: "orders".into(),
                version: Some(V.into()),
            })
        );
        let hsm = KeyUrl::parse("https://contoso.managedhsm.azure.net/keys/orders/");
        assert!(matches!(hsm, Ok(KeyUrl { version: None, .. })));
    }

    #[test]
    fn refuses_other_hosts_schemes_and_paths() {
        for bad in [
            "http://contoso.vault.azure.net/keys/orders",
            "https://vault.azure.net/keys/orders",
            "https://contoso.vault.azure.net.evil.com/keys/orders",
            "https://evil.com/keys/orders",
            "https://contoso.vault.azure.net/secrets/orders",
            "https://contoso.vault.azure.net/keys/",
            "https://contoso.vault.azure.net/keys/or_ders",
            "https://contoso.vault.azure.net/keys/orders/xyz",
            &format!("https://contoso.vault.azure.net/keys/orders/{V}/wrapkey"),
            "https://contoso.vault.azure.net:8443@evil.com/keys/orders",
        ] {
            assert!(
                matches!(KeyUrl::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    #[cfg(feature = "azure")]
    fn recognises_its_own_kids_only() {
        let url = KeyUrl::parse("https://contoso.vault.azure.net/keys/orders").expect("url");
        assert_eq!(
            url.kid(V),
            format!("https://contoso.vault.azure.net/keys/orders/{V}")
        );
        assert_eq!(url.version_in(&url.kid(V)).as_deref(), Some(V));
        assert_eq!(
            url.version_in(&format!("https://other.vault.azure.net/keys/orders/{V}")),
            None
        );
        assert_eq!(
            url.version_in(&format!("https://contoso.vault.azure.net/keys/billing/{V}")),
            None
        );
        assert_eq!(url.version_in("local:orders/0123"), None);
        assert_eq!(
            url.version_in("https://contoso.vault.azure.net/keys/orders"),
            None
        );
    }
}
