//! Key Vault keys in `cmke`: key URLs wherever a key is named, and the vault keys an
//! envelope's slots name when opening it.

use std::sync::Arc;

use cmk_envelope::format::Header;
use cmk_envelope::kid::Kid;
use cmk_envelope::wrap::KeyOpsLimit;
use cmk_envelope::KeyWrapper;

use crate::cli::args::AzureCredential;
use crate::cli::failure::Result;

/// Whether a `--key` or `--to` names a Key Vault key rather than a keyring key.
pub fn is_key_url(key: &str) -> bool {
    key.starts_with("https://")
}

/// The unversioned key URLs of the Key Vault slots of `header`, each once.
pub fn key_urls_in(header: &Header) -> Vec<String> {
    let mut urls: Vec<String> = header
        .slots()
        .iter()
        .map(|s| Kid::parse(s.kid()))
        .filter(|kid| matches!(kid, Kid::KeyVault { .. }))
        .map(|kid| kid.key())
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Connects to a Key Vault key (checking it against the CMK rules).
#[cfg(feature = "azure")]
pub async fn connect(
    url: &str,
    credential: AzureCredential,
    limit: Option<KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    use cmk_envelope::azure::KeyVaultWrapper;

    let (credential, options) = credential_and_options(credential, limit)?;
    let wrapper = KeyVaultWrapper::connect(url, credential, options).await?;
    Ok(Arc::new(wrapper))
}

/// A Key Vault key for opening what its slots name: no call until one is needed, and the
/// current version checked only when something is wrapped under it.
#[cfg(feature = "azure")]
pub fn connect_for_opening(
    url: &str,
    credential: AzureCredential,
    limit: Option<KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    use cmk_envelope::azure::KeyVaultWrapper;

    let (credential, options) = credential_and_options(credential, limit)?;
    Ok(Arc::new(KeyVaultWrapper::connect_lazily(
        url, credential, options,
    )?))
}

#[cfg(not(feature = "azure"))]
pub fn connect_for_opening(
    url: &str,
    credential: AzureCredential,
    limit: Option<KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    let _ = (credential, limit);
    Err(not_built(url))
}

#[cfg(not(feature = "azure"))]
fn not_built(url: &str) -> crate::cli::failure::Failure {
    crate::cli::failure::UsageError::new(format!(
        "{url} is a Key Vault key, and this cmke was built without feature `azure`"
    ))
    .into()
}

#[cfg(not(feature = "azure"))]
pub async fn connect(
    url: &str,
    _: AzureCredential,
    _: Option<KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    Err(not_built(url))
}

/// The branch key store in the blob container `url`, its requests carrying a token of the
/// operator's `--azure-credential`.
#[cfg(feature = "azure-blob")]
pub fn blob_store(
    url: &str,
    credential: AzureCredential,
) -> Result<Arc<dyn cmk_envelope::branch::BranchStore>> {
    let (credential, _) = credential_and_options(credential, None)?;
    Ok(Arc::new(cmk_envelope::branch::BlobStore::new(
        url, credential, None,
    )?))
}

#[cfg(not(feature = "azure-blob"))]
pub fn blob_store(
    url: &str,
    _: AzureCredential,
) -> Result<Arc<dyn cmk_envelope::branch::BranchStore>> {
    Err(crate::cli::failure::UsageError::new(format!(
        "{url} is a blob container store, and this cmke was built without feature `azure-blob`"
    ))
    .into())
}

/// The blob container `url` names and the blob (or prefix) in it; its requests carry a
/// token of the operator's `--azure-credential`.
#[cfg(feature = "azure-blob")]
pub fn blob_container(
    url: &str,
    credential: AzureCredential,
) -> Result<(cmk_envelope::blob::BlobContainer, String)> {
    let parsed = cmk_envelope::blob::BlobUrl::parse(url)?;
    let (credential, _) = credential_and_options(credential, None)?;
    let container =
        cmk_envelope::blob::BlobContainer::new(parsed.container_url(), credential, None)?;
    Ok((container, parsed.name().to_owned()))
}

#[cfg(feature = "azure")]
fn credential_and_options(
    choice: AzureCredential,
    limit: Option<KeyOpsLimit>,
) -> Result<(
    Arc<dyn azure_core::credentials::TokenCredential>,
    cmk_envelope::azure::KeyVaultOptions,
)> {
    let mut options = cmk_envelope::azure::KeyVaultOptions::default();
    if let Some(limit) = limit {
        options = options.max_key_ops(limit);
    }
    #[allow(unused_mut)]
    let mut login = azure_core::http::ClientOptions::default();
    #[cfg(feature = "insecure-loopback-vault")]
    if let Some(loopback) = insecure_loopback()? {
        // Only the transport changes: the retries are those a production cmke uses.
        options = options.transport(loopback.transport.clone());
        login.transport = Some(loopback.transport);
        if let Some(token) = loopback.fixed_token {
            return Ok((
                cmk_envelope::azure::loopback::FixedTokenCredential::new(token),
                options,
            ));
        }
    }
    Ok((
        crate::keys::azure_login::credential(choice, login)?,
        options,
    ))
}

/// Test builds only: what `CMKE_INSECURE_LOOPBACK_VAULT` sets up.
#[cfg(feature = "insecure-loopback-vault")]
struct Loopback {
    transport: azure_core::http::Transport,
    /// `CMKE_INSECURE_LOOPBACK_TOKEN`: a fixed token instead of `--azure-credential`.
    fixed_token: Option<String>,
}

/// Test builds only: `CMKE_INSECURE_LOOPBACK_VAULT=host=port[,host=port]` sends requests for
/// those hosts (vaults, and the login host of `--azure-credential`) to plain HTTP on
/// 127.0.0.1; with `CMKE_INSECURE_LOOPBACK_TOKEN`, every vault request carries that token
/// instead of one from the credential (see `cmk_envelope::azure::loopback`).
#[cfg(feature = "insecure-loopback-vault")]
fn insecure_loopback() -> Result<Option<Loopback>> {
    use cmk_envelope::azure::loopback::LoopbackTransport;

    let Ok(spec) = std::env::var("CMKE_INSECURE_LOOPBACK_VAULT") else {
        return Ok(None);
    };
    let bad = || {
        crate::cli::failure::UsageError::new(format!(
            "CMKE_INSECURE_LOOPBACK_VAULT={spec}: expected host=port[,host=port]"
        ))
    };
    let mut ports = Vec::new();
    for pair in spec.split(',') {
        let (host, port) = pair.split_once('=').ok_or_else(bad)?;
        ports.push((host.to_owned(), port.parse::<u16>().map_err(|_| bad())?));
    }
    Ok(Some(Loopback {
        transport: azure_core::http::Transport::new(LoopbackTransport::new(ports)),
        fixed_token: std::env::var("CMKE_INSECURE_LOOPBACK_TOKEN").ok(),
    }))
}
