//! The rotation story: write under v1, rotate, read, lazily re-wrap, read again; nothing
//! deleted, new data under v2.

use crate::support;
use std::collections::BTreeSet;

use cmk_envelope::crypto::Provider;
use cmk_envelope::{Error, RewrapTarget};

fn pem_versions(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir.join("orders"))
        .expect("key dir")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".pem")
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn rotate_read_rewrap_read() {
    for provider in Provider::all() {
        let t = support::temp_keyring(provider);
        let envelope = support::envelope_for(&t.key, provider, 64);
        let v1 = t.keyring.list().expect("list")[0].current_kid.clone();

        let old = envelope
            .seal(b"written under v1", b"id=1")
            .await
            .expect("seal");
        assert_eq!(
            cmk_envelope::inspect::inspect(&old).expect("inspect").slots[0].kid,
            v1
        );
        let fresh = envelope.open(&old, b"id=1").await.expect("open");
        assert!(!fresh.info().is_stale(), "not stale before rotation");

        let v2 = t.keyring.rotate_key("orders").expect("rotate").to_string();
        assert_ne!(v1, v2);
        t.key.refresh().await.expect("refresh");

        // Old data stays readable and reports that it is stale.
        let opened = envelope.open(&old, b"id=1").await.expect("old still opens");
        assert_eq!(opened.plaintext(), b"written under v1");
        assert_eq!(opened.info().kid(), v1);
        let rewrapped = opened.info().rewrapped().expect("stale after rotation");
        assert_eq!(
            (rewrapped.from_kid(), rewrapped.to_kid()),
            (v1.as_str(), v2.as_str())
        );

        // Lazy re-wrap: only the header changes.
        let updated = rewrapped.apply_to(&old).expect("apply");
        assert_eq!(
            &updated[rewrapped.header().len()..],
            &old[rewrapped.old_header_len()..]
        );
        let again = envelope
            .open(&updated, b"id=1")
            .await
            .expect("re-wrapped opens");
        assert_eq!(again.info().kid(), v2);
        assert!(!again.info().is_stale());
        assert_eq!(again.plaintext(), b"written under v1");

        // New data uses v2; an explicit re-wrap of a current object is a no-op.
        let new = envelope.seal(b"new", b"").await.expect("seal");
        assert_eq!(
            cmk_envelope::inspect::inspect(&new).expect("inspect").slots[0].kid,
            v2
        );
        assert!(envelope
            .rewrap(&new, RewrapTarget::CurrentVersion)
            .await
            .expect("rewrap")
            .is_none());
        // Explicit re-wrap of the old object, from a detached header.
        let header_len = cmk_envelope::inspect::inspect(&old)
            .expect("inspect")
            .header_len;
        let explicit = envelope
            .rewrap(&old[..header_len], RewrapTarget::CurrentVersion)
            .await
            .expect("rewrap")
            .expect("changed");
        assert_eq!(explicit.to_kid(), v2);

        // Nothing was deleted: both versions are on disk and listed.
        let on_disk = pem_versions(t.dir.path());
        assert_eq!(on_disk.len(), 2);
        assert_eq!(t.keyring.list().expect("list")[0].versions.len(), 2);
    }
}

#[tokio::test]
async fn a_deleted_version_is_key_not_found_not_tampering() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let envelope = support::envelope_for(&t.key, provider, 64);
    let old = envelope.seal(b"x", b"").await.expect("seal");
    let info = cmk_envelope::inspect::inspect(&old).expect("inspect");
    let version = info.slots[0].version.clone().expect("version");
    t.keyring.rotate_key("orders").expect("rotate");
    t.key.refresh().await.expect("refresh");
    // An operator removes the old version by hand (the crate never does).
    std::fs::remove_file(t.dir.path().join(format!("orders/{version}.pem"))).expect("rm");
    // A fresh wrapper, so no private key is cached.
    let reader = support::envelope_for(
        &std::sync::Arc::new(t.keyring.key("orders").expect("key")),
        provider,
        64,
    );
    match reader.open(&old, b"").await {
        Err(Error::KeyNotFound { kid, .. }) => assert_eq!(kid, info.slots[0].kid),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
}

/// A stale slot that is not the first: only it is replaced, the other slot stays, and the
/// report names the right kids.
#[tokio::test]
async fn lazy_rewrap_of_a_second_slot_keeps_the_first() {
    use cmk_envelope::format::Header;
    use std::sync::Arc;

    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    t.keyring.create_key("archive").expect("archive key");
    let archive: Arc<dyn cmk_envelope::KeyWrapper> =
        Arc::new(t.keyring.key("archive").expect("load"));
    let writer = support::envelope_for(&t.key, provider, 64);
    let sealed = writer.seal(b"two slots", b"").await.expect("seal");
    let on_archive = writer
        .rewrap(&sealed, RewrapTarget::Key(archive))
        .await
        .expect("rewrap")
        .expect("changed");
    // One header, two slots wrapping the same data key: archive first, orders v1 second.
    let (original, original_len) = Header::parse_prefix(&sealed).expect("parse");
    let archive_header = Header::parse_detached(on_archive.header()).expect("parse");
    let both = original
        .with_slots(vec![
            archive_header.slots()[0].clone(),
            original.slots()[0].clone(),
        ])
        .expect("two slots");
    let mut two_slot = both.to_bytes();
    two_slot.extend_from_slice(&sealed[original_len..]);
    let v1 = original.slots()[0].kid().to_owned();

    let v2 = t.keyring.rotate_key("orders").expect("rotate").to_string();
    t.key.refresh().await.expect("refresh");
    // A reader that knows only `orders`: slot 0 is not its key, slot 1 opens and is stale.
    let reader = cmk_envelope::Envelope::builder()
        .open_with(t.key.clone())
        .build()
        .expect("reader");
    let opened = reader
        .open(&two_slot, b"")
        .await
        .expect("opens from slot 1");
    let rewrapped = opened.info().rewrapped().expect("stale");
    assert_eq!(
        (rewrapped.from_kid(), rewrapped.to_kid()),
        (v1.as_str(), v2.as_str())
    );
    let new_header = Header::parse_detached(rewrapped.header()).expect("parse");
    let kids: Vec<&str> = new_header.slots().iter().map(|s| s.kid()).collect();
    assert_eq!(kids, [archive_header.slots()[0].kid(), v2.as_str()]);
    let updated = rewrapped.apply_to(&two_slot).expect("apply");
    assert_eq!(
        reader
            .open(&updated, b"")
            .await
            .expect("opens")
            .info()
            .kid(),
        v2
    );
}

#[tokio::test]
async fn a_rotation_in_this_process_is_followed_without_refresh() {
    let t = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&t.key, Provider::default(), 64);
    let old = envelope.seal(b"before", b"").await.expect("seal");
    // Another handle on the same directory, as another part of the service would hold.
    let other_handle = cmk_envelope::software::Keyring::open(t.dir.path()).expect("open");
    let v2 = other_handle
        .rotate_key("orders")
        .expect("rotate")
        .to_string();

    // No refresh: new data goes under the new version, and old data reports itself stale.
    let new = envelope.seal(b"after", b"").await.expect("seal");
    assert_eq!(
        cmk_envelope::inspect::inspect(&new).expect("inspect").slots[0].kid,
        v2
    );
    let opened = envelope.open(&old, b"").await.expect("open");
    assert_eq!(
        opened.info().rewrapped().map(|r| r.to_kid().to_owned()),
        Some(v2.clone())
    );
}

#[tokio::test]
async fn a_rotation_by_another_process_needs_refresh() {
    let t = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&t.key, Provider::default(), 64);
    let v1 = t.keyring.list().expect("list")[0].current_kid.clone();
    // Another process rotates: simulated by writing `current` directly, as its keyring did.
    let other = support::temp_keyring(Provider::default());
    let moved = other.keyring.list().expect("list")[0].current_kid.clone();
    let version = moved.rsplit('/').next().expect("version");
    std::fs::copy(
        other
            .dir
            .path()
            .join("orders")
            .join(format!("{version}.pem")),
        t.dir.path().join("orders").join(format!("{version}.pem")),
    )
    .expect("copy");
    std::fs::write(t.dir.path().join("orders/current"), format!("{version}\n")).expect("write");

    let before = envelope.seal(b"x", b"").await.expect("seal");
    assert_eq!(
        cmk_envelope::inspect::inspect(&before)
            .expect("inspect")
            .slots[0]
            .kid,
        v1
    );
    t.key.refresh().await.expect("refresh");
    let after = envelope.seal(b"x", b"").await.expect("seal");
    assert_eq!(
        cmk_envelope::inspect::inspect(&after)
            .expect("inspect")
            .slots[0]
            .kid,
        moved
    );
}

#[tokio::test]
async fn every_way_of_opening_reports_a_stale_object_and_its_rewrapped_header() {
    let t = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&t.key, Provider::default(), 64);
    let plaintext = vec![9u8; 1000];
    let old = envelope.seal(&plaintext, b"").await.expect("seal");
    let v1 = cmk_envelope::inspect::inspect(&old).expect("inspect").slots[0]
        .kid
        .clone();
    let v2 = t.keyring.rotate_key("orders").expect("rotate").to_string();

    let check = |how: &str, info: &cmk_envelope::OpenInfo| {
        assert_eq!(info.kid(), v1, "{how}");
        assert!(info.is_stale(), "{how}");
        let rewrapped = info
            .rewrapped()
            .unwrap_or_else(|| panic!("{how}: re-wrapped"));
        assert_eq!(rewrapped.to_kid(), v2, "{how}");
    };
    let whole = envelope.open(&old, b"").await.expect("open");
    check("open", whole.info());
    let mut out = Vec::new();
    check(
        "open_into",
        &envelope.open_into(&old, b"", &mut out).await.expect("open"),
    );
    let mut reader = envelope
        .open_reader(std::io::Cursor::new(old.clone()), b"")
        .await
        .expect("reader");
    check("open_reader, before reading", reader.info());
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut read).expect("read");
    assert_eq!(read, plaintext);
    check("open_reader, after reading", reader.info());
    let range = envelope
        .open_range(std::io::Cursor::new(old.clone()), b"", 100..200)
        .await
        .expect("range");
    assert_eq!(range.plaintext(), &plaintext[100..200]);
    check("open_range", range.info());
    // What every way hands back is the same header, and it opens.
    let moved = whole
        .info()
        .rewrapped()
        .expect("rewrapped")
        .apply_to(&old)
        .expect("apply");
    let reopened = envelope.open(&moved, b"").await.expect("open");
    assert_eq!(reopened.info().kid(), v2);
    assert!(!reopened.info().is_stale());
}
