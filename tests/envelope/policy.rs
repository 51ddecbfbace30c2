//! CMK rules on re-wrap: same vault or keyring only, and no way back from a
//! customer-managed key to a software key.

use crate::support;
use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::format::KeySlot;
use cmk_envelope::policy::{KeyRules, RewrapPolicy};
use cmk_envelope::software::SoftwareWrapper;
use cmk_envelope::{
    async_trait, DataKey, Envelope, Error, KeyFacts, KeyWrapper, ProtectionLevel, RewrapTarget,
    SlotContext, Unwrapped,
};

/// Test double: a software key that reports itself as an HSM key, to exercise the policy
/// without an HSM. It protects nothing; the real PKCS#11 backend comes with its feature.
struct ReportsHsm(Arc<SoftwareWrapper>);

#[async_trait]
impl KeyWrapper for ReportsHsm {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        self.0.current_kid().await
    }
    async fn wrap_key(
        &self,
        key: &DataKey,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<KeySlot> {
        self.0.wrap_key(key, context).await
    }
    async fn unwrap_key(
        &self,
        slot: &KeySlot,
        context: SlotContext<'_>,
    ) -> cmk_envelope::Result<Unwrapped> {
        self.0.unwrap_key(slot, context).await
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Hsm, "hsm:test-token")
    }
}

fn envelope(sealer: Arc<dyn KeyWrapper>, policy: RewrapPolicy) -> Envelope {
    Envelope::builder()
        .seal_with(sealer)
        .rewrap_policy(policy)
        .build()
        .expect("envelope")
}

#[tokio::test]
async fn another_key_in_the_same_keyring_is_allowed() {
    let t = support::temp_keyring(Provider::default());
    t.keyring.create_key("archive").expect("create");
    let archive: Arc<dyn KeyWrapper> = Arc::new(t.keyring.key("archive").expect("key"));
    let e = envelope(t.key.clone(), RewrapPolicy::default());
    let sealed = e.seal(b"x", b"").await.expect("seal");
    let moved = e
        .rewrap(&sealed, RewrapTarget::Key(archive))
        .await
        .expect("same keyring")
        .expect("changed");
    assert!(moved.to_kid().starts_with("local:archive/"));
}

#[tokio::test]
async fn another_keyring_is_refused_unless_opted_in() {
    let a = support::temp_keyring(Provider::default());
    let b = support::temp_keyring(Provider::default());
    let sealed = envelope(a.key.clone(), RewrapPolicy::default())
        .seal(b"x", b"")
        .await
        .expect("seal");
    let e = envelope(a.key.clone(), RewrapPolicy::default());
    let err = e
        .rewrap(&sealed, RewrapTarget::Key(b.key.clone()))
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, Error::PolicyRefused(m) if m.contains("same vault")),
        "{err}"
    );
    let opted = envelope(
        a.key.clone(),
        RewrapPolicy::default().allow_rewrap_across_vaults(true),
    );
    assert!(opted
        .rewrap(&sealed, RewrapTarget::Key(b.key.clone()))
        .await
        .is_ok());
}

#[tokio::test]
async fn software_to_hsm_is_allowed_and_hsm_to_software_is_refused() {
    let soft = support::temp_keyring(Provider::default());
    let hsm_ring = support::temp_keyring(Provider::default());
    let hsm: Arc<dyn KeyWrapper> = Arc::new(ReportsHsm(hsm_ring.key.clone()));

    // Up: software to customer-managed.
    let e = Envelope::builder()
        .seal_with(soft.key.clone())
        .open_with(hsm.clone())
        .build()
        .expect("envelope");
    let sealed = e.seal(b"x", b"").await.expect("seal");
    let up = e
        .rewrap(&sealed, RewrapTarget::Key(hsm.clone()))
        .await
        .expect("up is allowed")
        .expect("changed");
    let on_hsm = up.apply_to(&sealed).expect("apply");

    // Down: customer-managed back to software.
    let err = e
        .rewrap(&on_hsm, RewrapTarget::Key(soft.key.clone()))
        .await
        .expect_err("no way back");
    assert!(
        matches!(&err, Error::PolicyRefused(m) if m.contains("no way back")),
        "{err}"
    );
    let dangerous = Envelope::builder()
        .seal_with(soft.key.clone())
        .open_with(hsm)
        .rewrap_policy(RewrapPolicy::default().dangerously_allow_rewrap_to_software(true))
        .build()
        .expect("envelope");
    assert!(dangerous
        .rewrap(&on_hsm, RewrapTarget::Key(soft.key.clone()))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_key_outside_policy_cannot_wrap_new_data_but_old_data_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = KeyRules::default()
        .allow_rsa_sizes(&[3072])
        .expect("policy");
    let ring = cmk_envelope::software::Keyring::create(dir.path())
        .expect("create")
        .key_rules(rules);
    ring.create_key("big").expect("3072 key");
    let key = Arc::new(ring.key("big").expect("key"));
    let sealed = envelope(key, RewrapPolicy::default())
        .seal(b"x", b"")
        .await
        .expect("seal under 3072");
    // The same files under the default policy: wrapping is refused, opening works.
    let strict = cmk_envelope::software::Keyring::open(dir.path()).expect("open");
    let strict_key = Arc::new(strict.key("big").expect("key"));
    let e = envelope(strict_key, RewrapPolicy::default());
    assert!(matches!(
        e.seal(b"y", b"").await,
        Err(Error::PolicyRefused(m)) if m.contains("RSA-3072")
    ));
    assert_eq!(
        e.open(&sealed, b"").await.expect("old data").plaintext(),
        b"x"
    );
}
