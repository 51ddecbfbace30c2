//! Feature `tracing`: every span and event of a full run (seal, open, rotation, lazy and
//! explicit re-wrap, a branch key under a CMK) is captured by a subscriber of this test,
//! and none carries a data key, a plaintext or associated data. A test binary of its own:
//! the subscriber is the process's.
#![cfg(feature = "tracing")]

#[path = "support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
use cmk_envelope::{Envelope, RewrapTarget};
use support::recording::{leaks, Recording};

/// Every span name and field, and every event field, as text.
#[derive(Default)]
struct Capture {
    lines: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Capture {
    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
}

impl Subscriber for &'static Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Fields(&mut line));
        self.push(line);
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = "record".to_owned();
        values.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = format!("event {}", event.metadata().target());
        event.record(&mut Fields(&mut line));
        self.push(line);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn no_span_or_event_carries_a_key_a_plaintext_or_associated_data() {
    let capture: &'static Capture = Box::leak(Box::default());
    tracing::subscriber::set_global_default(capture).expect("the only subscriber");

    let dir = tempfile::tempdir().expect("dir");
    let keyring =
        cmk_envelope::software::Keyring::create(dir.path().join("keys")).expect("keyring");
    keyring.create_key("orders").expect("key");
    let key = Recording::new(Arc::new(keyring.key("orders").expect("key")));
    let envelope = Envelope::builder()
        .seal_with(key.clone())
        .build()
        .expect("envelope");
    let plaintext = b"PLAINTEXT-MARKER-7f3a the object's own words".to_vec();
    let aad = b"AAD-MARKER-c41d tenant=42";
    let sealed = envelope.seal(&plaintext, aad).await.expect("seal");
    assert_eq!(
        envelope.open(&sealed, aad).await.expect("open").plaintext(),
        plaintext
    );
    keyring.rotate_key("orders").expect("rotate");
    let opened = envelope.open(&sealed, aad).await.expect("open stale");
    assert!(opened.info().rewrapped().is_some());
    envelope
        .rewrap(&sealed, RewrapTarget::CurrentVersion)
        .await
        .expect("rewrap")
        .expect("moved");

    // A branch key under the same CMK.
    let store = Arc::new(DirectoryStore::create(dir.path().join("branches")).expect("store"));
    let branch = BranchWrapper::create(store, "orders", key.clone())
        .await
        .expect("branch");
    let under_branch = Envelope::builder()
        .seal_with(Arc::new(branch))
        .build()
        .expect("envelope");
    let sealed = under_branch.seal(&plaintext, aad).await.expect("seal");
    under_branch.open(&sealed, aad).await.expect("open");

    // Key Vault: the span records how many tries a call took (the SDK retries inside).
    #[cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]
    {
        use support::keyvault_double::{lazy_key, quick_options, KeyVaultDouble};
        let vault = KeyVaultDouble::start("tracing");
        vault.create_key("orders", 2048);
        let in_vault = Envelope::builder()
            .seal_with(lazy_key(&vault, "orders", quick_options(&[&vault])))
            .build()
            .expect("envelope");
        let sealed = in_vault.seal(&plaintext, aad).await.expect("seal");
        let lines_before = capture
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        vault.fail_next(1);
        in_vault
            .open(&sealed, aad)
            .await
            .expect("open after a retry");
        let since: Vec<String> =
            capture.lines.lock().unwrap_or_else(PoisonError::into_inner)[lines_before..].to_vec();
        let since = since.join("\n");
        assert!(
            since.contains("span cmke.key_service") && since.contains("attempts=2"),
            "an unwrap answered on the second try:\n{since}"
        );
    }

    let lines = capture
        .lines
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let text = lines.join("\n");
    assert!(text.contains("span cmke.key_service"), "{text}");
    assert!(text.contains("operation=\"unwrap\""), "{text}");
    assert!(text.contains("outcome=\"ok\""), "{text}");
    assert!(text.contains("kid=\"local:orders/"), "{text}");
    for name in ["span cmke.seal", "span cmke.open", "span cmke.rewrap"] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let keys = key.seen();
    assert!(!keys.is_empty());
    let forbidden: Vec<String> = vec![
        "PLAINTEXT-MARKER-7f3a".to_owned(),
        "AAD-MARKER-c41d".to_owned(),
        hex::encode(&plaintext[..16]),
    ];
    for secret in &forbidden {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} appears in:\n{text}"
        );
    }
    for key in &keys {
        assert_eq!(leaks(&text, key), None, "data key bytes in:\n{text}");
        assert!(
            !text.contains(&base64(key)),
            "a data key in base64 in:\n{text}"
        );
    }
}

/// Standard base64 with padding, as a key might be printed.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_base64_of_this_test_is_the_standard_one() {
    assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
    assert_eq!(base64(b"any carnal pleasu"), "YW55IGNhcm5hbCBwbGVhc3U=");
    assert_eq!(base64(b"any carnal pleasur"), "YW55IGNhcm5hbCBwbGVhc3Vy");
}
