//! Branch keys over a Key Vault CMK (the loopback double), counted: a fleet opening many
//! distinct objects makes one `unwrapKey` per branch version per time to live, and a
//! disabled CMK stops opens once that time has passed.
#![cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]

use crate::support;
use support::keyvault_double;

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::branch::{BranchKeyCacheConfig, BranchWrapper, DirectoryStore};
use cmk_envelope::{Envelope, Error, KeyWrapper};
use keyvault_double::{quick_options, KeyVaultDouble};

const OBJECTS: usize = 10_000;
const TASKS: usize = 8;

fn vault_cmk(vault: &KeyVaultDouble) -> Arc<dyn KeyWrapper> {
    keyvault_double::lazy_key(vault, "cmk", quick_options(&[vault]))
}

fn reader(store: &Arc<DirectoryStore>, vault: &KeyVaultDouble, ttl: Duration) -> Envelope {
    let branch = BranchWrapper::new(store.clone(), "fleet", vault_cmk(vault))
        .expect("branch")
        .cache(
            BranchKeyCacheConfig::default()
                .time_to_live(ttl)
                .expect("ttl"),
        );
    Envelope::builder()
        .open_with(Arc::new(branch))
        .build()
        .expect("envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_opening_distinct_objects_make_one_unwrap_per_ttl() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("cmk", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(DirectoryStore::create(dir.path()).expect("store"));
    let branch = BranchWrapper::create(store.clone(), "fleet", vault_cmk(&vault))
        .await
        .expect("create");
    let writer = Envelope::builder()
        .seal_with(Arc::new(branch))
        .build()
        .expect("envelope");
    let mut objects = Vec::with_capacity(OBJECTS);
    for i in 0..OBJECTS {
        objects.push(
            writer
                .seal(&(i as u64).to_be_bytes(), b"")
                .await
                .expect("seal"),
        );
    }
    let objects = Arc::new(objects);

    // A new process: 8 tasks open all 10,000 objects at once.
    vault.reset_calls();
    let fleet = reader(&store, &vault, Duration::from_secs(600));
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (fleet, objects) = (fleet.clone(), objects.clone());
            tokio::spawn(async move {
                for i in (t..OBJECTS).step_by(TASKS) {
                    let opened = fleet.open(&objects[i], b"").await.expect("open");
                    assert_eq!(opened.plaintext(), (i as u64).to_be_bytes());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(vault.calls("unwrapKey"), 1, "{:?}", vault.all_calls());

    // With a 1 s time to live: one unwrap, none more within the second, one more after.
    vault.reset_calls();
    let short = reader(&store, &vault, Duration::from_secs(1));
    short.open(&objects[0], b"").await.expect("open");
    short.open(&objects[1], b"").await.expect("open");
    assert_eq!(vault.calls("unwrapKey"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    short.open(&objects[2], b"").await.expect("open");
    assert_eq!(vault.calls("unwrapKey"), 2);

    // Revocation: the CMK disabled, opens go on until the time to live has passed, then
    // fail as a key problem (not as tampering).
    vault.set_enabled("cmk", false);
    short
        .open(&objects[3], b"")
        .await
        .expect("still within the time to live");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let revoked = short.open(&objects[4], b"").await;
    assert!(
        matches!(revoked, Err(Error::KeyDisabled { .. })),
        "{revoked:?}"
    );
}
