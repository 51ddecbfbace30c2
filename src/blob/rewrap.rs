//! Re-wrapping a blob without re-sending its body: Put Block for the new header, then Put
//! Block List naming it and the body's committed blocks, on the condition that the blob
//! is still the version whose header was read (`If-Match`).

use std::collections::HashSet;

use azure_core::http::{Etag, RequestContent};
use azure_storage_blob::models::{
    BlockBlobClientCommitBlockListOptions, BlockBlobClientCommitBlockListResultHeaders,
    BlockListType, BlockLookupList,
};

use super::container::{BlobContainer, BlobHead, KeptProperties};
use super::download::BlobReader;
use crate::envelope::{Envelope, RewrapTarget};
use crate::error::{Error, Result};

/// Body bytes that must be re-sent (a blob written in one piece, or whose first block
/// holds body bytes after the header) go up in blocks of this size, read one at a time.
const RESEND_BLOCK: u64 = 4 * 1024 * 1024;
/// Block ids of a blob with no committed blocks yet.
const NEW_BLOCK_ID_LEN: usize = 12;

/// What a blob re-wrap changed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BlobRewrapped {
    /// The kid of the slot that was replaced.
    pub from_kid: String,
    /// The kid of the slot that replaced it.
    pub to_kid: String,
    /// The blob's ETag after the re-wrap.
    pub etag: String,
    /// Bytes sent: the new header, plus any body bytes that had to be re-sent (see
    /// [`BlobContainer::rewrap`]).
    pub bytes_sent: u64,
    /// Body bytes among them: 0 for a blob whose header is its own block.
    pub body_bytes_resent: u64,
}

/// Where the old header ends among the committed blocks.
struct Layout {
    /// Body bytes to re-send, because they share a block with the old header.
    resend: std::ops::Range<u64>,
    /// The committed blocks that follow, kept by id.
    kept: Vec<Vec<u8>>,
    /// The length of every block id of this blob.
    id_len: usize,
    /// Every id in use, so a new one is not one of them.
    used: HashSet<Vec<u8>>,
}

fn layout(blocks: &[(Vec<u8>, u64)], header_len: u64, content_length: u64) -> Layout {
    let total: u64 = blocks.iter().map(|(_, size)| size).sum();
    let used = blocks.iter().map(|(id, _)| id.clone()).collect();
    if blocks.is_empty() || total != content_length {
        // Written in one piece (Put Blob): no block to keep, the body is re-sent.
        return Layout {
            resend: header_len..content_length,
            kept: Vec::new(),
            id_len: NEW_BLOCK_ID_LEN,
            used,
        };
    }
    let id_len = blocks.first().map_or(NEW_BLOCK_ID_LEN, |(id, _)| id.len());
    let mut start = 0u64;
    for (index, (_, size)) in blocks.iter().enumerate() {
        let end = start + size;
        if end > header_len {
            // This block holds the first body byte.
            let (resend, from) = if start == header_len {
                (header_len..header_len, index)
            } else {
                (header_len..end, index + 1)
            };
            return Layout {
                resend,
                kept: blocks
                    .get(from..)
                    .unwrap_or_default()
                    .iter()
                    .map(|(id, _)| id.clone())
                    .collect(),
                id_len,
                used,
            };
        }
        start = end;
    }
    Layout {
        resend: header_len..content_length,
        kept: Vec::new(),
        id_len,
        used,
    }
}

impl BlobContainer {
    /// Re-wraps blob `name`'s data key (to the current version of its key, or to another
    /// key, as [`Envelope::rewrap`]) and writes the new header back without re-sending the
    /// body: Put Block for the header, then Put Block List naming it and the body's
    /// committed blocks, with `If-Match` on the ETag that was read. User metadata, content
    /// type and the other content headers, and tags are kept. `Ok(None)`: it was current.
    ///
    /// A blob uploaded by this crate has the header as its own block: the re-wrap sends
    /// the header alone (4 requests, one unwrap). A blob written in one piece (Put Blob), or
    /// whose first block holds body bytes, has those bytes re-sent once, in 4 MiB blocks
    /// read from the same version of the blob; after that, its header is its own block too.
    ///
    /// # Errors
    /// As [`Envelope::rewrap`]; [`Error::Conflict`] when the blob changed since its header
    /// was read (it is left as it is); the service's errors as for
    /// [`BlobContainer::upload`].
    pub async fn rewrap(
        &self,
        envelope: &Envelope,
        name: &str,
        target: RewrapTarget,
    ) -> Result<Option<BlobRewrapped>> {
        let head = self.head(name).await?;
        self.rewrap_head(envelope, &head, target).await
    }

    /// [`BlobContainer::rewrap`] of a blob whose head was read already
    /// ([`BlobContainer::head`]); the write is conditioned on the version read then.
    ///
    /// # Errors
    /// As [`BlobContainer::rewrap`].
    pub async fn rewrap_head(
        &self,
        envelope: &Envelope,
        head: &BlobHead,
        target: RewrapTarget,
    ) -> Result<Option<BlobRewrapped>> {
        if let Some(cse) = &head.cse {
            return self.rewrap_cse(envelope, head, cse, target).await;
        }
        let Some(rewrapped) = envelope.rewrap(&head.header_bytes, target).await? else {
            return Ok(None);
        };
        let (etag, bytes_sent, body_bytes_resent) = self
            .replace_header(
                envelope,
                &head.name,
                &head.etag,
                head.header_bytes.len() as u64,
                head.content_length,
                rewrapped.header(),
                &head.properties,
                head.tag_count,
            )
            .await?;
        Ok(Some(BlobRewrapped {
            from_kid: rewrapped.from_kid().to_owned(),
            to_kid: rewrapped.to_kid().to_owned(),
            etag,
            bytes_sent,
            body_bytes_resent,
        }))
    }

    /// Lazy re-wrap: once `reader` (from [`BlobContainer::download`]) has been read to the
    /// end, writes back the re-wrapped header its open produced, if the object was stale
    /// (no key-service call: the header was re-wrapped when it was opened). `Ok(None)`:
    /// nothing to write.
    ///
    /// # Errors
    /// As [`BlobContainer::rewrap`].
    pub async fn store_rewrapped(
        &self,
        envelope: &Envelope,
        reader: &BlobReader,
    ) -> Result<Option<BlobRewrapped>> {
        let Some(rewrapped) = reader.info().rewrapped() else {
            return Ok(None);
        };
        let (etag, bytes_sent, body_bytes_resent) = self
            .replace_header(
                envelope,
                reader.name(),
                reader.etag_value(),
                rewrapped.old_header_len() as u64,
                reader.content_length(),
                rewrapped.header(),
                reader.properties(),
                reader.tag_count(),
            )
            .await?;
        Ok(Some(BlobRewrapped {
            from_kid: rewrapped.from_kid().to_owned(),
            to_kid: rewrapped.to_kid().to_owned(),
            etag,
            bytes_sent,
            body_bytes_resent,
        }))
    }

    /// Replaces the first `old_header_len` bytes of the blob (version `etag`) by
    /// `new_header`; returns the new ETag, the bytes sent and the body bytes among them.
    #[allow(clippy::too_many_arguments)]
    async fn replace_header(
        &self,
        envelope: &Envelope,
        name: &str,
        etag: &Etag,
        old_header_len: u64,
        content_length: u64,
        new_header: &[u8],
        properties: &KeptProperties,
        tag_count: i64,
    ) -> Result<(String, u64, u64)> {
        let blob = self.blob(name)?;
        let block_client = blob.block_blob_client();
        let failed = self.failed(name, true);
        let conflict = |e: azure_core::Error| match e.http_status() {
            Some(azure_core::http::StatusCode::PreconditionFailed) => Error::Conflict {
                what: self.blob_url(name),
                detail: "the blob changed since its header was read; it was left as it is"
                    .to_owned(),
            },
            _ => failed(e),
        };
        let listed = block_client
            .get_block_list(BlockListType::Committed, None)
            .await
            .map_err(&failed)?
            .into_model()
            .map_err(&failed)?;
        let blocks: Vec<(Vec<u8>, u64)> = listed
            .committed_blocks
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| Some((b.name?, u64::try_from(b.size?).ok()?)))
            .collect();
        let mut plan = layout(&blocks, old_header_len, content_length);

        let mut ids = Vec::new();
        let header_id = new_block_id(envelope, &mut plan)?;
        block_client
            .stage_block(
                &header_id,
                new_header.len() as u64,
                RequestContent::from(new_header.to_vec()),
                None,
            )
            .await
            .map_err(&failed)?;
        ids.push(header_id);
        let mut sent = new_header.len() as u64;
        let mut resent = 0u64;
        let mut at = plan.resend.start;
        while at < plan.resend.end {
            let end = plan.resend.end.min(at.saturating_add(RESEND_BLOCK));
            let bytes = self.read_bytes(name, at..end, etag).await?;
            let id = new_block_id(envelope, &mut plan)?;
            block_client
                .stage_block(&id, bytes.len() as u64, RequestContent::from(bytes), None)
                .await
                .map_err(&failed)?;
            ids.push(id);
            sent += end - at;
            resent += end - at;
            at = end;
        }
        ids.append(&mut plan.kept);

        let tags = if tag_count > 0 {
            let tags = blob
                .get_tags(None)
                .await
                .map_err(&failed)?
                .into_model()
                .map_err(&failed)?;
            Some(tags_string(tags.blob_tag_set.unwrap_or_default()))
        } else {
            None
        };
        let options = BlockBlobClientCommitBlockListOptions {
            if_match: Some(etag.clone()),
            metadata: Some(properties.metadata.clone()),
            blob_content_type: properties.content_type.clone(),
            blob_content_encoding: properties.content_encoding.clone(),
            blob_content_language: properties.content_language.clone(),
            blob_content_disposition: properties.content_disposition.clone(),
            blob_cache_control: properties.cache_control.clone(),
            blob_tags_string: tags,
            ..Default::default()
        };
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        let response = block_client
            .commit_block_list(list.try_into().map_err(&failed)?, Some(options))
            .await
            .map_err(conflict)?;
        let new_etag = response
            .etag()
            .ok()
            .flatten()
            .map(|e| e.to_string())
            .unwrap_or_default();
        Ok((new_etag, sent, resent))
    }
}

impl BlobContainer {
    /// The re-wrap of a blob of the Azure SDKs' client-side encryption v2, as .NET's
    /// `UpdateClientSideKeyEncryptionKey` does it: a new wrapped key in its `encryptiondata`
    /// (the rest of the document, and every other metadata entry, as they were), written
    /// with `If-Match`; the body is not touched. The SDKs open the result with the new key.
    async fn rewrap_cse(
        &self,
        envelope: &Envelope,
        head: &BlobHead,
        cse: &super::cse::CseData,
        target: RewrapTarget,
    ) -> Result<Option<BlobRewrapped>> {
        let Some(new_slot) = envelope
            .rewrap_foreign(&cse.slot, &cse.key_prefix(), target)
            .await?
        else {
            return Ok(None);
        };
        let document = cse.with_slot(&new_slot)?;
        let mut metadata = head.properties.metadata.clone();
        let entry = super::cse::find(&metadata)
            .map_or(super::cse::METADATA_NAME, |(name, _)| name)
            .to_owned();
        metadata.insert(entry, document.clone());
        let failed = self.failed(&head.name, true);
        let options = azure_storage_blob::models::BlobClientSetMetadataOptions {
            if_match: Some(head.etag.clone()),
            ..Default::default()
        };
        let response = self
            .blob(&head.name)?
            .set_metadata(&metadata, Some(options))
            .await
            .map_err(|e| match e.http_status() {
                Some(azure_core::http::StatusCode::PreconditionFailed) => Error::Conflict {
                    what: self.blob_url(&head.name),
                    detail: "the blob changed since its encryption data was read; it was left \
                             as it is"
                        .to_owned(),
                },
                _ => failed(e),
            })?;
        let etag = response
            .headers()
            .get_optional_str(&azure_core::http::headers::HeaderName::from_static("etag"))
            .unwrap_or_default()
            .to_owned();
        Ok(Some(BlobRewrapped {
            from_kid: cse.slot.kid().to_owned(),
            to_kid: new_slot.kid().to_owned(),
            etag,
            bytes_sent: document.len() as u64,
            body_bytes_resent: 0,
        }))
    }
}

/// A random block id of the blob's id length that is not in use.
fn new_block_id(envelope: &Envelope, plan: &mut Layout) -> Result<Vec<u8>> {
    for _ in 0..16 {
        let mut id = vec![0u8; plan.id_len];
        envelope.fill_random(&mut id)?;
        if plan.used.insert(id.clone()) {
            return Ok(id);
        }
    }
    Err(Error::Backend {
        backend: "azure-blob",
        message: format!(
            "no free block id of {} bytes: the blob's block ids are too short",
            plan.id_len
        ),
    })
}

/// Tags as `x-ms-tags` wants them: `key=value&…`, each part percent-encoded.
fn tags_string(tags: Vec<azure_storage_blob::models::BlobTag>) -> String {
    tags.into_iter()
        .filter_map(|tag| Some((tag.key?, tag.value.unwrap_or_default())))
        .map(|(key, value)| format!("{}={}", percent_encode(&key), percent_encode(&value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(sizes: &[u64]) -> Vec<(Vec<u8>, u64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, size)| (vec![i as u8; 4], *size))
            .collect()
    }

    #[test]
    fn a_header_block_of_its_own_keeps_every_body_block() {
        let plan = layout(&blocks(&[300, 1000, 500]), 300, 1800);
        assert!(plan.resend.is_empty());
        assert_eq!(plan.kept, vec![vec![1u8; 4], vec![2u8; 4]]);
        assert_eq!(plan.id_len, 4);
    }

    #[test]
    fn a_first_block_holding_body_bytes_has_them_resent() {
        let plan = layout(&blocks(&[1000, 500]), 300, 1500);
        assert_eq!(plan.resend, 300..1000);
        assert_eq!(plan.kept, vec![vec![1u8; 4]]);
        // A header spread over two blocks.
        let plan = layout(&blocks(&[100, 400, 500]), 300, 1000);
        assert_eq!(plan.resend, 300..500);
        assert_eq!(plan.kept, vec![vec![2u8; 4]]);
    }

    #[test]
    fn a_blob_in_one_piece_or_a_list_that_does_not_add_up_is_resent() {
        let plan = layout(&[], 300, 1000);
        assert_eq!(plan.resend, 300..1000);
        assert!(plan.kept.is_empty());
        assert_eq!(plan.id_len, NEW_BLOCK_ID_LEN);
        let plan = layout(&blocks(&[300, 100]), 300, 1000);
        assert_eq!(plan.resend, 300..1000);
        assert!(plan.kept.is_empty());
    }

    #[test]
    fn tags_are_percent_encoded() {
        let tags = vec![
            azure_storage_blob::models::BlobTag {
                key: Some("team".into()),
                value: Some("a b/c".into()),
            },
            azure_storage_blob::models::BlobTag {
                key: Some("k=".into()),
                value: None,
            },
        ];
        assert_eq!(tags_string(tags), "team=a%20b%2Fc&k%3D=");
    }
}
