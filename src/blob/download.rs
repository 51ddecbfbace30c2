//! Downloading: the whole object through a reader that verifies each segment before it
//! hands it out, or a plaintext range by HTTP range.

use std::num::NonZero;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use azure_core::http::Etag;
use azure_storage_blob::models::BlobClientDownloadOptions;
use tokio::io::{AsyncRead, ReadBuf};

use super::body_reader::BodyReader;
use super::container::{content_length_of, BlobContainer, KeptProperties};
use crate::envelope::{Envelope, OpenInfo, Opened};
use crate::error::{Error, Result};
use crate::stream::AsyncOpenReader;

/// Partitions of a whole download: requests of this size, a few at once, each pinned to
/// the ETag of the first, so the object read is one version of the blob.
const DOWNLOAD_PARTITION: usize = 4 * 1024 * 1024;
const DOWNLOAD_PARALLEL: usize = 4;

/// A blob being opened: an `AsyncRead` of its plaintext, each segment verified before it
/// is handed out. A blob cut short fails at the end with
/// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed), as a file does.
pub struct BlobReader {
    inner: AsyncOpenReader<BodyReader>,
    name: String,
    etag: Etag,
    content_length: u64,
    properties: KeptProperties,
    tag_count: i64,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("name", &self.name)
            .field("kid", &self.inner.info().kid())
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// What opening tells about the object: the kid that opened it, and whether it is
    /// stale (then [`BlobContainer::store_rewrapped`] writes the re-wrapped header back).
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        self.inner.info()
    }

    /// The blob's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ETag of the version being read.
    #[must_use]
    pub fn etag(&self) -> String {
        self.etag.to_string()
    }

    pub(super) fn etag_value(&self) -> &Etag {
        &self.etag
    }

    pub(super) fn content_length(&self) -> u64 {
        self.content_length
    }

    pub(super) fn properties(&self) -> &KeptProperties {
        &self.properties
    }

    pub(super) fn tag_count(&self) -> i64 {
        self.tag_count
    }
}

impl AsyncRead for BlobReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl BlobContainer {
    /// Opens blob `name`: the header is read and the data key unwrapped now; the body is
    /// downloaded (a few 4 MiB ranges at once, each pinned to the first's ETag) and
    /// verified segment by segment as the reader is read.
    ///
    /// # Errors
    /// As [`Envelope::open`] for the header and the key; [`Error::NotFound`] for a missing
    /// blob or container; [`Error::AccessDenied`], [`Error::Throttled`],
    /// [`Error::Unavailable`] for the service. The reader's errors are `io::Error`s
    /// carrying these (`?` into [`Error`] gives them back).
    pub async fn download(
        &self,
        envelope: &Envelope,
        name: &str,
        aad: &[u8],
    ) -> Result<BlobReader> {
        let options = BlobClientDownloadOptions {
            parallel: NonZero::new(DOWNLOAD_PARALLEL),
            partition_size: NonZero::new(DOWNLOAD_PARTITION),
            ..Default::default()
        };
        let response = self
            .blob(name)?
            .download(Some(options))
            .await
            .map_err(self.failed(name, false))?;
        let etag = response
            .properties
            .etag
            .clone()
            .ok_or_else(|| Error::Backend {
                backend: "azure-blob",
                message: format!("{}: the service sent no ETag", self.blob_url(name)),
            })?;
        let content_length = content_length_of(&response.headers, &response.properties);
        let properties = KeptProperties::from_download(&response.properties);
        let tag_count = response.properties.tag_count.unwrap_or(0);
        let body = BodyReader::new(response.body, self.blob_url(name));
        let inner = envelope.open_async_reader(body, aad).await?;
        Ok(BlobReader {
            inner,
            name: name.to_owned(),
            etag,
            content_length,
            properties,
            tag_count,
        })
    }

    /// Opens plaintext bytes `range` of blob `name`, fetching only the header and the
    /// segments that hold them (one request for the header, one for the segments).
    ///
    /// # Errors
    /// As [`BlobContainer::download`]; [`Error::InvalidArgument`] for a range outside the
    /// plaintext.
    pub async fn download_range(
        &self,
        envelope: &Envelope,
        name: &str,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Opened> {
        let head = self.head(name).await?;
        let etag = head.etag.clone();
        envelope
            .open_range_fetched(
                &head.header,
                head.header_bytes.len(),
                head.content_length,
                aad,
                range,
                |span| async move { self.read_bytes(name, span, &etag).await },
            )
            .await
    }
}
