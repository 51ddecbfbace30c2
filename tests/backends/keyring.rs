//! The software keyring on disk: layout, modes, import, and clear errors.

use crate::support;
use std::path::Path;

use cmk_envelope::crypto::Provider;
use cmk_envelope::policy::KeyRules;
use cmk_envelope::software::Keyring;
use cmk_envelope::Error;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

#[test]
fn layout_and_modes_follow_the_design() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path().join("ring")).expect("create");
    let kid = keyring
        .create_key("orders")
        .expect("create key")
        .to_string();
    let version = kid.strip_prefix("local:orders/").expect("kid form");
    assert_eq!(version.len(), 32);
    assert!(version
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let key_dir = dir.path().join("ring/orders");
    let current = std::fs::read_to_string(key_dir.join("current")).expect("current");
    assert_eq!(current.trim(), version);
    let pem = std::fs::read_to_string(key_dir.join(format!("{version}.pem"))).expect("pem");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&key_dir.join(format!("{version}.pem"))), 0o600);
        assert_eq!(mode(&key_dir), 0o700);
    }
    // The generated key is RSA-2048 and imports back.
    let other = Keyring::create(dir.path().join("other")).expect("create");
    other.import_pem("copy", &pem).expect("re-import");
}

#[test]
fn import_accepts_openssl_rsa_2048_and_makes_it_current() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("create");
    let first = keyring.create_key("orders").expect("create");
    let imported = keyring
        .import_pem("orders", &fixture("rsa-2048.pem"))
        .expect("import");
    let listing = keyring.list().expect("list");
    assert_eq!(listing[0].current_kid, imported);
    assert_eq!(listing[0].versions.len(), 2);
    assert_ne!(first, imported);
}

#[test]
fn clear_errors_for_bad_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("create");
    let err = |pem: &str| {
        keyring
            .import_pem("k", pem)
            .expect_err("must fail")
            .to_string()
    };

    let small = err(&fixture("rsa-1024.pem"));
    assert!(
        small.contains("RSA-1024") && small.contains("2048"),
        "{small}"
    );
    let big = err(&fixture("rsa-3072.pem"));
    assert!(big.contains("RSA-3072"), "{big}");
    let ec = err(&fixture("ec-p256.pem"));
    assert!(ec.contains("EC") && ec.contains("only RSA"), "{ec}");
    let pkcs1 = err(&fixture("rsa-2048-pkcs1.pem"));
    assert!(
        pkcs1.contains("PKCS#1") && pkcs1.contains("openssl pkcs8"),
        "{pkcs1}"
    );
    let encrypted = err(&fixture("rsa-2048-encrypted.pem"));
    assert!(encrypted.contains("encrypted"), "{encrypted}");
    let small_exponent = err(&fixture("rsa-2048-e3.pem"));
    assert!(
        small_exponent.contains("exponent 3") && small_exponent.contains("65537"),
        "{small_exponent}"
    );
    let junk = err("hello");
    assert!(junk.contains("not a PEM"), "{junk}");
    let bad_name = keyring
        .import_pem("a/b", &fixture("rsa-2048.pem"))
        .expect_err("name");
    assert!(matches!(bad_name, Error::InvalidArgument(_)));
    // Nothing was written for any of them.
    assert!(keyring.list().expect("list").is_empty());
}

#[test]
fn opt_in_allows_rsa_3072() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = KeyRules::default()
        .allow_rsa_sizes(&[2048, 3072])
        .expect("policy");
    let keyring = Keyring::create(dir.path())
        .expect("create")
        .key_rules(policy);
    keyring
        .import_pem("big", &fixture("rsa-3072.pem"))
        .expect("opted in");
    assert!(KeyRules::default().allow_rsa_sizes(&[1024]).is_err());
}

#[test]
fn missing_keyring_key_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        Keyring::open(dir.path().join("nope")),
        Err(Error::KeyringNotFound(_))
    ));
    let keyring = Keyring::create(dir.path()).expect("create");
    assert!(matches!(
        keyring.key("ghost"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        keyring.rotate_key("ghost"),
        Err(Error::KeyNotFound { .. })
    ));
    keyring.create_key("orders").expect("create");
    assert!(matches!(
        keyring.create_key("orders"),
        Err(Error::InvalidArgument(_))
    ));
    // `current` naming a version whose file is gone.
    std::fs::write(
        dir.path().join("orders/current"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("write");
    match keyring.key("orders") {
        Err(Error::KeyNotFound { kid, .. }) => {
            assert_eq!(kid, "local:orders/0123456789abcdef0123456789abcdef")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_work_with_every_provider() {
    for provider in Provider::all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keyring = Keyring::create(dir.path())
            .expect("create")
            .provider(provider);
        keyring
            .import_pem("k", &fixture("rsa-2048.pem"))
            .expect("import");
        keyring.key("k").expect("load");
    }
}

#[cfg(unix)]
#[test]
fn a_broken_unrelated_key_or_a_symlink_never_stops_another_key() {
    use std::sync::Arc;

    use cmk_envelope::{Envelope, KeyWrapper};

    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("create");
    keyring.create_key("orders").expect("orders");
    keyring.create_key("other").expect("other");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
    let sealer = Envelope::builder()
        .seal_with(key)
        .build()
        .expect("envelope");
    let sealed = support::block_on(sealer.seal(b"row", b"")).expect("seal");

    std::fs::write(dir.path().join("other/current"), "garbage\n").expect("garbage");
    std::fs::create_dir(dir.path().join("halfmade")).expect("mkdir");
    std::os::unix::fs::symlink(dir.path().join("orders"), dir.path().join("alias"))
        .expect("symlink");

    let reader = Envelope::builder()
        .open_with_all(keyring.openers().expect("listing the keyring"))
        .build()
        .expect("envelope");
    let opened = support::block_on(reader.open(&sealed, b"")).expect("orders opens");
    assert_eq!(opened.plaintext(), b"row");

    let listing = keyring.list().expect("list");
    let broken = |name: &str| {
        listing
            .iter()
            .find(|k| k.name == name)
            .and_then(|k| k.broken.clone())
    };
    assert_eq!(broken("orders"), None);
    assert!(broken("other").is_some_and(|why| why.contains("does not name a version")));
    assert!(broken("halfmade").is_some_and(|why| why.contains("no current version")));
    assert!(broken("alias").is_some_and(|why| why.contains("symlink")));
    let alias = keyring.key("alias").expect_err("a symlink is no key");
    assert!(matches!(alias, Error::UntrustedFile { .. }), "{alias}");
}

#[cfg(unix)]
#[test]
fn key_files_that_others_can_change_are_refused() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("create");
    let kid = keyring.create_key("orders").expect("orders").to_string();
    let version = kid.strip_prefix("local:orders/").expect("kid");
    let file = dir.path().join(format!("orders/{version}.pem"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).expect("chmod");
    let error = keyring.key("orders").expect_err("refused");
    assert!(
        matches!(&error, Error::UntrustedFile { path, .. } if *path == file),
        "{error}"
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(matches!(
        Keyring::open(dir.path()),
        Err(Error::UntrustedFile { .. })
    ));
}

#[test]
fn an_envelope_clone_shares_its_keys_with_the_original() {
    let keyring = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    let envelope = support::envelope_for(
        &keyring.key,
        cmk_envelope::crypto::Provider::default(),
        65_536,
    );
    let for_a_task = envelope.clone();
    let sealed = support::block_on(for_a_task.seal(b"shared", b"")).expect("seal");
    let opened = support::block_on(envelope.open(&sealed, b"")).expect("open");
    assert_eq!(opened.plaintext(), b"shared");
}
