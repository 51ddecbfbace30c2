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
use super::cse::{CseData, RegionOpener};
use super::cse_reader::CseReader;
use crate::envelope::{Envelope, OpenInfo, Opened};
use crate::error::{Error, Result};
use crate::stream::AsyncOpenReader;

/// Partitions of a whole download: requests of this size, a few at once, each pinned to
/// the ETag of the first, so the object read is one version of the blob.
const DOWNLOAD_PARTITION: usize = 4 * 1024 * 1024;
const DOWNLOAD_PARALLEL: usize = 2;

/// A blob being opened: an `AsyncRead` of its plaintext, each segment verified before it
/// is handed out. A blob cut short fails at the end with
/// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed), as a file does.
pub struct BlobReader {
    inner: Inner,
    info: OpenInfo,
    name: String,
    etag: Etag,
    content_length: u64,
    properties: KeptProperties,
    tag_count: i64,
}

/// What reads the body: this crate's envelope, or the Azure SDKs' client-side encryption v2.
enum Inner {
    Envelope(Box<AsyncOpenReader<BodyReader>>),
    ClientSide(Box<CseReader>),
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("name", &self.name)
            .field("kid", &self.info.kid())
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// What opening tells about the object: the kid that opened it, and whether it is
    /// stale (then [`BlobContainer::store_rewrapped`] writes the re-wrapped header back).
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        &self.info
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
        match &mut self.inner {
            Inner::Envelope(reader) => Pin::new(reader.as_mut()).poll_read(cx, buf),
            Inner::ClientSide(reader) => Pin::new(reader.as_mut()).poll_read(cx, buf),
        }
    }
}

impl BlobContainer {
    /// Opens blob `name`: the header is read and the data key unwrapped now; the body is
    /// downloaded (two 4 MiB ranges at once, each pinned to the first's ETag) and
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
        let cse = match super::cse::find(&response.properties.metadata) {
            Some((_, text)) => Some(CseData::parse(text)?),
            None => None,
        };
        let body = BodyReader::new(response.body, self.blob_url(name));
        let (inner, info) = match cse {
            None => {
                let reader = envelope.open_async_reader(body, aad).await?;
                let info = reader.info().clone();
                (Inner::Envelope(Box::new(reader)), info)
            }
            Some(cse) => {
                let (opener, info) = open_cse(envelope, &cse, aad).await?;
                let region_wire = usize::try_from(cse.region_wire_len()).map_err(|_| {
                    Error::InvalidArgument("a region larger than memory".to_owned())
                })?;
                let reader = CseReader::new(body, opener, region_wire);
                (Inner::ClientSide(Box::new(reader)), info)
            }
        };
        Ok(BlobReader {
            inner,
            info,
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
        if let Some(cse) = &head.cse {
            return self
                .cse_range(envelope, name, aad, range, cse, head.content_length, &etag)
                .await;
        }
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

/// Unwraps a client-side encrypted blob's content key with `envelope`'s keys: the region
/// opener, and what opening tells (the `KeyId`, and whether it is stale). v2 has no
/// associated data: `aad` must be empty.
async fn open_cse(
    envelope: &Envelope,
    cse: &CseData,
    aad: &[u8],
) -> Result<(RegionOpener, OpenInfo)> {
    if !aad.is_empty() {
        return Err(Error::InvalidArgument(
            "client-side encryption v2 has no associated data: open it with an empty one"
                .to_owned(),
        ));
    }
    let (content_key, holder) = envelope
        .unwrap_foreign(&cse.slot, &cse.key_prefix())
        .await?;
    let opener = RegionOpener::new(envelope.provider(), &content_key)?;
    let kid = cse.slot.kid().to_owned();
    let stale = holder
        .current_kid()
        .await
        .is_ok_and(|current| current != kid);
    Ok((opener, OpenInfo::foreign(kid, stale)))
}

impl BlobContainer {
    /// A plaintext range of a client-side encrypted blob: the regions that hold it, in one
    /// request, each verified.
    #[allow(clippy::too_many_arguments)]
    async fn cse_range(
        &self,
        envelope: &Envelope,
        name: &str,
        aad: &[u8],
        range: Range<u64>,
        cse: &CseData,
        blob_len: u64,
        etag: &Etag,
    ) -> Result<Opened> {
        let plain_len = cse.plaintext_len(blob_len)?;
        if range.start > range.end || range.end > plain_len {
            return Err(Error::InvalidArgument(format!(
                "range {}..{} is outside the plaintext (0..{plain_len})",
                range.start, range.end
            )));
        }
        let (mut opener, info) = open_cse(envelope, cse, aad).await?;
        if range.is_empty() {
            return Ok(Opened::new(Vec::new(), info));
        }
        let first = range.start / cse.region_len;
        let last = (range.end - 1) / cse.region_len;
        let wire = cse.region_wire_len();
        let span = first * wire..((last + 1) * wire).min(blob_len);
        let bytes = self.read_bytes(name, span.clone(), etag).await?;
        let mut out = zeroize::Zeroizing::new(Vec::new());
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        for (offset, index) in (first..=last).enumerate() {
            let from = usize::try_from(offset as u64 * wire).unwrap_or(usize::MAX);
            let to = from
                .saturating_add(usize::try_from(wire).unwrap_or(usize::MAX))
                .min(bytes.len());
            let region = bytes.get(from..to).ok_or(Error::DecryptionFailed)?;
            opener.open(index, region, &mut plain)?;
            let region_start = index * cse.region_len;
            let keep_from = usize::try_from(range.start.saturating_sub(region_start)).unwrap_or(0);
            let keep_to =
                usize::try_from((range.end - region_start).min(plain.len() as u64)).unwrap_or(0);
            out.extend_from_slice(plain.get(keep_from..keep_to).unwrap_or_default());
        }
        Ok(Opened::new(std::mem::take(&mut *out), info))
    }
}
