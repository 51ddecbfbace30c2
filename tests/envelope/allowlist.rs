//! The library's allowlist: an envelope restricted to named vaults and tokens offers a slot
//! naming anything else to no wrapper at all, whatever the wrappers would claim.

use crate::support;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cmk_envelope::format::Header;
use cmk_envelope::format::{KeySlot, WrapAlgorithm};
use cmk_envelope::policy::KidAllowlist;
use cmk_envelope::software::Keyring;
use cmk_envelope::{
    async_trait, DataKey, Envelope, Error, KeyFacts, KeyWrapper, ProtectionLevel, SlotContext,
    Unwrapped,
};
use support::block_on;

/// A wrapper that would contact any service a kid names: it counts how often it is asked.
#[derive(Default)]
struct Eager {
    asked: AtomicUsize,
}

#[async_trait]
impl KeyWrapper for Eager {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        Ok("https://contoso.vault.azure.net/keys/k/1".to_owned())
    }
    async fn wrap_key(&self, _: &DataKey, _: SlotContext<'_>) -> cmk_envelope::Result<KeySlot> {
        Err(Error::InvalidArgument("not for sealing".to_owned()))
    }
    async fn unwrap_key(&self, _: &KeySlot, _: SlotContext<'_>) -> cmk_envelope::Result<Unwrapped> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        Err(Error::AccessDenied {
            kid: "asked".to_owned(),
            detail: "would have presented a credential".to_owned(),
        })
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::KeyVault, "anywhere")
    }
}

#[test]
fn slots_naming_services_not_allowed_reach_no_wrapper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path()).expect("keyring");
    keyring.create_key("orders").expect("key");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
    let sealer = Envelope::builder()
        .seal_with(key)
        .build()
        .expect("envelope");
    let sealed = block_on(sealer.seal(b"payload", b"")).expect("seal");
    let (header, header_len) = Header::parse_prefix(&sealed).expect("header");
    let foreign = |kid: &str| {
        KeySlot::new(kid.to_owned(), WrapAlgorithm::RsaOaepSha256, vec![1; 256]).expect("slot")
    };
    let planted_slots = vec![
        foreign("https://attacker.vault.azure.net/keys/k/1"),
        foreign("pkcs11:token=someone-else;object=k;id=%01"),
    ];
    let mut planted = header.with_slots(planted_slots).expect("slots").to_bytes();
    planted.extend_from_slice(&sealed[header_len..]);

    let eager = Arc::new(Eager::default());
    let allowlist = KidAllowlist::new()
        .allow_vault("https://contoso.vault.azure.net")
        .expect("vault")
        .allow_pkcs11_token("prod-hsm");
    let restricted = Envelope::builder()
        .open_with(eager.clone())
        .kid_allowlist(allowlist)
        .build()
        .expect("envelope");
    let error = block_on(restricted.open(&planted, b"")).expect_err("no key");
    assert!(matches!(error, Error::NoKeyForKid { .. }), "{error}");
    assert_eq!(
        eager.asked.load(Ordering::SeqCst),
        0,
        "no wrapper was asked"
    );

    // Without the allowlist the same wrapper is asked for both slots.
    let open = Envelope::builder()
        .open_with(eager.clone())
        .build()
        .expect("envelope");
    assert!(block_on(open.open(&planted, b"")).is_err());
    assert_eq!(eager.asked.load(Ordering::SeqCst), 2);

    // Keyring kids name no service: allowed, and the object opens.
    let restricted_keyring = Envelope::builder()
        .open_with_all(keyring.openers().expect("keyring"))
        .kid_allowlist(KidAllowlist::new())
        .build()
        .expect("envelope");
    let opened = block_on(restricted_keyring.open(&sealed, b"")).expect("open");
    assert_eq!(opened.plaintext(), b"payload");
}
