//! Envelopes in Azure Blob Storage (`cmk_envelope::blob`), against Azurite over HTTPS with
//! `--oauth basic` (tests/support/azurite.rs): streaming upload with the header as its own
//! block, verifying download, ranged reads, re-wrap by the header block alone with the
//! blob's properties kept, races, tampering and the errors a caller sees.
#![cfg(feature = "azure-blob")]

use crate::support;
use std::sync::Arc;

use azure_storage_blob::models::{BlockBlobClientUploadOptions, BlockListType, BlockLookupList};
use azure_storage_blob::BlobContainerClient;
use tokio::io::AsyncReadExt;
use tokio::sync::Barrier;

use support::azurite::{azurite, StorageToken};
use support::TempKeyring;

use cmk_envelope::blob::{BlobContainer, UploadOptions};
use cmk_envelope::crypto::Provider;
use cmk_envelope::format::KeySlot;
use cmk_envelope::{
    async_trait, DataKey, Envelope, Error, KeyFacts, KeyWrapper, RewrapTarget, SlotContext,
    Unwrapped,
};

const SEGMENT: usize = 4096;

struct Site {
    _keys: TempKeyring,
    envelope: Envelope,
    container: BlobContainer,
    sdk: BlobContainerClient,
    keyring: cmk_envelope::software::Keyring,
}

async fn site(container: &str) -> Site {
    let keys = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keys.key, Provider::default(), SEGMENT as u32);
    let url = azurite().new_container(container).await;
    let token = StorageToken::new();
    let sdk = BlobContainerClient::new(url.parse().expect("url"), Some(token.clone()), None)
        .expect("client");
    let keyring = cmk_envelope::software::Keyring::open(keys.dir.path()).expect("keyring");
    Site {
        container: BlobContainer::new(&url, token, None).expect("container"),
        envelope,
        sdk,
        keyring,
        _keys: keys,
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn small_blocks() -> UploadOptions {
    let mut options = UploadOptions::default();
    options.block_size = 3 * SEGMENT;
    options
}

async fn read_all(site: &Site, name: &str) -> cmk_envelope::Result<Vec<u8>> {
    let mut reader = site.container.download(&site.envelope, name, b"").await?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

async fn committed(site: &Site, name: &str) -> Vec<(Vec<u8>, i64)> {
    site.sdk
        .blob_client(name)
        .block_blob_client()
        .get_block_list(BlockListType::Committed, None)
        .await
        .expect("block list")
        .into_model()
        .expect("model")
        .committed_blocks
        .unwrap_or_default()
        .into_iter()
        .map(|b| (b.name.expect("id"), b.size.expect("size")))
        .collect()
}

#[tokio::test]
async fn round_trips_of_every_edge_size_with_the_header_as_its_own_block() {
    let site = site("round-trips").await;
    for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 4 << 20, 64 << 20] {
        let name = format!("sizes/{len}.bin");
        let plaintext = data(len);
        let options = if len > (1 << 20) {
            UploadOptions::default()
        } else {
            small_blocks()
        };
        let uploaded = site
            .container
            .upload(&site.envelope, &name, plaintext.as_slice(), b"", options)
            .await
            .expect("upload");
        assert_eq!(uploaded.plaintext_len, len as u64);
        let blocks = committed(&site, &name).await;
        assert_eq!(blocks.len(), uploaded.blocks);
        let header_len = cmk_envelope::format::Header::parse_prefix(&{
            let mut head = Vec::new();
            site.container
                .download(&site.envelope, &name, b"")
                .await
                .expect("download")
                .read_to_end(&mut head)
                .await
                .expect("read");
            // The plaintext is not the header: read the header from the blob itself.
            let bytes = site
                .sdk
                .blob_client(&name)
                .download(None)
                .await
                .expect("raw")
                .body
                .collect()
                .await
                .expect("raw body");
            assert_eq!(bytes.len() as u64, uploaded.blob_len);
            bytes.to_vec()
        })
        .expect("header")
        .1;
        assert_eq!(blocks[0].1 as usize, header_len, "the header is block 0");
        assert_eq!(
            read_all(&site, &name).await.expect("open"),
            plaintext,
            "{len}"
        );
    }
}

#[tokio::test]
async fn ranges_at_the_edges_fetch_only_their_segments() {
    let site = site("ranges").await;
    let len = 5 * SEGMENT + 7;
    let plaintext = data(len);
    site.container
        .upload(
            &site.envelope,
            "r",
            plaintext.as_slice(),
            b"",
            small_blocks(),
        )
        .await
        .expect("upload");
    let l = len as u64;
    let s = SEGMENT as u64;
    for range in [
        0..0,
        0..1,
        s - 1..s + 1,
        s..2 * s,
        l - 1..l,
        l..l,
        0..l,
        3..4 * s + 5,
    ] {
        let opened = site
            .container
            .download_range(&site.envelope, "r", b"", range.clone())
            .await
            .expect("range");
        assert_eq!(
            opened.plaintext(),
            &plaintext[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
    for range in [0..l + 1, l + 1..l + 2] {
        let outside = site
            .container
            .download_range(&site.envelope, "r", b"", range)
            .await;
        assert!(
            matches!(outside, Err(Error::InvalidArgument(_))),
            "{outside:?}"
        );
    }
    let wrong_aad = site
        .container
        .download_range(&site.envelope, "r", b"other", 0..1)
        .await;
    assert!(matches!(wrong_aad, Err(Error::DecryptionFailed)));
}

#[tokio::test]
async fn a_tampered_block_or_a_truncated_blob_never_opens() {
    let site = site("tampering").await;
    let plaintext = data(10 * SEGMENT);
    site.container
        .upload(
            &site.envelope,
            "t",
            plaintext.as_slice(),
            b"",
            small_blocks(),
        )
        .await
        .expect("upload");
    let blocks = committed(&site, "t").await;
    let block_client = site.sdk.blob_client("t").block_blob_client();

    let ids: Vec<Vec<u8>> = blocks.iter().map(|(id, _)| id.clone()).collect();
    let commit = |list: Vec<Vec<u8>>| {
        let block_client = &block_client;
        async move {
            let list = BlockLookupList {
                latest: Some(list),
                ..Default::default()
            };
            block_client
                .commit_block_list(list.try_into().expect("xml"), None)
                .await
                .expect("commit");
        }
    };
    let stage = |id: Vec<u8>, bytes: Vec<u8>| {
        let block_client = &block_client;
        async move {
            block_client
                .stage_block(
                    &id,
                    bytes.len() as u64,
                    azure_core::http::RequestContent::from(bytes),
                    None,
                )
                .await
                .expect("stage");
        }
    };

    // Tampered: block 2 replaced by the same bytes with one bit flipped.
    let raw = site
        .sdk
        .blob_client("t")
        .download(None)
        .await
        .expect("raw")
        .body
        .collect()
        .await
        .expect("body");
    let start = (blocks[0].1 + blocks[1].1) as usize;
    let original = raw[start..start + blocks[2].1 as usize].to_vec();
    let mut flipped = original.clone();
    flipped[100] ^= 1;
    stage(ids[2].clone(), flipped).await;
    commit(ids.clone()).await;
    let tampered = read_all(&site, "t").await;
    assert!(
        matches!(tampered, Err(Error::DecryptionFailed)),
        "{tampered:?}"
    );
    // A range that stays clear of the block opens; one that touches it does not.
    let clear = site
        .container
        .download_range(&site.envelope, "t", b"", 0..100)
        .await
        .expect("clear range");
    assert_eq!(clear.plaintext(), &plaintext[..100]);
    let touched = site
        .container
        .download_range(&site.envelope, "t", b"", 0..plaintext.len() as u64)
        .await;
    assert!(matches!(touched, Err(Error::DecryptionFailed)));

    // Restored, it opens again; truncated (the last block left out), it never does.
    stage(ids[2].clone(), original).await;
    commit(ids.clone()).await;
    assert_eq!(read_all(&site, "t").await.expect("restored"), plaintext);
    commit(ids[..ids.len() - 1].to_vec()).await;
    let cut = read_all(&site, "t").await;
    assert!(matches!(cut, Err(Error::DecryptionFailed)), "{cut:?}");
    let tail = site
        .container
        .download_range(&site.envelope, "t", b"", 0..1)
        .await;
    assert!(tail.is_ok(), "the first segment is whole: {tail:?}");
}

#[tokio::test]
async fn a_rewrap_sends_the_header_alone_and_keeps_metadata_content_type_and_tags() {
    let site = site("rewrap").await;
    let plaintext = data(9 * SEGMENT + 3);
    let options = small_blocks()
        .content_type("application/vnd.cmke")
        .metadata("owner", "billing");
    site.container
        .upload(
            &site.envelope,
            "a/b.bin",
            plaintext.as_slice(),
            b"",
            options,
        )
        .await
        .expect("upload");
    let blob = site.sdk.blob_client("a/b.bin");
    let mut tags = std::collections::HashMap::new();
    tags.insert("team".to_owned(), "a b/c".to_owned());
    blob.set_tags(
        azure_storage_blob::models::BlobTags::from(tags.clone())
            .try_into()
            .expect("tags"),
        None,
    )
    .await
    .expect("set tags");
    let before = committed(&site, "a/b.bin").await;

    assert!(site
        .container
        .rewrap(&site.envelope, "a/b.bin", RewrapTarget::CurrentVersion)
        .await
        .expect("current")
        .is_none());
    site.keyring.rotate_key("orders").expect("rotate");
    let done = site
        .container
        .rewrap(&site.envelope, "a/b.bin", RewrapTarget::CurrentVersion)
        .await
        .expect("rewrap")
        .expect("stale, so re-wrapped");
    assert_eq!(done.body_bytes_resent, 0);
    assert!(done.bytes_sent < 2048, "{done:?}");
    assert_ne!(done.from_kid, done.to_kid);

    let after = committed(&site, "a/b.bin").await;
    assert_eq!(
        after[1..],
        before[1..],
        "the body's blocks are the same blocks"
    );
    assert_ne!(after[0].0, before[0].0);
    let properties = blob.get_properties(None).await.expect("properties");
    use azure_storage_blob::models::BlobClientGetPropertiesResultHeaders;
    assert_eq!(
        properties.content_type().expect("header").as_deref(),
        Some("application/vnd.cmke")
    );
    assert_eq!(
        properties
            .metadata()
            .expect("metadata")
            .get("owner")
            .map(String::as_str),
        Some("billing")
    );
    let kept: std::collections::HashMap<String, String> = blob
        .get_tags(None)
        .await
        .expect("tags")
        .into_model()
        .expect("model")
        .into();
    assert_eq!(kept, tags);
    let mut reader = site
        .container
        .download(&site.envelope, "a/b.bin", b"")
        .await
        .expect("download");
    assert!(!reader.info().is_stale());
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.expect("read");
    assert_eq!(out, plaintext);
}

#[tokio::test]
async fn a_blob_written_in_one_piece_is_rewrapped_once_with_its_body_then_by_header_alone() {
    let site = site("one-piece").await;
    let plaintext = data(3 * SEGMENT);
    let sealed = site.envelope.seal(&plaintext, b"").await.expect("seal");
    site.sdk
        .blob_client("whole")
        .upload(
            azure_core::http::RequestContent::from(sealed.clone()),
            Some(BlockBlobClientUploadOptions::default()),
        )
        .await
        .expect("put blob");
    site.keyring.rotate_key("orders").expect("rotate");
    let first = site
        .container
        .rewrap(&site.envelope, "whole", RewrapTarget::CurrentVersion)
        .await
        .expect("rewrap")
        .expect("stale");
    let header_len = cmk_envelope::format::Header::parse_prefix(&sealed)
        .expect("header")
        .1;
    assert_eq!(first.body_bytes_resent, (sealed.len() - header_len) as u64);
    assert_eq!(read_all(&site, "whole").await.expect("open"), plaintext);
    site.keyring.rotate_key("orders").expect("rotate");
    let second = site
        .container
        .rewrap(&site.envelope, "whole", RewrapTarget::CurrentVersion)
        .await
        .expect("rewrap")
        .expect("stale");
    assert_eq!(
        second.body_bytes_resent, 0,
        "the header is its own block now"
    );
    assert_eq!(read_all(&site, "whole").await.expect("open"), plaintext);
}

#[tokio::test]
async fn lazy_rewrap_on_download_writes_the_header_back() {
    let site = site("lazy").await;
    let plaintext = data(2 * SEGMENT + 1);
    site.container
        .upload(
            &site.envelope,
            "l",
            plaintext.as_slice(),
            b"",
            small_blocks(),
        )
        .await
        .expect("upload");
    site.keyring.rotate_key("orders").expect("rotate");
    let mut reader = site
        .container
        .download(&site.envelope, "l", b"")
        .await
        .expect("download");
    assert!(reader.info().is_stale());
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await.expect("read");
    assert_eq!(out, plaintext);
    let stored = site
        .container
        .store_rewrapped(&site.envelope, &reader)
        .await
        .expect("store")
        .expect("stale");
    assert_eq!(stored.body_bytes_resent, 0);
    let again = site
        .container
        .download(&site.envelope, "l", b"")
        .await
        .expect("download");
    assert!(!again.info().is_stale());
}

/// A key whose first `gated` unwraps wait at each gate in turn: to hold a re-wrap between
/// reading the header and writing it back (its second unwrap, confirming the new slot, is
/// not held).
struct GatedKey {
    inner: Arc<dyn KeyWrapper>,
    gates: Vec<Arc<Barrier>>,
    gated: usize,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl KeyWrapper for GatedKey {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.inner.current_kid().await
    }
    async fn wrap_key(
        &self,
        key: &DataKey,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<KeySlot> {
        self.inner.wrap_key(key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<Unwrapped> {
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.gated {
            for gate in &self.gates {
                gate.wait().await;
            }
        }
        self.inner.unwrap_key(slot, context).await
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        self.inner.key_facts()
    }
}

fn gated(site: &Site, gates: Vec<Arc<Barrier>>, gated: usize) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::new(GatedKey {
            inner: site._keys.key.clone(),
            gates,
            gated,
            calls: 0.into(),
        }))
        .segment_size(SEGMENT as u32)
        .build()
        .expect("envelope")
}

#[tokio::test]
async fn a_blob_replaced_during_a_rewrap_is_left_as_it_is() {
    let site = site("replaced").await;
    site.container
        .upload(
            &site.envelope,
            "x",
            data(SEGMENT).as_slice(),
            b"",
            small_blocks(),
        )
        .await
        .expect("upload");
    site.keyring.rotate_key("orders").expect("rotate");
    let (reached, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let envelope = gated(&site, vec![reached.clone(), go.clone()], 1);
    let replacement = data(5);
    let (rewrapped, ()) = tokio::join!(
        site.container
            .rewrap(&envelope, "x", RewrapTarget::CurrentVersion),
        async {
            reached.wait().await;
            site.container
                .upload(
                    &site.envelope,
                    "x",
                    replacement.as_slice(),
                    b"",
                    UploadOptions::default().overwrite(true),
                )
                .await
                .expect("replace");
            go.wait().await;
        }
    );
    assert!(
        matches!(rewrapped, Err(Error::Conflict { .. })),
        "{rewrapped:?}"
    );
    assert_eq!(read_all(&site, "x").await.expect("open"), replacement);
}

#[tokio::test]
async fn two_racing_rewraps_one_wins_and_nothing_is_lost() {
    let site = site("racing").await;
    let plaintext = data(4 * SEGMENT);
    site.container
        .upload(
            &site.envelope,
            "y",
            plaintext.as_slice(),
            b"",
            small_blocks(),
        )
        .await
        .expect("upload");
    site.keyring.rotate_key("orders").expect("rotate");
    let both_read = Arc::new(Barrier::new(2));
    let envelope = gated(&site, vec![both_read], 2);
    let (a, b) = tokio::join!(
        site.container
            .rewrap(&envelope, "y", RewrapTarget::CurrentVersion),
        site.container
            .rewrap(&envelope, "y", RewrapTarget::CurrentVersion),
    );
    let wins = [&a, &b].iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(Error::Conflict { .. })))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{a:?} {b:?}");
    assert_eq!(read_all(&site, "y").await.expect("open"), plaintext);
}

#[tokio::test]
async fn the_errors_a_caller_sees() {
    let site = site("errors").await;
    let missing = read_all(&site, "nothing-here").await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    let missing = site
        .container
        .download_range(&site.envelope, "nothing-here", b"", 0..1)
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );

    site.container
        .upload(
            &site.envelope,
            "once",
            &b"first"[..],
            b"",
            UploadOptions::default(),
        )
        .await
        .expect("upload");
    let again = site
        .container
        .upload(
            &site.envelope,
            "once",
            &b"second"[..],
            b"",
            UploadOptions::default(),
        )
        .await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    assert_eq!(read_all(&site, "once").await.expect("open"), b"first");

    // Not an envelope.
    site.sdk
        .blob_client("plain")
        .upload(
            azure_core::http::RequestContent::from(b"just some text".to_vec()),
            None,
        )
        .await
        .expect("put");
    let plain = read_all(&site, "plain").await;
    assert!(matches!(plain, Err(Error::Malformed(_))), "{plain:?}");

    let no_container = BlobContainer::new(
        &azurite().container_url("no-such-container"),
        StorageToken::new(),
        None,
    )
    .expect("client");
    let gone = no_container
        .download_range(&site.envelope, "x", b"", 0..1)
        .await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");

    for url in [
        format!("{}?sv=2024&sig=secret", azurite().container_url("errors")),
        azurite()
            .container_url("errors")
            .replace("https://", "https://user:pw@"),
        azurite().container_url("errors").replace("https", "http"),
    ] {
        let refused = BlobContainer::new(&url, StorageToken::new(), None);
        let Err(Error::InvalidArgument(message)) = refused else {
            panic!("{url}: {refused:?}");
        };
        assert!(
            !message.contains("secret") && !message.contains("pw"),
            "{message}"
        );
    }
    for name in ["", "a//b", "../x", "a/./b", "tab\there"] {
        let refused = site
            .container
            .download_range(&site.envelope, name, b"", 0..1)
            .await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument(_))),
            "{name:?}"
        );
    }
}
