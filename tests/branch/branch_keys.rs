//! Branch keys over the software keyring: create, rotate, lazy re-wrap, records refused
//! for the right reasons, tampering, re-wrap between CMK and branch slots, a CMK rotation
//! that touches only the records, and two rotations at once.

use crate::support;
use std::path::Path;
use std::sync::Arc;
use support::race_store::BothReadFirst;

use cmk_envelope::branch::{BranchStore, BranchWrapper, DirectoryStore};
use cmk_envelope::crypto::Provider;
use cmk_envelope::format::WrapAlgorithm;
use cmk_envelope::inspect::inspect;
use cmk_envelope::kid::KeyName;
use cmk_envelope::software::{Keyring, SoftwareWrapper};
use cmk_envelope::{Envelope, Error, KeyWrapper, RewrapTarget};

struct Setup {
    _dir: tempfile::TempDir,
    keyring: Keyring,
    cmk: Arc<SoftwareWrapper>,
    store: Arc<DirectoryStore>,
    branches: std::path::PathBuf,
}

fn setup(provider: Provider) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path().join("keys"))
        .expect("keyring")
        .provider(provider);
    keyring.create_key("cmk").expect("cmk");
    let cmk = Arc::new(keyring.key("cmk").expect("cmk"));
    let branches = dir.path().join("branches");
    let store = Arc::new(DirectoryStore::create(&branches).expect("store"));
    Setup {
        _dir: dir,
        keyring,
        cmk,
        store,
        branches,
    }
}

async fn branch(s: &Setup, provider: Provider) -> Arc<BranchWrapper> {
    Arc::new(
        BranchWrapper::create(s.store.clone(), "orders", s.cmk.clone())
            .await
            .expect("create")
            .provider(provider),
    )
}

fn envelope(sealer: Arc<dyn KeyWrapper>, provider: Provider) -> Envelope {
    Envelope::builder()
        .seal_with(sealer)
        .provider(provider)
        .build()
        .expect("envelope")
}

fn record_path(branches: &Path, kid: &str) -> std::path::PathBuf {
    let rest = kid.strip_prefix("branch:").expect("branch kid");
    let (name, version) = rest.split_once('/').expect("name/version");
    branches.join(name).join(format!("{version}.cmke"))
}

#[tokio::test]
async fn seal_rotate_open_and_rewrap_lazily_without_the_cmk() {
    for provider in Provider::all() {
        let s = setup(provider);
        let branch = branch(&s, provider).await;
        let envelope = envelope(branch.clone(), provider);
        let v1 = branch.current_kid().await.expect("current");
        let old = envelope.seal(b"under v1", b"id=1").await.expect("seal");
        let slot = &inspect(&old).expect("inspect").slots[0];
        assert_eq!(slot.kid, v1);
        assert_eq!(slot.algorithm, WrapAlgorithm::BranchAes256Gcm);

        let v2 = branch.rotate().await.expect("rotate").to_string();
        assert_ne!(v1, v2);
        assert_eq!(branch.current_kid().await.expect("current"), v2);
        let new = envelope.seal(b"under v2", b"id=2").await.expect("seal");
        assert_eq!(inspect(&new).expect("inspect").slots[0].kid, v2);

        let opened = envelope.open(&old, b"id=1").await.expect("old opens");
        assert_eq!(opened.plaintext(), b"under v1");
        assert!(opened.info().is_stale());
        let rewrapped = opened.info().rewrapped().expect("re-wrapped");
        assert_eq!(
            (rewrapped.from_kid(), rewrapped.to_kid()),
            (v1.as_str(), v2.as_str())
        );
        let updated = rewrapped.apply_to(&old).expect("apply");
        assert_eq!(
            &updated[rewrapped.header().len()..],
            &old[rewrapped.old_header_len()..]
        );
        let again = envelope.open(&updated, b"id=1").await.expect("open");
        assert!(!again.info().is_stale());

        // Both records are kept.
        let versions = s.store.versions(branch.name()).await.expect("versions");
        assert_eq!(versions.len(), 2);
    }
}

#[tokio::test]
async fn a_record_swapped_for_another_versions_record_is_refused() {
    let provider = Provider::default();
    let s = setup(provider);
    let branch = branch(&s, provider).await;
    let envelope = envelope(branch.clone(), provider);
    let v1 = branch.current_kid().await.expect("v1");
    let v2 = branch.rotate().await.expect("rotate").to_string();
    let sealed = envelope.seal(b"x", b"").await.expect("seal under v2");
    // A fresh reader, with no branch key in memory, after v2's record was replaced by v1's.
    std::fs::copy(record_path(&s.branches, &v1), record_path(&s.branches, &v2)).expect("swap");
    let reader = BranchWrapper::new(s.store.clone(), "orders", s.cmk.clone()).expect("reader");
    let reader = envelope_reader(Arc::new(reader), provider);
    assert!(matches!(
        reader.open(&sealed, b"").await,
        Err(Error::DecryptionFailed)
    ));
}

fn envelope_reader(opener: Arc<dyn KeyWrapper>, provider: Provider) -> Envelope {
    Envelope::builder()
        .open_with(opener)
        .provider(provider)
        .build()
        .expect("envelope")
}

#[tokio::test]
async fn a_record_wrapped_by_a_branch_key_is_refused() {
    let provider = Provider::default();
    let s = setup(provider);
    let outer = branch(&s, provider).await;
    let nested_store =
        Arc::new(DirectoryStore::create(s.branches.join("..").join("nested")).expect("store"));
    let nested = BranchWrapper::create(nested_store, "inner", outer).await;
    assert!(matches!(nested, Err(Error::PolicyRefused(_))), "{nested:?}");
}

#[tokio::test]
async fn a_record_that_does_not_hold_32_bytes_is_refused() {
    let provider = Provider::default();
    let s = setup(provider);
    let branch = branch(&s, provider).await;
    let kid = branch.current_kid().await.expect("kid");
    // A record of the right kid and associated data, but 31 bytes inside.
    let aad = [b"CMKE v1 branch key\0".as_slice(), kid.as_bytes()].concat();
    let record = envelope(s.cmk.clone(), provider)
        .seal(&[7; 31], &aad)
        .await
        .expect("seal");
    std::fs::write(record_path(&s.branches, &kid), record).expect("write");
    let reader = BranchWrapper::new(s.store.clone(), "orders", s.cmk.clone()).expect("reader");
    let sealed = envelope(Arc::new(reader), provider).seal(b"x", b"").await;
    assert!(matches!(sealed, Err(Error::InvalidKey(_))), "{sealed:?}");
}

#[tokio::test]
async fn every_byte_of_a_branch_slot_flipped_fails() {
    let provider = Provider::default();
    let s = setup(provider);
    let branch = branch(&s, provider).await;
    let envelope = envelope(branch.clone(), provider);
    let sealed = envelope.seal(b"tamper me", b"").await.expect("seal");
    let kid_len = branch.current_kid().await.expect("kid").len();
    // Preamble (74), slot count (1), then the slot: kid length, kid, algorithm, length, 60.
    let slot = 75..75 + 2 + kid_len + 1 + 2 + 60;
    let wrapped = slot.end - 60..slot.end;
    for at in slot {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        let result = envelope.open(&bad, b"").await;
        assert!(result.is_err(), "byte {at} flipped still opens");
        if wrapped.contains(&at) {
            assert!(
                matches!(result, Err(Error::DecryptionFailed)),
                "byte {at}: {result:?}"
            );
        }
    }
}

#[tokio::test]
async fn rewrap_from_the_cmk_to_the_branch_key_and_back() {
    let provider = Provider::default();
    let s = setup(provider);
    let branch = branch(&s, provider).await;
    let cmk_envelope = Envelope::builder()
        .seal_with(s.cmk.clone())
        .open_with(branch.clone())
        .provider(provider)
        .build()
        .expect("envelope");
    let sealed = cmk_envelope.seal(b"moving", b"a").await.expect("seal");

    let to_branch = cmk_envelope
        .rewrap(&sealed, RewrapTarget::Key(branch.clone()))
        .await
        .expect("rewrap")
        .expect("moved");
    let under_branch = to_branch.apply_to(&sealed).expect("apply");
    let slot = &inspect(&under_branch).expect("inspect").slots[0];
    assert_eq!(slot.algorithm, WrapAlgorithm::BranchAes256Gcm);
    assert_eq!(
        &under_branch[to_branch.header().len()..],
        &sealed[to_branch.old_header_len()..]
    );
    assert_eq!(
        cmk_envelope
            .open(&under_branch, b"a")
            .await
            .expect("open")
            .plaintext(),
        b"moving"
    );

    let back = cmk_envelope
        .rewrap(&under_branch, RewrapTarget::Key(s.cmk.clone()))
        .await
        .expect("rewrap back")
        .expect("moved back");
    let under_cmk = back.apply_to(&under_branch).expect("apply");
    assert!(inspect(&under_cmk).expect("inspect").slots[0]
        .kid
        .starts_with("local:cmk/"));
    assert_eq!(
        cmk_envelope
            .open(&under_cmk, b"a")
            .await
            .expect("open")
            .plaintext(),
        b"moving"
    );
}

#[tokio::test]
async fn a_branch_key_over_another_keyring_is_another_vault_for_the_policy() {
    let provider = Provider::default();
    let s = setup(provider);
    let other = setup(provider);
    let foreign_branch = branch(&other, provider).await;
    let cmk_envelope = envelope(s.cmk.clone(), provider);
    let sealed = cmk_envelope.seal(b"stay", b"").await.expect("seal");
    let moved = cmk_envelope
        .rewrap(&sealed, RewrapTarget::Key(foreign_branch))
        .await;
    assert!(matches!(moved, Err(Error::PolicyRefused(_))), "{moved:?}");
}

#[tokio::test]
async fn a_cmk_rotation_rewraps_the_records_only() {
    let provider = Provider::default();
    let s = setup(provider);
    let branch = branch(&s, provider).await;
    let envelope = envelope(branch.clone(), provider);
    let objects: Vec<Vec<u8>> = {
        let mut v = Vec::new();
        for i in 0..5u8 {
            v.push(envelope.seal(&[i; 100], b"").await.expect("seal"));
        }
        v
    };
    let kid = branch.current_kid().await.expect("kid");
    let record_before = std::fs::read(record_path(&s.branches, &kid)).expect("record");
    let cmk_v1 = inspect(&record_before).expect("inspect").slots[0]
        .kid
        .clone();

    let cmk_v2 = s.keyring.rotate_key("cmk").expect("rotate cmk").to_string();
    let records = Envelope::builder()
        .open_with_all(s.keyring.openers().expect("openers"))
        .build()
        .expect("records envelope");
    let moved = BranchWrapper::rewrap_records(s.store.as_ref(), &records)
        .await
        .expect("rewrap records");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].1, cmk_v2);
    let record_after = std::fs::read(record_path(&s.branches, &kid)).expect("record");
    assert_eq!(
        inspect(&record_after).expect("inspect").slots[0].kid,
        cmk_v2
    );
    assert_ne!(cmk_v1, cmk_v2);
    // Nothing more to do the second time.
    let again = BranchWrapper::rewrap_records(s.store.as_ref(), &records)
        .await
        .expect("again");
    assert!(again.is_empty());

    // The objects were not touched and still open, through the re-wrapped record.
    let reader = BranchWrapper::new(s.store.clone(), "orders", s.cmk.clone()).expect("reader");
    let reader = envelope_reader(Arc::new(reader), provider);
    for (i, object) in objects.iter().enumerate() {
        let opened = reader.open(object, b"").await.expect("open");
        assert_eq!(opened.plaintext(), &[i as u8; 100]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_at_once_one_wins_and_both_records_open() {
    let provider = Provider::default();
    let s = setup(provider);
    let first = branch(&s, provider).await.current_kid().await.expect("v1");
    let racing: Arc<dyn BranchStore> = Arc::new(BothReadFirst::new(s.store.clone()));
    let a = BranchWrapper::new(racing.clone(), "orders", s.cmk.clone()).expect("a");
    let b = BranchWrapper::new(racing, "orders", s.cmk.clone()).expect("b");
    let (ra, rb) = tokio::join!(a.rotate(), b.rotate());
    let (winner, conflict) = match (ra, rb) {
        (Ok(kid), Err(e)) | (Err(e), Ok(kid)) => (kid, e),
        other => panic!("exactly one rotation must win: {other:?}"),
    };
    assert!(matches!(conflict, Error::Conflict { .. }), "{conflict:?}");
    assert!(
        conflict.to_string().contains("another rotation"),
        "{conflict}"
    );
    let current = s
        .store
        .read_current(&KeyName::new("orders").expect("name"))
        .await
        .expect("current");
    assert_eq!(
        format!("branch:orders/{}", current.version),
        winner.to_string()
    );
    assert_ne!(winner.to_string(), first);

    // The loser's record is kept, and every record opens.
    let reader =
        Arc::new(BranchWrapper::new(s.store.clone(), "orders", s.cmk.clone()).expect("reader"));
    let versions = s.store.versions(reader.name()).await.expect("versions");
    assert_eq!(versions.len(), 3);
    let listing = BranchWrapper::list(s.store.as_ref()).await.expect("list");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].versions.len(), 3);
    assert!(listing[0]
        .versions
        .iter()
        .all(|(_, cmk_kids)| cmk_kids.len() == 1));
}

/// What a user writes first around any key: a decorator that forwards the required
/// methods only (here counting calls), and nothing of `confirm_wrap`.
struct Counting<W> {
    inner: Arc<W>,
    wraps: std::sync::atomic::AtomicUsize,
    unwraps: std::sync::atomic::AtomicUsize,
}

#[cmk_envelope::async_trait]
impl<W: KeyWrapper> KeyWrapper for Counting<W> {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.inner.current_kid().await
    }
    async fn wrap_key(
        &self,
        data_key: &cmk_envelope::DataKey,
        context: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::format::KeySlot> {
        self.wraps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.wrap_key(data_key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &cmk_envelope::format::KeySlot,
        context: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::Unwrapped> {
        self.unwraps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.unwrap_key(slot, context).await
    }
    fn key_facts(&self) -> cmk_envelope::KeyFacts<'_> {
        self.inner.key_facts()
    }
}

#[tokio::test]
async fn a_decorator_forwarding_the_required_methods_works_around_a_branch_key() {
    let provider = Provider::default();
    let s = setup(provider);
    let counting = Arc::new(Counting {
        inner: branch(&s, provider).await,
        wraps: Default::default(),
        unwraps: Default::default(),
    });
    let envelope = envelope(counting.clone(), provider);
    for i in 0..1000u32 {
        let plaintext = i.to_be_bytes();
        let sealed = envelope.seal(&plaintext, b"").await.expect("seal");
        let opened = envelope.open(&sealed, b"").await.expect("open");
        assert_eq!(opened.plaintext(), plaintext);
    }
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&counting.wraps), 1000);
    assert_eq!(count(&counting.unwraps), 1000);
    // And a re-wrap through it (the default confirm_wrap) after a branch rotation.
    let sealed = envelope.seal(b"old", b"").await.expect("seal");
    counting.inner.rotate().await.expect("rotate");
    let rewrapped = envelope
        .rewrap(&sealed, RewrapTarget::CurrentVersion)
        .await
        .expect("rewrap")
        .expect("stale after rotation");
    let updated = rewrapped.apply_to(&sealed).expect("apply");
    assert_eq!(
        envelope
            .open(&updated, b"")
            .await
            .expect("open")
            .plaintext(),
        b"old"
    );
}
