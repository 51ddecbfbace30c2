//! Blobs of the Azure Storage SDKs' client-side encryption v2, written by the official
//! Python `azure-storage-blob` package (installed by the test command into
//! `target/pyenv`) into Azurite, opened by the crate whole and by range; re-wrapped by the
//! crate in their metadata alone, then opened by the Python SDK again. And the blobs the
//! crate refuses: regions out of order, a v1 blob, an unknown key wrap algorithm.
#![cfg(feature = "azure-blob")]

use crate::support;
use std::collections::HashMap;

use tokio::io::AsyncReadExt;

use support::azurite::{azurite, StorageToken};
use support::cse_python::{pattern, run_python};

use cmk_envelope::blob::{BlobContainer, BlobInfo};
use cmk_envelope::crypto::Provider;
use cmk_envelope::{Envelope, Error, KeyWrapper, RewrapTarget};

const REGION: usize = 4 << 20;

async fn open_all(
    container: &BlobContainer,
    envelope: &Envelope,
    name: &str,
) -> cmk_envelope::Result<Vec<u8>> {
    let mut reader = container.download(envelope, name, b"").await?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn python_v2_blobs_open_whole_and_by_range_and_stay_python_readable_after_a_rewrap() {
    let keys = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keys.key, Provider::default(), 65536);
    let url = azurite().new_container("python-cse").await;
    let container = BlobContainer::new(&url, StorageToken::new(), None).expect("container");
    let keyring = keys.dir.path().to_str().expect("utf-8").to_owned();

    let sizes = [0, 1, REGION - 1, REGION, REGION + 1, 2 * REGION + 3];
    let specs: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| format!("cse/{i}.bin:{size}"))
        .collect();
    let (oaep, oaep256) = specs.split_at(3);
    let mut write = vec!["write", &url, &keyring, "orders", "RSA-OAEP"];
    write.extend(oaep.iter().map(String::as_str));
    run_python(&write);
    let mut write = vec!["write", &url, &keyring, "orders", "RSA-OAEP-256"];
    write.extend(oaep256.iter().map(String::as_str));
    run_python(&write);

    let kid = keys.key.current_kid().await.expect("kid");
    for (spec, size) in specs.iter().zip(sizes) {
        let name = spec.rsplit_once(':').expect("spec").0;
        let expected = pattern(size);
        assert_eq!(
            open_all(&container, &envelope, name).await.expect(name),
            expected,
            "{name}"
        );
        let info = container.inspect(name).await.expect("inspect");
        let BlobInfo::ClientSideEncryption {
            protocol,
            key_id,
            plaintext_len,
            ..
        } = info
        else {
            panic!("{name}: {info:?}");
        };
        assert_eq!((protocol, key_id.as_str()), ("2.0", kid.as_str()));
        assert_eq!(plaintext_len, Some(size as u64));
        let s = size as u64;
        for range in [
            0..s.min(1),
            s / 2..s,
            s.saturating_sub(1)..s,
            (REGION as u64 - 1).min(s)..(REGION as u64 + 1).min(s),
        ] {
            let part = container
                .download_range(&envelope, name, b"", range.clone())
                .await
                .expect("range");
            assert_eq!(
                part.plaintext(),
                &expected[range.start as usize..range.end as usize],
                "{name} {range:?}"
            );
        }
    }

    // A rotation, then the .NET `UpdateClientSideKeyEncryptionKey` equivalent: new
    // metadata, the same body bytes.
    let raw_before = raw(&url, "cse/5.bin").await;
    keys.keyring.rotate_key("orders").expect("rotate");
    for spec in &specs {
        let name = spec.rsplit_once(':').expect("spec").0;
        let done = container
            .rewrap(&envelope, name, RewrapTarget::CurrentVersion)
            .await
            .expect("rewrap")
            .expect("stale");
        assert_eq!(done.body_bytes_resent, 0);
        assert_eq!(done.from_kid, kid);
        assert!(container
            .rewrap(&envelope, name, RewrapTarget::CurrentVersion)
            .await
            .expect("again")
            .is_none());
    }
    assert_eq!(
        raw(&url, "cse/5.bin").await,
        raw_before,
        "the body is untouched"
    );
    let mut read = vec!["read", &url, &keyring, "orders"];
    read.extend(specs.iter().map(String::as_str));
    run_python(&read);
    assert_eq!(
        open_all(&container, &envelope, "cse/5.bin")
            .await
            .expect("open"),
        pattern(2 * REGION + 3)
    );
}

async fn raw(url: &str, name: &str) -> Vec<u8> {
    let sdk = azure_storage_blob::BlobContainerClient::new(
        url.parse().expect("url"),
        Some(StorageToken::new()),
        None,
    )
    .expect("client");
    sdk.blob_client(name)
        .download(None)
        .await
        .expect("raw")
        .body
        .collect()
        .await
        .expect("body")
        .to_vec()
}

async fn put_raw(url: &str, name: &str, bytes: Vec<u8>, metadata: HashMap<String, String>) {
    let sdk = azure_storage_blob::BlobContainerClient::new(
        url.parse().expect("url"),
        Some(StorageToken::new()),
        None,
    )
    .expect("client");
    let options = azure_storage_blob::models::BlockBlobClientUploadOptions {
        metadata: Some(metadata),
        ..Default::default()
    };
    sdk.blob_client(name)
        .upload(azure_core::http::RequestContent::from(bytes), Some(options))
        .await
        .expect("put");
}

#[tokio::test]
async fn reordered_regions_v1_blobs_and_unknown_algorithms_are_refused() {
    let keys = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keys.key, Provider::default(), 65536);
    let url = azurite().new_container("python-cse-refused").await;
    let container = BlobContainer::new(&url, StorageToken::new(), None).expect("container");
    let keyring = keys.dir.path().to_str().expect("utf-8").to_owned();
    let size = 2 * REGION + 5;
    run_python(&[
        "write",
        &url,
        &keyring,
        "orders",
        "RSA-OAEP-256",
        &format!("r.bin:{size}"),
    ]);
    let bytes = raw(&url, "r.bin").await;
    let sdk = azure_storage_blob::BlobContainerClient::new(
        url.parse().expect("url"),
        Some(StorageToken::new()),
        None,
    )
    .expect("client");
    let metadata = sdk
        .blob_client("r.bin")
        .download(None)
        .await
        .expect("props")
        .properties
        .metadata;

    // Regions 0 and 1 swapped: each verifies alone, but not at the other's place.
    let wire = REGION + 28;
    let mut swapped = bytes[wire..2 * wire].to_vec();
    swapped.extend_from_slice(&bytes[..wire]);
    swapped.extend_from_slice(&bytes[2 * wire..]);
    put_raw(&url, "swapped.bin", swapped, metadata.clone()).await;
    let opened = open_all(&container, &envelope, "swapped.bin").await;
    assert!(matches!(opened, Err(Error::DecryptionFailed)), "{opened:?}");
    let ranged = container
        .download_range(&envelope, "swapped.bin", b"", 0..10)
        .await;
    assert!(matches!(ranged, Err(Error::DecryptionFailed)), "{ranged:?}");

    // One flipped bit.
    let mut flipped = bytes.clone();
    flipped[wire + 100] ^= 1;
    put_raw(&url, "flipped.bin", flipped, metadata.clone()).await;
    let opened = open_all(&container, &envelope, "flipped.bin").await;
    assert!(matches!(opened, Err(Error::DecryptionFailed)), "{opened:?}");

    // A v1 blob (AES-CBC), and a key wrapped with AES key wrap: clear errors, no guess.
    let data = metadata
        .get("encryptiondata")
        .expect("encryptiondata")
        .clone();
    for (from, to, says) in [
        ("\"2.0\"", "\"1.0\"", "1.0"),
        ("\"RSA-OAEP-256\"", "\"A256KW\"", "A256KW"),
    ] {
        let mut changed = metadata.clone();
        changed.insert("encryptiondata".to_owned(), data.replace(from, to));
        put_raw(&url, "odd.bin", bytes.clone(), changed).await;
        let refused = open_all(&container, &envelope, "odd.bin").await;
        let Err(Error::InvalidArgument(message)) = refused else {
            panic!("{to}: {refused:?}");
        };
        assert!(message.contains(says), "{message}");
    }
}

/// A v2.1 blob with 1,000-byte regions, made here as the SDKs make it, in each SDK's nonce
/// encoding: it opens whole and by range; one region under another encoding's nonce does
/// not.
#[tokio::test]
async fn v2_1_regions_of_any_size_in_each_sdks_nonce_encoding_open() {
    use base64ct::{Base64, Encoding};
    use cmk_envelope::{DataKey, SlotContext};
    use openssl::symm::{encrypt_aead, Cipher};

    let keys = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keys.key, Provider::default(), 65536);
    let url = azurite().new_container("cse-v2-1").await;
    let container = BlobContainer::new(&url, StorageToken::new(), None).expect("container");
    let content_key = [0x42u8; 32];
    let no_message = [0u8; 32];
    let slot = keys
        .key
        .wrap_key(
            &DataKey::from_slice(&content_key).expect("key"),
            SlotContext::new(&no_message).with_key_prefix(b"2.1\0\0\0\0\0"),
        )
        .await
        .expect("wrap");
    let data = serde_json::json!({
        "WrappedContentKey": {
            "KeyId": slot.kid(),
            "EncryptedKey": Base64::encode_string(slot.wrapped()),
            "Algorithm": "RSA-OAEP-256",
        },
        "EncryptionAgent": {"Protocol": "2.1", "EncryptionAlgorithm": "AES_GCM_256"},
        "EncryptedRegionInfo": {"DataLength": 1000, "NonceLength": 12},
        "KeyWrappingMetadata": {"EncryptionLibrary": "made by the test"},
    })
    .to_string();
    let python = |i: u64| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&i.to_be_bytes());
        n
    };
    let java = |i: u64| {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&i.to_be_bytes());
        n
    };
    let dotnet = |i: u64| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i + 1).to_le_bytes());
        n
    };
    let plaintext = pattern(3_500);
    let seal = |nonce_of: &dyn Fn(u64) -> [u8; 12]| {
        let mut body = Vec::new();
        for (index, region) in plaintext.chunks(1000).enumerate() {
            let nonce = nonce_of(index as u64);
            let mut tag = [0u8; 16];
            let sealed = encrypt_aead(
                Cipher::aes_256_gcm(),
                &content_key,
                Some(&nonce),
                &[],
                region,
                &mut tag,
            )
            .expect("gcm");
            body.extend_from_slice(&nonce);
            body.extend_from_slice(&sealed);
            body.extend_from_slice(&tag);
        }
        body
    };
    let metadata = HashMap::from([("encryptiondata".to_owned(), data)]);
    for (sdk, nonce_of) in [
        ("python", &python as &dyn Fn(u64) -> [u8; 12]),
        ("java", &java),
        ("dotnet", &dotnet),
    ] {
        let name = format!("{sdk}.bin");
        put_raw(&url, &name, seal(nonce_of), metadata.clone()).await;
        assert_eq!(
            open_all(&container, &envelope, &name).await.expect(sdk),
            plaintext,
            "{sdk}"
        );
        let part = container
            .download_range(&envelope, &name, b"", 990..2010)
            .await
            .expect("range");
        assert_eq!(part.plaintext(), &plaintext[990..2010], "{sdk}");
    }
    // Region 2 under Java's nonce in a Python blob: each region verifies, the mix does not.
    let mixed_nonce = |i: u64| if i == 2 { java(i) } else { python(i) };
    put_raw(&url, "mixed.bin", seal(&mixed_nonce), metadata.clone()).await;
    let mixed = open_all(&container, &envelope, "mixed.bin").await;
    assert!(matches!(mixed, Err(Error::DecryptionFailed)), "{mixed:?}");
    // A body whose last region is too short to hold a nonce and a tag.
    let mut cut = seal(&python);
    cut.truncate(3 * 1028 + 20);
    put_raw(&url, "cut.bin", cut, metadata).await;
    let short = open_all(&container, &envelope, "cut.bin").await;
    assert!(matches!(short, Err(Error::DecryptionFailed)), "{short:?}");
}
