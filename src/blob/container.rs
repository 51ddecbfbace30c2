//! [`BlobContainer`]: one container of envelopes, through the official `azure_storage_blob`
//! client and the caller's Entra ID credential.

use std::collections::HashMap;
use std::num::NonZero;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{Etag, StatusCode};
use azure_storage_blob::models::{BlobClientDownloadOptions, BlobType, HttpRange};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};

use super::errors::{container_missing, storage_error};
use super::url::BlobStoreUrl;
use crate::error::{Error, Result};
use crate::format::limits::MAX_HEADER_LEN;
use crate::format::{header_len, Header, HeaderLen};

/// The first request for a header asks for this many bytes: a one-slot header under a
/// keyring or Key Vault key fits, so a header usually costs one request and at most this
/// much more than its length; more slots cost one more request.
const HEADER_FIRST_READ: u64 = 512;
const READER_ROLE: &str = "the identity needs Storage Blob Data Reader on the container";
const WRITER_ROLE: &str = "the identity needs Storage Blob Data Contributor on the container";

/// One container of envelopes in Azure Blob Storage (feature `azure-blob`).
///
/// Each blob's content is an attached envelope (header ‖ body), so any copy tool keeps it
/// whole. The client uploads as it seals ([`BlobContainer::upload`]), downloads as it
/// verifies ([`BlobContainer::download`]), reads plaintext ranges by HTTP range
/// ([`BlobContainer::download_range`]) and re-wraps by replacing the header block alone
/// ([`BlobContainer::rewrap`]).
///
/// Requests carry a bearer token from the caller's credential; the URL never carries one (a
/// SAS token or a user in the URL is refused). The identity needs *Storage Blob Data
/// Reader* on the container to download, *Storage Blob Data Contributor* to upload and
/// re-wrap.
///
/// ```no_run
/// # async fn demo(envelope: cmk_envelope::Envelope) -> cmk_envelope::Result<()> {
/// use azure_identity::ManagedIdentityCredential;
/// use cmk_envelope::blob::{BlobContainer, UploadOptions};
///
/// let credential = ManagedIdentityCredential::new(None).expect("credential");
/// let container = BlobContainer::new(
///     "https://contoso.blob.core.windows.net/invoices",
///     credential,
///     None,
/// )?;
/// let pdf: &[u8] = b"%PDF-1.7 ..."; // any tokio AsyncRead: a file, a socket
/// container
///     .upload(&envelope, "2026/12.pdf", pdf, b"", UploadOptions::default())
///     .await?;
/// let part = container
///     .download_range(&envelope, "2026/12.pdf", b"", 0..4096)
///     .await?;
/// # let _ = part; Ok(()) }
/// ```
pub struct BlobContainer {
    pub(super) client: BlobContainerClient,
    /// The container's URL, for messages.
    pub(super) location: String,
}

impl std::fmt::Debug for BlobContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContainer")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What was read of a blob's head ([`BlobContainer::head`]): its header, its length and
/// version, and the properties a re-wrap keeps.
pub struct BlobHead {
    pub(super) name: String,
    pub(super) header: Header,
    pub(super) header_bytes: Vec<u8>,
    pub(super) etag: Etag,
    pub(super) content_length: u64,
    pub(super) properties: KeptProperties,
    pub(super) tag_count: i64,
    /// For a blob of the Azure SDKs' client-side encryption v2: its encryption data.
    pub(super) cse: Option<super::cse::CseData>,
}

impl std::fmt::Debug for BlobHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobHead")
            .field("name", &self.name)
            .field("len", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl BlobHead {
    /// The blob's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed header. For a blob of the Azure SDKs' client-side encryption v2, a header
    /// that describes its one key slot (the `KeyId`, algorithm and wrapped key of its
    /// `encryptiondata`), not bytes of the blob: what tells which keys open it.
    #[must_use]
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// `Some("2.0")` or `Some("2.1")` for a blob written by the Azure Storage SDKs'
    /// client-side encryption; `None` for an envelope.
    #[must_use]
    pub fn client_side_encryption(&self) -> Option<&'static str> {
        self.cse.as_ref().map(|cse| cse.protocol)
    }

    /// The header's bytes (for a client-side encrypted blob, of the describing header).
    #[must_use]
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The blob's whole length.
    #[must_use]
    pub fn blob_len(&self) -> u64 {
        self.content_length
    }

    /// The ETag of the version read.
    #[must_use]
    pub fn etag(&self) -> String {
        self.etag.to_string()
    }
}

/// What [`BlobContainer::inspect`] tells about a blob, by its format (`"format"` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "format")]
#[non_exhaustive]
pub enum BlobInfo {
    /// An envelope of this crate.
    #[serde(rename = "cmke-v1")]
    Envelope(crate::inspect::HeaderInfo),
    /// A blob of the Azure Storage SDKs' client-side encryption v2.
    #[serde(rename = "azure-client-side-encryption")]
    ClientSideEncryption {
        /// "2.0" or "2.1".
        protocol: &'static str,
        /// The `KeyId` of its wrapped key: the kid a key of this crate answers to.
        key_id: String,
        /// The key version the `KeyId` names, when it is a kid of this crate's grammar.
        version: Option<String>,
        /// The key wrap algorithm.
        algorithm: crate::format::WrapAlgorithm,
        /// Plaintext bytes per region.
        region_len: u64,
        /// The blob's length.
        blob_len: u64,
        /// The plaintext length; `None` when the length is no whole number of regions.
        plaintext_len: Option<u64>,
    },
}

/// One blob of a listing ([`BlobContainer::list`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlobEntry {
    /// The blob's name.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// Whether it is a block blob (envelopes are).
    pub block_blob: bool,
}

/// What a rewrite of a blob must hand back to the service, or lose.
#[derive(Debug, Clone, Default)]
pub(super) struct KeptProperties {
    pub(super) metadata: HashMap<String, String>,
    pub(super) content_type: Option<String>,
    pub(super) content_encoding: Option<String>,
    pub(super) content_language: Option<String>,
    pub(super) content_disposition: Option<String>,
    pub(super) cache_control: Option<String>,
}

impl KeptProperties {
    pub(super) fn from_download(
        properties: &azure_storage_blob::models::BlobDownloadProperties,
    ) -> Self {
        Self {
            metadata: properties.metadata.clone(),
            content_type: properties.content_type.clone(),
            content_encoding: properties.content_encoding.clone(),
            content_language: properties.content_language.clone(),
            content_disposition: properties.content_disposition.clone(),
            cache_control: properties.cache_control.clone(),
        }
    }
}

impl BlobContainer {
    /// A client for the container `url` names: `https://{account}.blob.core.windows.net/
    /// {container}`, or the path-style `https://{ip or localhost}:{port}/{account}/
    /// {container}` of an emulator. No request is made until it is used.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a URL that is not HTTPS, carries a user, query (a SAS
    /// token: the credential is `credential`, never the URL) or fragment, names a path
    /// below the container, or no valid container; [`Error::Backend`] when the SDK refuses
    /// the settings.
    pub fn new(
        url: &str,
        credential: Arc<dyn TokenCredential>,
        options: Option<BlobContainerClientOptions>,
    ) -> Result<Self> {
        let parsed = BlobStoreUrl::parse(url)?;
        if !parsed.prefix.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{}: a container URL ends at the container; blob names are given to each call",
                crate::redact::urls(url)
            )));
        }
        let client = super::url::container_client(url, &parsed, credential, options)?;
        Ok(Self {
            client,
            location: parsed.container_url,
        })
    }

    /// The container's URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.location
    }

    /// The URL of blob `name`, for messages and reports.
    #[must_use]
    pub fn blob_url(&self, name: &str) -> String {
        format!("{}/{name}", self.location)
    }

    /// Blob `name`'s header bytes (one request for most headers): to learn which keys it
    /// needs before opening it.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the blob is no envelope; the service's errors as for
    /// [`BlobContainer::download`].
    pub async fn read_header(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.head(name).await?.header_bytes)
    }

    /// The blobs whose names start with `prefix`, page by page as the listing is read
    /// (5,000 names a page), so a container of any size is walked in bounded memory.
    ///
    /// # Errors
    /// Each item is an error when a page cannot be read: access denied, a missing
    /// container ([`Error::NotFound`]), throttled or unavailable.
    pub fn list<'a>(&'a self, prefix: &str) -> futures::stream::BoxStream<'a, Result<BlobEntry>> {
        use futures::StreamExt;
        let options = azure_storage_blob::models::BlobContainerClientListBlobsOptions {
            prefix: (!prefix.is_empty()).then(|| prefix.to_owned()),
            ..Default::default()
        };
        let location = self.location.clone();
        let failed = move |e: azure_core::Error| {
            if e.http_status() == Some(StatusCode::NotFound) {
                return Error::NotFound {
                    what: location.clone(),
                    detail: "the container does not exist".to_owned(),
                };
            }
            storage_error(e, &location, "listing", READER_ROLE)
        };
        match self.client.list_blobs(Some(options)) {
            Err(e) => futures::stream::once(async move { Err(failed(e)) }).boxed(),
            Ok(pager) => pager
                .filter_map(move |item| {
                    let entry = match item {
                        Err(e) => Some(Err(failed(e))),
                        Ok(item) => item.name.map(|name| {
                            let properties = item.properties.unwrap_or_default();
                            Ok(BlobEntry {
                                name,
                                len: properties.content_length.unwrap_or(0),
                                block_blob: properties
                                    .blob_type
                                    .is_none_or(|t| t == BlobType::BlockBlob),
                            })
                        }),
                    };
                    std::future::ready(entry)
                })
                .boxed(),
        }
    }

    /// Describes blob `name` from its header (or its client-side encryption data) and
    /// length alone, with no key (as [`crate::inspect::inspect`] does a file).
    ///
    /// # Errors
    /// As [`BlobContainer::read_header`].
    pub async fn inspect(&self, name: &str) -> Result<BlobInfo> {
        let head = self.head(name).await?;
        if let Some(cse) = &head.cse {
            return Ok(BlobInfo::ClientSideEncryption {
                protocol: cse.protocol,
                key_id: cse.slot.kid().to_owned(),
                version: crate::kid::Kid::parse(cse.slot.kid()).version(),
                algorithm: cse.slot.algorithm(),
                region_len: cse.region_len,
                blob_len: head.content_length,
                plaintext_len: cse.plaintext_len(head.content_length).ok(),
            });
        }
        let header_len = head.header_bytes.len();
        crate::inspect::describe(
            &head.header,
            header_len,
            head.content_length.saturating_sub(header_len as u64),
        )
        .map(BlobInfo::Envelope)
    }

    /// The SDK's client for blob `name`, once the name is checked.
    pub(super) fn blob(&self, name: &str) -> Result<BlobClient> {
        check_blob_name(name)?;
        Ok(self.client.blob_client(name))
    }

    /// A failed call on blob `name`, for a reader (`write` false) or a writer.
    pub(super) fn failed(&self, name: &str, write: bool) -> impl Fn(azure_core::Error) -> Error {
        let url = self.blob_url(name);
        move |e| {
            let doing = if write { "writing" } else { "reading" };
            let role = if write { WRITER_ROLE } else { READER_ROLE };
            if e.http_status() == Some(StatusCode::NotFound) && container_missing(&e) {
                return Error::NotFound {
                    what: url.clone(),
                    detail: "the container does not exist".to_owned(),
                };
            }
            storage_error(e, &url, doing, role)
        }
    }

    /// Bytes `range` of blob `name`, only as long as its ETag is `etag`.
    pub(super) async fn read_bytes(
        &self,
        name: &str,
        range: std::ops::Range<u64>,
        etag: &Etag,
    ) -> Result<Vec<u8>> {
        let len = range.end.saturating_sub(range.start);
        if len == 0 {
            return Ok(Vec::new());
        }
        let options = BlobClientDownloadOptions {
            range: Some(HttpRange::new(range.start, len)),
            if_match: Some(etag.clone()),
            parallel: NonZero::new(1),
            partition_size: usize::try_from(len).ok().and_then(NonZero::new),
            ..Default::default()
        };
        let failed = self.failed(name, false);
        let response = self
            .blob(name)?
            .download(Some(options))
            .await
            .map_err(&failed)?;
        let bytes = response.body.collect().await.map_err(&failed)?;
        if bytes.len() as u64 != len {
            return Err(crate::format::Malformed::Truncated("blob").into());
        }
        Ok(bytes.to_vec())
    }

    /// Reads blob `name`'s header (one request for most headers), its length and version,
    /// and the properties a re-wrap keeps: to learn which keys it needs, then
    /// [`BlobContainer::rewrap_head`] with no second read.
    ///
    /// # Errors
    /// As [`BlobContainer::read_header`].
    pub async fn head(&self, name: &str) -> Result<BlobHead> {
        let failed = self.failed(name, false);
        let options = BlobClientDownloadOptions {
            range: Some(HttpRange::new(0, HEADER_FIRST_READ)),
            parallel: NonZero::new(1),
            partition_size: NonZero::new(HEADER_FIRST_READ as usize),
            ..Default::default()
        };
        let response = match self.blob(name)?.download(Some(options)).await {
            Ok(response) => response,
            // An empty blob has no range to give: asked again whole (it is empty), for its
            // properties (a client-side encrypted empty object is one).
            Err(e) if e.http_status() == Some(StatusCode::RequestedRangeNotSatisfiable) => {
                let whole = BlobClientDownloadOptions {
                    parallel: NonZero::new(1),
                    ..Default::default()
                };
                self.blob(name)?
                    .download(Some(whole))
                    .await
                    .map_err(&failed)?
            }
            Err(e) => return Err(failed(e)),
        };
        let properties = response.properties;
        if properties
            .blob_type
            .as_ref()
            .is_some_and(|t| *t != BlobType::BlockBlob)
        {
            return Err(Error::InvalidArgument(format!(
                "{}: not a block blob; envelopes are block blobs",
                self.blob_url(name)
            )));
        }
        let etag = properties.etag.clone().ok_or_else(|| Error::Backend {
            backend: "azure-blob",
            message: format!("{}: the service sent no ETag", self.blob_url(name)),
        })?;
        let content_length = content_length_of(&response.headers, &properties);
        if let Some((_, text)) = super::cse::find(&properties.metadata) {
            let cse = super::cse::CseData::parse(text)?;
            let header = cse.describing_header()?;
            return Ok(BlobHead {
                name: name.to_owned(),
                header_bytes: header.to_bytes(),
                header,
                etag,
                content_length,
                tag_count: properties.tag_count.unwrap_or(0),
                properties: KeptProperties::from_download(&properties),
                cse: Some(cse),
            });
        }
        let mut bytes = response.body.collect().await.map_err(&failed)?.to_vec();
        bytes.truncate(HEADER_FIRST_READ as usize);
        // Not ours, whatever its length: said before any length is read.
        if bytes
            .get(..crate::format::MAGIC.len())
            .is_some_and(|magic| magic != crate::format::MAGIC)
        {
            return Err(crate::format::Malformed::BadMagic.into());
        }
        let len = loop {
            match header_len(&bytes)? {
                HeaderLen::Complete(len) => break len,
                HeaderLen::NeedMore(n) => {
                    let have = bytes.len() as u64;
                    let want = have.saturating_add(n as u64).min(MAX_HEADER_LEN as u64);
                    if want <= have || want > content_length {
                        return Err(crate::format::Malformed::Truncated("header").into());
                    }
                    // Past the first read, the rest of the header in one request.
                    let rest = self.read_bytes(name, have..want, &etag).await?;
                    bytes.extend_from_slice(&rest);
                }
            }
        };
        bytes.truncate(len);
        let header = Header::parse_detached(&bytes)?;
        Ok(BlobHead {
            name: name.to_owned(),
            header,
            header_bytes: bytes,
            etag,
            content_length,
            tag_count: properties.tag_count.unwrap_or(0),
            properties: KeptProperties::from_download(&properties),
            cse: None,
        })
    }
}

/// The blob's whole length: from `Content-Range` (`bytes a-b/total`) when a range was
/// asked for, else `Content-Length`.
pub(super) fn content_length_of(
    headers: &azure_core::http::headers::Headers,
    properties: &azure_storage_blob::models::BlobDownloadProperties,
) -> u64 {
    headers
        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
            "content-range",
        ))
        .and_then(|range| range.rsplit_once('/'))
        .and_then(|(_, total)| total.parse().ok())
        .or(properties.content_length)
        .unwrap_or(0)
}

/// Blob names: 1 to 1024 characters, no control characters, no `\`, and no segment that a
/// path would resolve (`.`, `..`, empty).
pub(super) fn check_blob_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("blob name {name:?}: {why}")));
    if name.is_empty() || name.len() > 1024 {
        return bad("1 to 1024 characters");
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return bad("no control characters or backslashes");
    }
    if name
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return bad("no empty, '.' or '..' segments");
    }
    Ok(())
}
