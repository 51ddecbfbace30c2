//! No key bytes in any formatted value: every error variant, produced for real where the
//! crate produces it and built by hand otherwise, and every public type that holds or
//! touches key material, printed with Display and Debug. Data keys wipe themselves.

use crate::support;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::recording::{leaks, Recording};

use cmk_envelope::crypto::Provider;
use cmk_envelope::{DataKey, Envelope, Error, KeyWrapper};

fn pem_bodies(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let mut text = String::new();
        if std::fs::File::open(&entry)
            .and_then(|mut f| f.read_to_string(&mut text))
            .is_ok()
            && text.contains("PRIVATE KEY")
        {
            // Each base64 line of the key body is secret material.
            out.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned),
            );
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn nothing_formatted_contains_key_material() {
    let provider = Provider::default();
    let t = support::temp_keyring(provider);
    let recording = Recording::new(Arc::clone(&t.key) as Arc<dyn KeyWrapper>);
    let e = Envelope::builder()
        .seal_with(Arc::clone(&recording) as Arc<dyn KeyWrapper>)
        .provider(provider)
        .build()
        .expect("envelope");
    let sealed = e.seal(b"payload", b"aad").await.expect("seal");
    let opened = e.open(&sealed, b"aad").await.expect("open");

    let mut texts: Vec<String> = Vec::new();
    let mut show = |d: &dyn std::fmt::Debug| texts.push(format!("{d:?} {d:#?}"));
    show(&t.key);
    show(&t.keyring);
    show(&e);
    show(&opened);
    show(&provider);
    show(&cmk_envelope::inspect::inspect(&sealed).expect("inspect"));
    let reader = e
        .open_reader(sealed.as_slice(), b"aad")
        .await
        .expect("reader");
    show(&reader);
    let writer = e.seal_writer(Vec::new(), b"").await.expect("writer");
    show(&writer);

    // Errors the crate produces for real...
    let mut errors: Vec<Error> = Vec::new();
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    errors.push(e.open(&tampered, b"aad").await.expect_err("tampered"));
    errors.push(e.open(&sealed, b"other").await.expect_err("wrong aad"));
    errors.push(e.open(&sealed[..20], b"aad").await.expect_err("short"));
    let stranger = support::temp_keyring(provider);
    let other = support::envelope_for(&stranger.key, provider, 65536);
    errors.push(other.open(&sealed, b"aad").await.expect_err("no key"));
    errors.push(t.keyring.key("missing").expect_err("missing key"));
    // ...and every variant built by hand, with plausible contents.
    errors.extend([
        Error::DecryptionFailed,
        Error::NoKeyForKid {
            kids: vec!["local:orders/v1".to_owned()],
        },
        Error::AccessDenied {
            kid: "kid".to_owned(),
            detail: "unwrapKey not permitted".to_owned(),
        },
        Error::KeyDisabled {
            kid: "kid".to_owned(),
            detail: "disabled".to_owned(),
        },
        Error::KeyNotFound {
            kid: "kid".to_owned(),
            detail: String::new(),
        },
        Error::Throttled {
            kid: "kid".to_owned(),
            detail: "unwrapKey".to_owned(),
            retry_after: Some(Duration::from_secs(3)),
        },
        Error::Unavailable {
            kid: "kid".to_owned(),
            detail: "unwrapKey".to_owned(),
        },
        Error::PolicyRefused("RSA-1024".to_owned()),
        Error::InvalidKey("not PKCS#8".to_owned()),
        Error::InvalidArgument("range".to_owned()),
        Error::KeyringNotFound("keys".into()),
        Error::Backend {
            backend: "aes-gcm",
            message: "failed".to_owned(),
        },
        Error::Io {
            path: None,
            source: std::io::Error::other("disk"),
        },
    ]);
    for error in &errors {
        texts.push(format!("{error} {error:?} {error:#?}"));
    }

    let data_keys = recording.seen();
    assert!(
        data_keys.len() >= 2,
        "the recording wrapper saw the data keys"
    );
    // The detector itself finds a key printed as a byte list or as hex.
    let probe = data_keys[0];
    assert!(leaks(&format!("{probe:?}"), &probe).is_some());
    let hex: String = probe.iter().map(|b| format!("{b:02X}")).collect();
    assert!(leaks(&hex, &probe).is_some());
    let pem_lines = pem_bodies(t.dir.path());
    assert!(!pem_lines.is_empty(), "found the private key files");
    for text in &texts {
        for key in &data_keys {
            assert_eq!(leaks(text, key), None, "data key bytes in {text}");
        }
        for line in &pem_lines {
            assert!(!text.contains(&line[..16]), "private key text in {text}");
        }
    }
}

#[test]
fn data_keys_wipe_themselves() {
    // `ZeroizeOnDrop` runs `zeroize` on drop: check the type has it and what it does.
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop + zeroize::Zeroize>() {}
    wipes_on_drop::<DataKey>();
    let mut key = DataKey::from_bytes([0x5a; 32]);
    zeroize::Zeroize::zeroize(&mut key);
    assert_eq!(key.expose_secret(), &[0u8; 32]);
}
