//! Uploading: an `AsyncRead` sealed as it is read, into a block blob whose first block is
//! the header and whose other blocks are whole sealed segments.

use std::collections::HashMap;

use azure_core::http::{Etag, RequestContent};
use azure_storage_blob::models::{BlockBlobClientCommitBlockListOptions, BlockLookupList};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::{Zeroize, Zeroizing};

use super::container::BlobContainer;
use crate::envelope::Envelope;
use crate::error::{Error, Result};

/// Blocks of at least this size: a multiple of the wire segment is taken, so that no
/// segment straddles two blocks. A re-wrap names every block in its Put Block List, so
/// bigger blocks make a cheaper re-wrap (about 33 bytes a block).
const DEFAULT_BLOCK_SIZE: usize = 8 * 1024 * 1024;
/// Blocks in flight at once by default: memory stays at a few blocks (about 32 MiB).
const DEFAULT_PARALLEL: usize = 3;
/// Block ids: 8 random bytes for the upload (so that two uploads to one name never share
/// an id), then the block's index (4 bytes: Azure allows 50,000 blocks).
const BLOCK_ID_LEN: usize = 12;

/// How [`BlobContainer::upload`] writes a blob.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadOptions {
    /// The blob's `Content-Type` (of the envelope, not of the plaintext: the default is
    /// `application/octet-stream`).
    pub content_type: Option<String>,
    /// User metadata (`x-ms-meta-*`), stored in clear beside the blob.
    pub metadata: HashMap<String, String>,
    /// Replace a blob of that name; by default an existing blob is left as it is and the
    /// upload fails with [`Error::Conflict`].
    pub overwrite: bool,
    /// The body's block size (rounded up to whole segments); default 8 MiB.
    pub block_size: usize,
    /// Blocks uploaded at once; memory is about `(parallel + 1) × block_size`. Default 3.
    pub parallel: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            content_type: None,
            metadata: HashMap::new(),
            overwrite: false,
            block_size: DEFAULT_BLOCK_SIZE,
            parallel: DEFAULT_PARALLEL,
        }
    }
}

impl UploadOptions {
    /// Sets the blob's content type.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds one metadata entry.
    #[must_use]
    pub fn metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }

    /// Replaces an existing blob of the same name.
    #[must_use]
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// What an upload wrote.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Uploaded {
    /// The blob's ETag after the upload.
    pub etag: String,
    /// Plaintext bytes read from the source.
    pub plaintext_len: u64,
    /// The blob's length (header and body).
    pub blob_len: u64,
    /// Blocks committed, the header's included.
    pub blocks: usize,
}

/// Stages blocks with at most `parallel` in flight.
struct Stager<'a> {
    client: &'a azure_storage_blob::BlockBlobClient,
    nonce: [u8; 8],
    ids: Vec<Vec<u8>>,
    in_flight: FuturesUnordered<futures::future::BoxFuture<'a, azure_core::Result<()>>>,
    parallel: usize,
}

impl<'a> Stager<'a> {
    async fn stage(&mut self, bytes: Vec<u8>) -> azure_core::Result<()> {
        let mut id = Vec::with_capacity(BLOCK_ID_LEN);
        id.extend_from_slice(&self.nonce);
        let index = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        id.extend_from_slice(&index.to_be_bytes());
        self.ids.push(id.clone());
        while self.in_flight.len() >= self.parallel {
            if let Some(done) = self.in_flight.next().await {
                done?;
            }
        }
        let client = self.client;
        self.in_flight.push(Box::pin(async move {
            let len = bytes.len() as u64;
            client
                .stage_block(&id, len, RequestContent::from(bytes), None)
                .await
                .map(|_| ())
        }));
        Ok(())
    }

    async fn finish(&mut self) -> azure_core::Result<()> {
        while let Some(done) = self.in_flight.next().await {
            done?;
        }
        Ok(())
    }
}

impl BlobContainer {
    /// Seals what `source` yields into blob `name`, block by block, as it is read: memory
    /// stays at about `(parallel + 1) × block_size` whatever the object's size. The header
    /// is the first block; the blob is committed (one Put Block List) only once every
    /// block is staged, so a failed or abandoned upload leaves no blob (and an existing
    /// one untouched).
    ///
    /// # Errors
    /// As [`Envelope::seal`] for the key; [`Error::Conflict`] when the blob exists and
    /// `overwrite` is off (or it changed during the upload); [`Error::AccessDenied`],
    /// [`Error::NotFound`] (no container), [`Error::Throttled`], [`Error::Unavailable`] for
    /// the service; [`Error::Io`] for `source`.
    pub async fn upload<R: AsyncRead + Unpin>(
        &self,
        envelope: &Envelope,
        name: &str,
        mut source: R,
        aad: &[u8],
        options: UploadOptions,
    ) -> Result<Uploaded> {
        let blob = self.blob(name)?;
        let failed = self.failed(name, true);
        let (header, engine) = envelope.start_stream_seal(aad).await?;
        let segment_size = engine.segment_size();
        let wire_segment = engine.wire_segment();
        let per_block = options.block_size.div_ceil(wire_segment).max(1);
        let mut nonce = [0u8; 8];
        envelope.fill_random(&mut nonce)?;
        let block_client = blob.block_blob_client();
        let mut stager = Stager {
            client: &block_client,
            nonce,
            ids: Vec::new(),
            in_flight: FuturesUnordered::new(),
            parallel: options.parallel.max(1),
        };
        let header_len = header.len() as u64;
        stager.stage(header).await.map_err(&failed)?;

        let mut pending = Zeroizing::new(vec![0u8; segment_size]);
        let mut filled = read_full(&mut source, &mut pending).await?;
        let mut block = Vec::with_capacity(per_block * wire_segment);
        let mut sealed = Vec::with_capacity(wire_segment);
        let mut next = Zeroizing::new(vec![0u8; segment_size]);
        let mut index = 0u64;
        let mut plaintext_len = 0u64;
        let mut body_len = 0u64;
        loop {
            // A full segment is the last only if nothing follows it.
            let next_filled = if filled == segment_size {
                read_full(&mut source, &mut next).await?
            } else {
                0
            };
            let last = next_filled == 0;
            engine.seal_to_vec(index, last, &pending[..filled], &mut sealed)?;
            plaintext_len += filled as u64;
            body_len += sealed.len() as u64;
            block.extend_from_slice(&sealed);
            index += 1;
            if last || block.len() >= per_block * wire_segment {
                let full =
                    std::mem::replace(&mut block, Vec::with_capacity(per_block * wire_segment));
                stager.stage(full).await.map_err(&failed)?;
            }
            if last {
                break;
            }
            // Wiped, not emptied: it is the next read's buffer.
            pending.as_mut_slice().zeroize();
            std::mem::swap(&mut pending, &mut next);
            filled = next_filled;
        }
        stager.finish().await.map_err(&failed)?;

        let commit = BlockBlobClientCommitBlockListOptions {
            blob_content_type: Some(
                options
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
            ),
            metadata: (!options.metadata.is_empty()).then_some(options.metadata),
            if_none_match: (!options.overwrite).then(|| Etag::from("*")),
            ..Default::default()
        };
        let list = BlockLookupList {
            latest: Some(stager.ids.clone()),
            ..Default::default()
        };
        let response = block_client
            .commit_block_list(list.try_into().map_err(&failed)?, Some(commit))
            .await
            .map_err(|e| {
                if e.http_status() == Some(azure_core::http::StatusCode::Conflict)
                    && !options.overwrite
                {
                    Error::Conflict {
                        what: self.blob_url(name),
                        detail: "a blob of this name exists (set overwrite to replace it)"
                            .to_owned(),
                    }
                } else {
                    failed(e)
                }
            })?;
        use azure_storage_blob::models::BlockBlobClientCommitBlockListResultHeaders;
        let etag = response
            .etag()
            .ok()
            .flatten()
            .map(|e| e.to_string())
            .unwrap_or_default();
        Ok(Uploaded {
            etag,
            plaintext_len,
            blob_len: header_len + body_len,
            blocks: stager.ids.len(),
        })
    }
}

/// Fills `buf` from `source` as far as it goes; fewer bytes only at the end.
async fn read_full<R: AsyncRead + Unpin>(source: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = source.read(&mut buf[filled..]).await.map_err(Error::from)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
