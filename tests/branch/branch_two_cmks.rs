//! Branch key records sealed under two CMKs (vaults of two regions): each record has a
//! slot under each, and when the first CMK's service fails transiently, records open with
//! the second; the failed service is passed over for the cool-down.

use crate::support;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cmk_envelope::branch::{BranchStore, BranchWrapper, DirectoryStore};
use cmk_envelope::crypto::Provider;
use cmk_envelope::{Envelope, KeyWrapper};
use support::down_service::Service;

#[tokio::test]
async fn records_under_two_cmks_open_with_the_second_when_the_first_is_down() {
    let (east, west) = (
        support::temp_keyring(Provider::default()),
        support::temp_keyring(Provider::default()),
    );
    // Two keyrings' keys of one name would each claim the other's kids: distinct names.
    west.keyring.create_key("west-cmk").expect("key");
    let west_cmk: Arc<dyn KeyWrapper> = Arc::new(west.keyring.key("west-cmk").expect("key"));
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(DirectoryStore::create(dir.path().join("branches")).expect("store"));
    let writer = BranchWrapper::new(store.clone(), "orders", east.key.clone())
        .expect("branch")
        .also_seal_records_with(Arc::clone(&west_cmk))
        .create_first_version()
        .await
        .expect("create");
    let sealer = Envelope::builder()
        .seal_with(Arc::new(writer))
        .build()
        .expect("envelope");
    let mut objects = Vec::new();
    for i in 0..20u32 {
        objects.push(sealer.seal(&i.to_be_bytes(), b"").await.expect("seal"));
    }

    // The record names both CMKs.
    let name = cmk_envelope::kid::KeyName::new("orders").expect("name");
    let current = store.read_current(&name).await.expect("current");
    let record = store
        .read_record(&name, &current.version)
        .await
        .expect("record");
    let info = cmk_envelope::inspect::inspect(&record.bytes).expect("inspect");
    assert_eq!(info.slots.len(), 2, "one slot per CMK");

    // A reader whose first CMK's service is down: every open still works, one call to it.
    let east_service = Service::new(east.key.clone());
    east_service.down.store(true, Ordering::SeqCst);
    let west_service = Service::new(Arc::clone(&west_cmk));
    let reader_branch = BranchWrapper::new(
        store,
        "orders",
        Arc::clone(&east_service) as Arc<dyn KeyWrapper>,
    )
    .expect("branch")
    .also_seal_records_with(Arc::clone(&west_service) as Arc<dyn KeyWrapper>)
    .cache(cmk_envelope::branch::BranchKeyCacheConfig::default());
    let reader = Envelope::builder()
        .open_with(Arc::new(reader_branch))
        .build()
        .expect("envelope");
    for (i, object) in objects.iter().enumerate() {
        let opened = reader.open(object, b"").await.expect("open");
        assert_eq!(opened.plaintext(), &(i as u32).to_be_bytes());
    }
    assert_eq!(east_service.calls(), 1, "the downed CMK was asked once");
    assert_eq!(
        west_service.calls(),
        1,
        "the branch key's record opened once"
    );

    // Without the second CMK the same reader cannot open: the first one is down.
    let (east_only, _) = (Service::new(east.key.clone()), ());
    east_only.down.store(true, Ordering::SeqCst);
    let dir_store = Arc::new(DirectoryStore::open(dir.path().join("branches")).expect("store"));
    let lone = Envelope::builder()
        .open_with(Arc::new(
            BranchWrapper::new(dir_store, "orders", east_only as Arc<dyn KeyWrapper>)
                .expect("branch"),
        ))
        .build()
        .expect("envelope");
    let error = lone.open(&objects[0], b"").await.expect_err("down");
    assert!(error.is_transient(), "{error}");
}
