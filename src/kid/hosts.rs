//! The key service a kid or URL names: a vault's host, a PKCS#11 token's label.

/// The scheme of every Key Vault kid and key URL.
pub(crate) const VAULT_SCHEME: &str = "https://";

/// The host (lower case) of an `https://` URL or Key Vault kid.
#[must_use]
pub fn vault_host_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix(VAULT_SCHEME)?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!host.is_empty() && !host.contains('@')).then(|| host.to_ascii_lowercase())
}

/// The token label of a `pkcs11:` URI or kid (its `token=` attribute, percent-decoded).
#[must_use]
pub fn pkcs11_token_of(uri: &str) -> Option<String> {
    // The one RFC 7512 parser: a URI it cannot read names no token, and is refused.
    super::Pkcs11Uri::parse(uri).ok()?.token
}
