//! The URL of a branch key store in Azure Blob Storage: a container, and a prefix in it.

use crate::error::{Error, Result};

/// A parsed store URL: `https://{account}.blob.core.windows.net/{container}[/{prefix}]`,
/// or, for a storage emulator reached by IP address or `localhost`, the path-style
/// `https://127.0.0.1:{port}/{account}/{container}[/{prefix}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobStoreUrl {
    /// `https://host[:port]/[account/]container`, what the container client is made with.
    pub(crate) container_url: String,
    /// The prefix of every blob name, ending in `/` unless empty.
    pub(crate) prefix: String,
}

/// Container names: 3 to 63 lowercase letters, digits and single hyphens between them.
fn valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Prefix segments: what blob names may hold, with nothing that a path would resolve.
fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment.len() <= 255
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl BlobStoreUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything but HTTPS (the operator's token would travel
    /// in clear), a URL carrying a user, query or fragment (a SAS token is a credential,
    /// and credentials are the operator's `TokenCredential`), a missing or invalid
    /// container name, or a prefix segment with other characters than letters, digits,
    /// `-`, `_` and `.`.
    pub(crate) fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "{}: not a blob container store ({why}); expected \
                 https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]",
                crate::redact::urls(url)
            ))
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// is accepted"))?;
        if rest.contains(['?', '#', '@', '\\', '%']) {
            return Err(bad(
                "no user, query (a SAS token), fragment or escapes: the credential is the \
                 operator's",
            ));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(']') || host.ends_with(']') => {
                if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the port is not a number"));
                }
                host
            }
            _ => authority,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let emulator = host == "localhost"
            || host.parse::<std::net::Ipv4Addr>().is_ok()
            || host.starts_with('[');
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let account = if emulator {
            let account = segments
                .next()
                .ok_or_else(|| bad("an emulator URL names the account first"))?;
            if !account.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(bad("the account name is letters and digits"));
            }
            Some(account)
        } else {
            if host.len() > 253
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(bad("the host name"));
            }
            None
        };
        let container = segments.next().ok_or_else(|| bad("no container"))?;
        if !valid_container(container) {
            return Err(bad(
                "a container name is 3 to 63 lowercase letters, digits and single hyphens",
            ));
        }
        let mut prefix = String::new();
        for segment in segments {
            if !valid_segment(segment) {
                return Err(bad("a prefix segment is letters, digits, '-', '_' and '.'"));
            }
            prefix.push_str(segment);
            prefix.push('/');
        }
        let container_url = match account {
            Some(account) => format!("https://{authority}/{account}/{container}"),
            None => format!("https://{authority}/{container}"),
        };
        Ok(Self {
            container_url,
            prefix,
        })
    }
}

/// The SDK's client for the container `parsed` (from `url`) names.
///
/// # Errors
/// [`Error::InvalidArgument`] when the SDK does not take the URL; [`Error::Backend`] when it
/// refuses the settings.
pub(crate) fn container_client(
    url: &str,
    parsed: &BlobStoreUrl,
    credential: std::sync::Arc<dyn azure_core::credentials::TokenCredential>,
    options: Option<azure_storage_blob::BlobContainerClientOptions>,
) -> Result<azure_storage_blob::BlobContainerClient> {
    let container_url = parsed.container_url.parse().map_err(|e| {
        Error::InvalidArgument(format!(
            "{}: not a URL the SDK accepts: {e}",
            crate::redact::urls(url)
        ))
    })?;
    azure_storage_blob::BlobContainerClient::new(container_url, Some(credential), options).map_err(
        |e| Error::Backend {
            backend: "azure-blob",
            message: format!("{}: {e}", crate::redact::urls(url)),
        },
    )
}

/// A blob's URL, split into its container and its name:
/// `https://{account}.blob.core.windows.net/{container}/{name}`, or path-style for an
/// emulator. The name's segments are letters, digits, `-`, `_` and `.` (no escapes, no
/// query: a SAS token is refused, the credential is the caller's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobUrl {
    container_url: String,
    name: String,
}

impl BlobUrl {
    /// Parses `url`; the name may be empty (a whole container) and, for a listing, is a
    /// prefix.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] as for [`super::BlobContainer::new`], or for a name
    /// segment with other characters.
    pub fn parse(url: &str) -> Result<Self> {
        let parsed = BlobStoreUrl::parse(url)?;
        Ok(Self {
            container_url: parsed.container_url,
            name: parsed.prefix.trim_end_matches('/').to_owned(),
        })
    }

    /// The container's URL, for [`super::BlobContainer::new`].
    #[must_use]
    pub fn container_url(&self) -> &str {
        &self.container_url
    }

    /// The blob's name in the container (empty for the container itself).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, String) {
        let parsed = BlobStoreUrl::parse(url).expect(url);
        (parsed.container_url, parsed.prefix)
    }

    #[test]
    fn account_urls_and_emulator_urls() {
        assert_eq!(
            parsed("https://acct.blob.core.windows.net/branches"),
            (
                "https://acct.blob.core.windows.net/branches".into(),
                String::new()
            )
        );
        assert_eq!(
            parsed("https://acct.blob.core.windows.net/branches/fleet/eu-1/"),
            (
                "https://acct.blob.core.windows.net/branches".into(),
                "fleet/eu-1/".into()
            )
        );
        assert_eq!(
            parsed("https://127.0.0.1:10000/devstoreaccount1/branches/p"),
            (
                "https://127.0.0.1:10000/devstoreaccount1/branches".into(),
                "p/".into()
            )
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for url in [
            "http://acct.blob.core.windows.net/branches",
            "https://acct.blob.core.windows.net/",
            "https://acct.blob.core.windows.net/Branches",
            "https://acct.blob.core.windows.net/ab",
            "https://acct.blob.core.windows.net/a--b",
            "https://acct.blob.core.windows.net/branches?sv=2024&sig=x",
            "https://acct.blob.core.windows.net/branches#x",
            "https://user@acct.blob.core.windows.net/branches",
            "https://acct.blob.core.windows.net/branches/../other",
            "https://acct.blob.core.windows.net/branches/a%2Fb",
            "https://acct.blob.core.windows.net:x/branches",
            "https://127.0.0.1:10000/branches",
            "/var/lib/branches",
        ] {
            assert!(
                matches!(BlobStoreUrl::parse(url), Err(Error::InvalidArgument(_))),
                "{url}"
            );
        }
    }
}
