//! A branch key store in an Azure Blob Storage container (feature `azure-blob`), through
//! the official `azure_storage_blob` crate and the caller's Entra ID credential.

use std::num::NonZero;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{Etag, RequestContent, StatusCode};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobContainerClientListBlobsOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use futures::TryStreamExt;

use super::store::{BranchStore, StoredCurrent, StoredRecord};
use crate::blob::errors::{container_missing, storage_error};
use crate::blob::url::BlobStoreUrl;
use crate::error::{Error, Result};
use crate::kid::{KeyName, KeyVersion};

const BACKEND: &str = "azure-blob";
const CURRENT_BLOB: &str = "current";
const RECORD_SUFFIX: &str = ".cmke";
/// A record is an envelope of 32 bytes with a few slots; anything bigger is not one, and
/// is not downloaded.
const MAX_BLOB_LEN: usize = 64 * 1024;

/// Branch key records in an Azure Blob Storage container:
/// `{prefix}{name}/{version}.cmke` and `{prefix}{name}/current`, as in a directory.
///
/// Records are created with `If-None-Match: *`, so a version is never overwritten;
/// `current` moves only with `If-Match` on the ETag it was read with, so two machines
/// rotating at once cannot both win: one gets [`Error::Conflict`] and nothing is lost.
/// Requests carry a bearer token from the caller's credential (the one Key Vault uses);
/// the identity needs *Storage Blob Data Contributor* on the container to create and
/// rotate, *Storage Blob Data Reader* to open.
///
/// ```no_run
/// # async fn demo(cmk: std::sync::Arc<dyn cmk_envelope::KeyWrapper>) -> cmk_envelope::Result<()> {
/// use std::sync::Arc;
/// use azure_identity::ManagedIdentityCredential;
/// use cmk_envelope::branch::{BlobStore, BranchWrapper};
///
/// let credential = ManagedIdentityCredential::new(None).expect("credential");
/// let store = Arc::new(BlobStore::new(
///     "https://contoso.blob.core.windows.net/branch-keys/orders-service",
///     credential,
///     None,
/// )?);
/// let branch = BranchWrapper::new(store, "orders", cmk)?; // cmk: any KeyWrapper
/// # Ok(()) }
/// ```
pub struct BlobStore {
    location: String,
    prefix: String,
    container: BlobContainerClient,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// A store in the container (and under the prefix) `url` names:
    /// `https://{account}.blob.core.windows.net/{container}[/{prefix}]`, or the path-style
    /// `https://{ip or localhost}:{port}/{account}/{container}[/{prefix}]` of an emulator.
    /// No request is made until the store is used.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not HTTPS, carries a query (a SAS
    /// token: the credential is `credential`, never the URL), or names no valid container;
    /// [`Error::Backend`] when the SDK refuses the settings.
    pub fn new(
        url: &str,
        credential: Arc<dyn TokenCredential>,
        options: Option<BlobContainerClientOptions>,
    ) -> Result<Self> {
        let parsed = BlobStoreUrl::parse(url)?;
        let container = crate::blob::url::container_client(url, &parsed, credential, options)?;
        Ok(Self {
            location: format!("{}/{}", parsed.container_url, parsed.prefix)
                .trim_end_matches('/')
                .to_owned(),
            prefix: parsed.prefix,
            container,
        })
    }

    fn record_blob(&self, name: &KeyName, version: &KeyVersion) -> String {
        format!("{}{name}/{version}{RECORD_SUFFIX}", self.prefix)
    }

    fn current_blob(&self, name: &KeyName) -> String {
        format!("{}{name}/{CURRENT_BLOB}", self.prefix)
    }

    fn url_of(&self, blob: &str) -> String {
        format!(
            "{}/{blob}",
            self.container.url().as_str().trim_end_matches('/')
        )
    }

    /// The blob's bytes and ETag; `None` when it does not exist.
    async fn download(&self, blob: &str) -> Result<Option<(Vec<u8>, String)>> {
        let client = self.container.blob_client(blob);
        let options = BlobClientDownloadOptions {
            // One request: a record is small, and one response is one version of it.
            parallel: NonZero::new(1),
            partition_size: NonZero::new(MAX_BLOB_LEN + 1),
            ..Default::default()
        };
        let response = match client.download(Some(options)).await {
            Ok(response) => response,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) && !container_missing(&e) => {
                return Ok(None)
            }
            Err(e) => return Err(store_error(e, &self.url_of(blob), "reading")),
        };
        let too_big = || Error::Backend {
            backend: BACKEND,
            message: format!(
                "{}: larger than {MAX_BLOB_LEN} bytes, so not a record or pointer of this store",
                self.url_of(blob)
            ),
        };
        if response
            .properties
            .content_length
            .is_some_and(|len| len > MAX_BLOB_LEN as u64)
        {
            return Err(too_big());
        }
        let etag = response
            .properties
            .etag
            .clone()
            .ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: format!("{}: the service sent no ETag", self.url_of(blob)),
            })?;
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| store_error(e, &self.url_of(blob), "reading"))?;
        if bytes.len() > MAX_BLOB_LEN {
            return Err(too_big());
        }
        Ok(Some((bytes.to_vec(), etag.to_string())))
    }

    /// Writes `blob` with the given condition; a failed condition is [`Error::Conflict`]
    /// saying `why`.
    async fn upload(
        &self,
        blob: &str,
        bytes: &[u8],
        condition: Condition<'_>,
        why: &str,
    ) -> Result<()> {
        let client = self.container.blob_client(blob);
        let mut options = BlockBlobClientUploadOptions::default();
        match condition {
            Condition::Absent => options.if_none_match = Some(Etag::from("*")),
            Condition::Tagged(tag) => options.if_match = Some(Etag::from(tag)),
        }
        match client
            .upload(RequestContent::from(bytes.to_vec()), Some(options))
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                ) =>
            {
                Err(Error::Conflict {
                    what: self.url_of(blob),
                    detail: why.to_owned(),
                })
            }
            Err(e) => Err(store_error(e, &self.url_of(blob), "writing")),
        }
    }

    /// The names of the blobs under `prefix` (relative to the store's prefix).
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let full = format!("{}{prefix}", self.prefix);
        let options = BlobContainerClientListBlobsOptions {
            prefix: Some(full.clone()),
            ..Default::default()
        };
        let failed = |e| store_error(e, &self.location, "listing");
        let mut pager = self.container.list_blobs(Some(options)).map_err(failed)?;
        let mut names = Vec::new();
        while let Some(item) = pager.try_next().await.map_err(failed)? {
            if let Some(name) = item
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix(&self.prefix))
            {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }
}

enum Condition<'a> {
    Absent,
    Tagged(&'a str),
}

/// What a failed call means for the store's caller.
fn store_error(error: azure_core::Error, url: &str, doing: &str) -> Error {
    match storage_error(
        error,
        url,
        doing,
        "the identity needs Storage Blob Data Reader on the container to open, Contributor \
         to create and rotate",
    ) {
        // A store's missing container is a missing key, as a missing record is.
        Error::NotFound { what, detail } => Error::KeyNotFound { kid: what, detail },
        other => other,
    }
}

#[async_trait]
impl BranchStore for BlobStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn read_record(&self, name: &KeyName, version: &KeyVersion) -> Result<StoredRecord> {
        let blob = self.record_blob(name, version);
        match self.download(&blob).await? {
            Some((bytes, tag)) => Ok(StoredRecord { bytes, tag }),
            None => Err(Error::KeyNotFound {
                kid: format!("branch:{name}/{version}"),
                detail: format!("no record {}", self.url_of(&blob)),
            }),
        }
    }

    async fn create_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
    ) -> Result<()> {
        self.upload(
            &self.record_blob(name, version),
            record,
            Condition::Absent,
            "a record of this version exists",
        )
        .await
    }

    async fn replace_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
        tag: &str,
    ) -> Result<()> {
        self.upload(
            &self.record_blob(name, version),
            record,
            Condition::Tagged(tag),
            "the record changed since it was read",
        )
        .await
    }

    async fn read_current(&self, name: &KeyName) -> Result<StoredCurrent> {
        let blob = self.current_blob(name);
        let Some((bytes, tag)) = self.download(&blob).await? else {
            return Err(Error::KeyNotFound {
                kid: format!("branch:{name}"),
                detail: format!("no branch key {name} in {}", self.location),
            });
        };
        let version = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| KeyVersion::new(text.trim()).ok())
            .ok_or_else(|| {
                Error::InvalidKey(format!(
                    "{} does not hold a version (32 lowercase hex characters)",
                    self.url_of(&blob)
                ))
            })?;
        Ok(StoredCurrent { version, tag })
    }

    async fn set_current(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        expected: Option<&StoredCurrent>,
    ) -> Result<()> {
        let (condition, why) = match expected {
            None => (Condition::Absent, format!("branch key {name} exists")),
            Some(current) => (
                Condition::Tagged(&current.tag),
                format!(
                    "another rotation moved it first (it was {} when read)",
                    current.version
                ),
            ),
        };
        self.upload(
            &self.current_blob(name),
            format!("{version}\n").as_bytes(),
            condition,
            &why,
        )
        .await
    }

    async fn names(&self) -> Result<Vec<KeyName>> {
        let mut names: Vec<KeyName> = self
            .list("")
            .await?
            .iter()
            .filter_map(|blob| blob.split_once('/'))
            .filter_map(|(name, _)| KeyName::new(name).ok())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>> {
        let under = format!("{name}/");
        let mut versions: Vec<KeyVersion> = self
            .list(&under)
            .await?
            .iter()
            .filter_map(|blob| blob.strip_prefix(&under)?.strip_suffix(RECORD_SUFFIX))
            .filter_map(|version| KeyVersion::new(version).ok())
            .collect();
        versions.sort();
        Ok(versions)
    }
}
