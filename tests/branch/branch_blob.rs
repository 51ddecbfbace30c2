//! The branch key store in an Azure Blob Storage container, against Azurite over HTTPS with
//! `--oauth basic` (tests/support/azurite.rs): create-only records, `current` moved only
//! from the ETag it was read with, listings under a prefix, the errors an operator sees,
//! and branch keys sealing, rotating, racing and re-wrapping through it.
#![cfg(feature = "azure-blob")]

use crate::support;
use std::sync::Arc;

use support::azurite::{azurite, StorageToken};
use support::race_store::BothReadFirst;

use cmk_envelope::branch::{BlobStore, BranchStore, BranchWrapper};
use cmk_envelope::crypto::Provider;
use cmk_envelope::kid::{KeyName, KeyVersion};
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, Error, KeyWrapper};

fn name(text: &str) -> KeyName {
    KeyName::new(text).expect("name")
}

fn version(byte: u8) -> KeyVersion {
    KeyVersion::new(&format!("{byte:02x}").repeat(16)).expect("version")
}

async fn store_in(container: &str, prefix: &str) -> (Arc<BlobStore>, Arc<StorageToken>) {
    let url = azurite().new_container(container).await;
    let token = StorageToken::new();
    let store = BlobStore::new(&format!("{url}{prefix}"), token.clone(), None).expect("store");
    (Arc::new(store), token)
}

#[tokio::test]
async fn records_are_created_once_and_current_moves_only_from_what_was_read() {
    let (store, token) = store_in("conditional", "/fleet/eu").await;
    let orders = name("orders");
    assert!(matches!(
        store.read_current(&orders).await,
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.read_record(&orders, &version(1)).await,
        Err(Error::KeyNotFound { .. })
    ));

    store
        .create_record(&orders, &version(1), b"first")
        .await
        .expect("create");
    let again = store.create_record(&orders, &version(1), b"other").await;
    assert!(matches!(again, Err(Error::Conflict { .. })), "{again:?}");
    let record = store.read_record(&orders, &version(1)).await.expect("read");
    assert_eq!(record.bytes, b"first", "the first write stays");

    // Replacing needs the tag it was read with.
    let stale = store
        .replace_record(&orders, &version(1), b"x", "\"0x8DEADBEEF\"")
        .await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    store
        .replace_record(&orders, &version(1), b"second", &record.tag)
        .await
        .expect("replace");
    let replayed = store
        .replace_record(&orders, &version(1), b"third", &record.tag)
        .await;
    assert!(matches!(replayed, Err(Error::Conflict { .. })));
    assert_eq!(
        store
            .read_record(&orders, &version(1))
            .await
            .expect("read")
            .bytes,
        b"second"
    );

    // `current`: created once, then moved only from the ETag it was read with.
    store
        .set_current(&orders, &version(1), None)
        .await
        .expect("first current");
    let exists = store.set_current(&orders, &version(2), None).await;
    assert!(matches!(exists, Err(Error::Conflict { .. })), "{exists:?}");
    let read = store.read_current(&orders).await.expect("current");
    assert_eq!(read.version, version(1));
    store
        .set_current(&orders, &version(2), Some(&read))
        .await
        .expect("move");
    let late = store.set_current(&orders, &version(3), Some(&read)).await;
    match late {
        Err(Error::Conflict { detail, .. }) => {
            assert!(detail.contains("another rotation"), "{detail}")
        }
        other => panic!("a move from a stale read must conflict: {other:?}"),
    }
    assert_eq!(
        store.read_current(&orders).await.expect("current").version,
        version(2)
    );

    store
        .create_record(&orders, &version(2), b"two")
        .await
        .expect("create");
    store
        .create_record(&name("billing"), &version(9), b"b")
        .await
        .expect("create");
    assert_eq!(
        store.names().await.expect("names"),
        vec![name("billing"), name("orders")]
    );
    assert_eq!(
        store.versions(&orders).await.expect("versions"),
        vec![version(1), version(2)]
    );
    assert!(store
        .location()
        .ends_with("/devstoreaccount1/conditional/fleet/eu"));
    // Every request carried a token for storage, from the caller's credential.
    let scopes = token.requests.lock().expect("lock").clone();
    assert!(!scopes.is_empty());
    assert!(scopes
        .iter()
        .all(|s| s == "https://storage.azure.com/.default"));
}

#[tokio::test]
async fn prefixes_keep_stores_in_one_container_apart() {
    let url = azurite().new_container("shared").await;
    let token = StorageToken::new();
    let a = BlobStore::new(&format!("{url}/a"), token.clone(), None).expect("a");
    let b = BlobStore::new(&format!("{url}/b"), token, None).expect("b");
    a.create_record(&name("orders"), &version(1), b"a")
        .await
        .expect("create");
    assert!(b.names().await.expect("names").is_empty());
    assert!(matches!(
        b.read_record(&name("orders"), &version(1)).await,
        Err(Error::KeyNotFound { .. })
    ));
    b.create_record(&name("orders"), &version(1), b"b")
        .await
        .expect("the same name under another prefix is another record");
}

/// A credential whose tokens are for another service (Key Vault): the emulator refuses
/// them as the real service does.
#[derive(Debug)]
struct WrongAudience;

#[async_trait::async_trait]
impl azure_core::credentials::TokenCredential for WrongAudience {
    async fn get_token(
        &self,
        _: &[&str],
        _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        let good = support::azurite::token();
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        use base64ct::{Base64UrlUnpadded, Encoding};
        let claims = Base64UrlUnpadded::decode_vec(&parts[1]).expect("claims");
        let mut claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        claims["aud"] = "https://vault.azure.net".into();
        parts[1] = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
        Ok(azure_core::credentials::AccessToken::new(
            parts.join("."),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn refusals_say_what_to_do() {
    let url = azurite().new_container("refusals").await;
    let wrong = BlobStore::new(&url, Arc::new(WrongAudience), None).expect("store");
    match wrong.read_current(&name("orders")).await {
        Err(Error::AccessDenied { detail, .. }) => {
            assert!(detail.contains("Storage Blob Data"), "{detail}")
        }
        other => panic!("a token for another audience: {other:?}"),
    }
    let missing = BlobStore::new(
        &azurite().container_url("no-such-container"),
        StorageToken::new(),
        None,
    )
    .expect("store");
    match missing.read_current(&name("orders")).await {
        Err(Error::KeyNotFound { detail, .. }) => {
            assert!(detail.contains("ContainerNotFound"), "{detail}")
        }
        other => panic!("a missing container: {other:?}"),
    }
    for bad in [
        url.replace("https://", "http://"),
        format!("{url}?sv=2025-01-01&sig=abc"),
        format!("{url}/../x"),
    ] {
        assert!(
            matches!(
                BlobStore::new(&bad, StorageToken::new(), None),
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
}

struct Cmk {
    _dir: tempfile::TempDir,
    keyring: Keyring,
}

fn cmk() -> Cmk {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path().join("keys")).expect("keyring");
    keyring.create_key("cmk").expect("cmk");
    Cmk { _dir: dir, keyring }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_keys_seal_rotate_race_and_rewrap_in_a_container() {
    let (store, _) = store_in("branches", "").await;
    let cmk = cmk();
    let key: Arc<dyn KeyWrapper> = Arc::new(cmk.keyring.key("cmk").expect("cmk"));
    let branch = Arc::new(
        BranchWrapper::create(store.clone(), "orders", key.clone())
            .await
            .expect("create"),
    );
    let sealer = Envelope::builder()
        .seal_with(branch.clone())
        .build()
        .expect("envelope");
    let old = sealer.seal(b"under v1", b"").await.expect("seal");

    // Two rotations read the same `current`; the container's ETag check lets one win.
    let racing: Arc<dyn BranchStore> = Arc::new(BothReadFirst::new(store.clone()));
    let a = BranchWrapper::new(racing.clone(), "orders", key.clone()).expect("a");
    let b = BranchWrapper::new(racing, "orders", key.clone()).expect("b");
    let (ra, rb) = tokio::join!(a.rotate(), b.rotate());
    let (winner, lost) = match (ra, rb) {
        (Ok(kid), Err(e)) | (Err(e), Ok(kid)) => (kid, e),
        other => panic!("exactly one rotation must win: {other:?}"),
    };
    assert!(matches!(lost, Error::Conflict { .. }), "{lost:?}");
    let current = store.read_current(&name("orders")).await.expect("current");
    assert_eq!(
        winner.to_string(),
        format!("branch:orders/{}", current.version)
    );
    assert_eq!(store.versions(&name("orders")).await.expect("v").len(), 3);

    // New objects go under the winner; old ones still open.
    let fresh = Arc::new(BranchWrapper::new(store.clone(), "orders", key.clone()).expect("w"));
    let envelope = Envelope::builder()
        .seal_with(fresh.clone())
        .build()
        .expect("envelope");
    let new = envelope.seal(b"under v2", b"").await.expect("seal");
    assert_eq!(
        support::slot_kid(&new),
        winner.to_string(),
        "sealed under the winner"
    );

    // A CMK rotation: every record (the loser's too: it opens) moves; objects do not.
    cmk.keyring.rotate_key("cmk").expect("rotate");
    let records = Envelope::builder()
        .open_with(Arc::new(cmk.keyring.key("cmk").expect("cmk")))
        .provider(Provider::default())
        .build()
        .expect("records");
    let moved = BranchWrapper::rewrap_records(store.as_ref(), &records)
        .await
        .expect("rewrap records");
    assert_eq!(moved.len(), 3, "{moved:?}");
    let reader = Envelope::builder()
        .open_with(Arc::new(
            BranchWrapper::new(
                store.clone(),
                "orders",
                Arc::new(cmk.keyring.key("cmk").expect("cmk")),
            )
            .expect("reader"),
        ))
        .build()
        .expect("reader");
    assert_eq!(
        reader.open(&old, b"").await.expect("old").plaintext(),
        b"under v1"
    );
    assert_eq!(
        reader.open(&new, b"").await.expect("new").plaintext(),
        b"under v2"
    );
}
