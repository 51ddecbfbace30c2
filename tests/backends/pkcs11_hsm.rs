//! The PKCS#11 backend against a throw-away SoftHSM2 token.
#![cfg(feature = "pkcs11")]

use crate::support;
use support::behaviour;
use support::softhsm;

use std::sync::Arc;
use std::time::Duration;

use cmk_envelope::format::WrapAlgorithm;
use cmk_envelope::pkcs11::{OaepHash, PinSource, Pkcs11Config, Pkcs11Wrapper};
use cmk_envelope::{Envelope, Error, KeyWrapper, RewrapTarget};

/// A config for key `key` of token `token`, PIN from the test variable, following rotations
/// at once.
fn config(token: &str, key: &str) -> Pkcs11Config {
    Pkcs11Config::new(softhsm::module(), token, key)
        .pin(PinSource::Env(softhsm::PIN_VAR.to_owned()))
        .refresh_interval(Duration::ZERO)
}

/// Runs a future to completion on a runtime of its own thread (callable from sync code
/// inside a test's async runtime).
fn on_own_thread<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || support::block_on(work))
        .join()
        .expect("thread")
}

/// A token `label` with key `orders` created, and a wrapper for it.
async fn token_with_key(label: &str) -> (Pkcs11Config, Arc<Pkcs11Wrapper>) {
    let token = softhsm::new_token(label);
    let config = config(&token, "orders");
    Pkcs11Wrapper::create_key(&config, 2048)
        .await
        .expect("create key");
    let wrapper = Pkcs11Wrapper::connect(config.clone())
        .await
        .expect("connect");
    (config, Arc::new(wrapper))
}

#[tokio::test]
async fn seals_and_opens_with_the_private_key_inside_the_token() {
    let (config, wrapper) = token_with_key("seal-open").await;
    let kid = wrapper.current_kid().await.expect("kid");
    assert_eq!(kid, "pkcs11:token=seal-open;object=orders;id=%00%00%00%01");
    // SoftHSM2 2.6 takes OAEP with SHA-1 only; Auto found that out with a trial unwrap.
    assert_eq!(wrapper.wrap_algorithm(), WrapAlgorithm::RsaOaepSha1);
    let envelope = Envelope::builder()
        .seal_with(wrapper.clone() as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let sealed = envelope.seal(b"in the HSM", b"").await.expect("seal");
    let opened = envelope.open(&sealed, b"").await.expect("open");
    assert_eq!(opened.plaintext(), b"in the HSM");
    drop(config);
}

struct HsmBackend {
    config: Pkcs11Config,
    wrapper: Arc<Pkcs11Wrapper>,
}

#[cmk_envelope::async_trait]
impl behaviour::Backend for HsmBackend {
    fn wrapper(&self) -> Arc<dyn KeyWrapper> {
        self.wrapper.clone()
    }
    /// `cmke key rotate` does the same: a new key pair with the next id.
    async fn rotate(&self) {
        let config = self.config.clone();
        on_own_thread(async move { Pkcs11Wrapper::rotate_key(&config).await }).expect("rotate");
    }
    async fn other_key(&self) -> Arc<dyn KeyWrapper> {
        let config = Pkcs11Config::new(softhsm::module(), &self.config_token(), "billing")
            .pin(PinSource::Env(softhsm::PIN_VAR.to_owned()));
        Arc::new(on_own_thread(async move {
            Pkcs11Wrapper::create_key(&config, 2048)
                .await
                .expect("create");
            Pkcs11Wrapper::connect(config).await.expect("connect")
        }))
    }
    /// A PKCS#11 key has no disabled state that tokens agree on.
    async fn set_enabled(&self, _: bool) -> bool {
        false
    }
}

impl HsmBackend {
    fn config_token(&self) -> String {
        self.wrapper
            .key_facts()
            .domain
            .trim_start_matches("pkcs11:token=")
            .to_owned()
    }
}

#[tokio::test]
async fn the_hsm_behaves_like_every_backend() {
    let (config, wrapper) = token_with_key("behaviour").await;
    behaviour::run(&HsmBackend {
        config,
        wrapper: wrapper.clone(),
    })
    .await;
    behaviour::prefixed_slots_round_trip(wrapper).await;
}

#[tokio::test]
async fn rewrap_from_software_to_the_hsm_is_allowed_and_back_is_refused() {
    let (_, hsm) = token_with_key("rewrap-rules").await;
    let software = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    let envelope = Envelope::builder()
        .seal_with(software.key.clone() as Arc<dyn KeyWrapper>)
        .open_with(hsm.clone() as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let sealed = envelope.seal(b"moving up", b"").await.expect("seal");
    let up = envelope
        .rewrap(
            &sealed,
            RewrapTarget::Key(hsm.clone() as Arc<dyn KeyWrapper>),
        )
        .await
        .expect("software to HSM is allowed")
        .expect("moved");
    let in_hsm = up.apply_to(&sealed).expect("apply");
    assert!(behaviour_kid(&in_hsm).starts_with("pkcs11:token=rewrap-rules;object=orders;"));
    assert_eq!(
        envelope.open(&in_hsm, b"").await.expect("open").plaintext(),
        b"moving up"
    );
    match envelope
        .rewrap(
            &in_hsm,
            RewrapTarget::Key(software.key.clone() as Arc<dyn KeyWrapper>),
        )
        .await
    {
        Err(Error::PolicyRefused(why)) => assert!(why.contains("software"), "{why}"),
        other => panic!("HSM to software must be refused: {:?}", other.err()),
    }
}

fn behaviour_kid(sealed: &[u8]) -> String {
    let (header, _) = cmk_envelope::format::Header::parse_prefix(sealed).expect("header");
    header.slots()[0].kid().to_owned()
}

#[tokio::test]
async fn wrong_pin_missing_key_token_and_module_each_say_what_is_wrong() {
    let token = softhsm::new_token("errors");
    let good = config(&token, "orders");
    Pkcs11Wrapper::create_key(&good, 2048)
        .await
        .expect("create");

    std::env::set_var("CMKE_TEST_WRONG_PIN", "0000-wrong");
    match Pkcs11Wrapper::connect(
        good.clone()
            .pin(PinSource::Env("CMKE_TEST_WRONG_PIN".into())),
    )
    .await
    {
        Err(Error::AccessDenied { kid, detail }) => {
            assert_eq!(kid, "pkcs11:token=errors");
            assert!(detail.contains("PIN"), "{detail}");
            assert!(!detail.contains("0000-wrong"), "the PIN is never echoed");
        }
        other => panic!("wrong PIN: {:?}", other.err()),
    }

    match Pkcs11Wrapper::connect(config(&token, "no-such-key")).await {
        Err(Error::KeyNotFound { kid, .. }) => {
            assert_eq!(kid, "pkcs11:token=errors;object=no-such-key");
        }
        other => panic!("missing key: {:?}", other.err()),
    }
    match Pkcs11Wrapper::connect(good.clone().key_id(vec![0, 0, 0, 9])).await {
        Err(Error::KeyNotFound { kid, .. }) => {
            assert_eq!(kid, "pkcs11:token=errors;object=orders;id=%00%00%00%09");
        }
        other => panic!("missing version: {:?}", other.err()),
    }

    match Pkcs11Wrapper::connect(config("no-such-token", "orders")).await {
        Err(Error::KeyNotFound { kid, .. }) => assert_eq!(kid, "pkcs11:token=no-such-token"),
        other => panic!("missing token: {:?}", other.err()),
    }

    let missing_module = Pkcs11Config::new("/nonexistent/libpkcs11.so", &token, "orders")
        .pin(PinSource::Env(softhsm::PIN_VAR.to_owned()));
    match Pkcs11Wrapper::connect(missing_module).await {
        Err(Error::Backend { message, .. }) => {
            assert!(
                message.contains("cannot load the PKCS#11 module"),
                "{message}"
            );
            assert!(message.contains("/nonexistent/libpkcs11.so"), "{message}");
        }
        other => panic!("missing module: {:?}", other.err()),
    }

    match Pkcs11Wrapper::connect(
        good.clone()
            .pin(PinSource::Env("CMKE_TEST_UNSET_PIN".into())),
    )
    .await
    {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("CMKE_TEST_UNSET_PIN"), "{why}"),
        other => panic!("unset PIN variable: {:?}", other.err()),
    }

    // The PIN from a file (its first line) works.
    let dir = tempfile::tempdir().expect("tempdir");
    let pin_file = dir.path().join("pin");
    support::write_private(&pin_file, format!("{}\n", softhsm::USER_PIN));
    let from_file = Pkcs11Wrapper::connect(good.clone().pin(PinSource::File(pin_file)))
        .await
        .expect("PIN from a file");
    assert!(from_file.current_kid().await.is_ok());

    // Creating a key that exists, rotating one that does not.
    assert!(matches!(
        Pkcs11Wrapper::create_key(&good, 2048).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pkcs11Wrapper::rotate_key(&config(&token, "never-created")).await,
        Err(Error::KeyNotFound { .. })
    ));
    // RSA-1024 is refused by the default policy before anything reaches the token.
    assert!(matches!(
        Pkcs11Wrapper::create_key(&config(&token, "small"), 1024).await,
        Err(Error::PolicyRefused(_))
    ));
}

#[tokio::test]
async fn a_token_without_oaep_sha256_says_so() {
    let (config, wrapper) = token_with_key("no-sha256").await;
    match Pkcs11Wrapper::connect(config.clone().oaep_hash(OaepHash::Sha256)).await {
        Err(Error::Backend { message, .. }) => {
            assert!(message.contains("SHA-256"), "{message}");
        }
        other => panic!("SHA-256 required: {:?}", other.err()),
    }
    // A SHA-256 slot (as a software key or Key Vault would write) cannot open here, and the
    // error says why rather than calling it tampering.
    let kid = wrapper.current_kid().await.expect("kid");
    let slot = cmk_envelope::format::KeySlot::new(kid, WrapAlgorithm::RsaOaepSha256, vec![7; 256])
        .expect("slot");
    match wrapper
        .unwrap_key(&slot, cmk_envelope::SlotContext::new(&[0; 32]))
        .await
    {
        Err(Error::Backend { message, .. }) => assert!(message.contains("SHA-256"), "{message}"),
        other => panic!("{:?}", other.err()),
    }
    // Sha1 skips the trial unwrap and works.
    let sha1 = Pkcs11Wrapper::connect(config.oaep_hash(OaepHash::Sha1))
        .await
        .expect("connect");
    assert_eq!(sha1.wrap_algorithm(), WrapAlgorithm::RsaOaepSha1);
}

#[test]
fn many_concurrent_unwraps_from_several_tasks_all_succeed() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (_, wrapper) = token_with_key("concurrent").await;
        let envelope = Arc::new(
            Envelope::builder()
                .seal_with(wrapper.clone() as Arc<dyn KeyWrapper>)
                .build()
                .expect("envelope"),
        );
        let mut tasks = Vec::new();
        for task in 0..8u8 {
            let envelope = Arc::clone(&envelope);
            tasks.push(tokio::spawn(async move {
                for n in 0..8u8 {
                    let plaintext = [task, n];
                    let sealed = envelope.seal(&plaintext, b"").await.expect("seal");
                    let opened = envelope.open(&sealed, b"").await.expect("open");
                    assert_eq!(opened.plaintext(), plaintext);
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
    });
}

#[tokio::test]
async fn token_decryptions_draw_on_a_shared_key_ops_budget() {
    let (config, wrapper) = token_with_key("budget").await;
    let envelope = Envelope::builder()
        .seal_with(wrapper.clone() as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let mut sealed = Vec::new();
    for i in 0..3u8 {
        sealed.push(envelope.seal(&[i], b"").await.expect("seal"));
    }
    // Four decryptions a second, shared with this test's clone of the budget.
    let budget =
        cmk_envelope::wrap::KeyOpsLimit::per_second(std::num::NonZeroU32::new(4).expect("four"));
    let limited = Arc::new(
        Pkcs11Wrapper::connect(config.max_key_ops(budget.clone()))
            .await
            .expect("connect"),
    );
    let reader = Envelope::builder()
        .open_with(limited as Arc<dyn KeyWrapper>)
        .lazy_rewrap(false)
        .build()
        .expect("envelope");
    for (i, object) in sealed.iter().enumerate() {
        let opened = reader.open(object, b"").await.expect("open");
        assert_eq!(opened.plaintext(), [u8::try_from(i).expect("small")]);
    }
    // Each C_Decrypt took a turn from the shared schedule, so the next turn is still ahead:
    // whoever shares the budget now waits.
    assert!(!budget.reserve_at(std::time::Instant::now()).is_zero());
}
