//! The Key Vault backend against the loopback double, through the Azure SDK's real
//! pipeline: challenge authentication, retries, Key Vault's error bodies.
#![cfg(all(feature = "insecure-loopback-vault", feature = "aws-lc"))]

use crate::support;
use support::behaviour;
use support::keyvault_double;
use support::slot_kid;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cmk_envelope::azure::loopback::FixedTokenCredential;
use cmk_envelope::azure::{KeyVaultOptions, KeyVaultWrapper};
use cmk_envelope::format::Header;
use cmk_envelope::policy::KeyRules;
use cmk_envelope::{Envelope, Error, KeyWrapper, RewrapTarget};
use keyvault_double::{Access, KeyVaultDouble, TOKEN};
use support::block_on;

use keyvault_double::quick_options as options;

fn connect(url: &str, options: KeyVaultOptions) -> Result<KeyVaultWrapper, Error> {
    block_on(KeyVaultWrapper::connect(
        url,
        FixedTokenCredential::new(TOKEN),
        options,
    ))
}

fn envelope(wrapper: &Arc<KeyVaultWrapper>) -> Envelope {
    Envelope::builder()
        .seal_with(Arc::clone(wrapper) as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope")
}

#[test]
fn seals_and_opens_after_the_bearer_challenge_wrapping_locally() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let credential = FixedTokenCredential::new(TOKEN);
    let wrapper = Arc::new(
        block_on(KeyVaultWrapper::connect(
            &vault.key_url("orders"),
            Arc::clone(&credential) as _,
            options(&[&vault]),
        ))
        .expect("connect"),
    );
    // The first request went without a token, got the challenge, and the token was asked
    // for the scope the challenge named.
    let log = vault.log();
    assert_eq!(
        log.first().map(String::as_str),
        Some("GET /keys/orders 401"),
        "{log:?}"
    );
    assert_eq!(
        log.get(1).map(String::as_str),
        Some("GET /keys/orders 200"),
        "{log:?}"
    );
    assert_eq!(
        credential.scopes().as_slice(),
        ["https://vault.azure.net/.default"]
    );

    let e = envelope(&wrapper);
    vault.clear_log();
    let sealed = block_on(e.seal(b"ledger", b"aad")).expect("seal");
    assert_eq!(slot_kid(&sealed), vault.kid("orders", &version));
    assert!(
        vault.log().is_empty(),
        "a local wrap makes no call: {:?}",
        vault.log()
    );
    let opened = block_on(e.open(&sealed, b"aad")).expect("open");
    assert_eq!(opened.plaintext(), b"ledger");
    assert_eq!(
        vault.log(),
        [format!("POST /keys/orders/{version}/unwrapkey 200")]
    );
}

#[test]
fn remote_wrapping_goes_through_the_vault() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let wrapper = Arc::new(
        connect(
            &vault.key_url("orders"),
            options(&[&vault]).wrap_remotely(true),
        )
        .expect("connect"),
    );
    let e = envelope(&wrapper);
    vault.clear_log();
    let sealed = block_on(e.seal(b"audited", b"")).expect("seal");
    assert_eq!(
        vault.log(),
        [format!("POST /keys/orders/{version}/wrapkey 200")]
    );
    assert_eq!(
        block_on(e.open(&sealed, b"")).expect("open").plaintext(),
        b"audited"
    );
}

#[test]
fn revocation_stops_decryption_with_the_matching_error() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let wrapper = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let e = envelope(&wrapper);
    let sealed: Vec<Vec<u8>> = (0..3)
        .map(|i| block_on(e.seal(format!("object {i}").as_bytes(), b"")).expect("seal"))
        .collect();
    let kid = vault.kid("orders", &version);

    for access in [Access::RevokedRbac, Access::RevokedPolicy] {
        vault.set_access(access);
        for object in &sealed {
            match block_on(e.open(object, b"")) {
                Err(Error::AccessDenied { kid: k, detail }) => {
                    assert_eq!(k, kid);
                    assert!(detail.contains("keys/unwrapKey"), "{detail}");
                }
                other => panic!("{access:?}: {other:?}"),
            }
        }
    }
    vault.set_access(Access::Granted);
    assert!(block_on(e.open(&sealed[0], b"")).is_ok());

    vault.set_enabled("orders", false);
    for object in &sealed {
        assert!(
            matches!(block_on(e.open(object, b"")), Err(Error::KeyDisabled { ref kid, .. }) if *kid == vault.kid("orders", &version)),
        );
    }
    vault.set_enabled("orders", true);
    assert!(block_on(e.open(&sealed[1], b"")).is_ok());

    vault.delete_key("orders");
    for object in &sealed {
        assert!(matches!(
            block_on(e.open(object, b"")),
            Err(Error::KeyNotFound { .. })
        ));
    }
}

#[test]
fn throttling_is_retried_honouring_retry_after_then_reported() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let wrapper = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let e = envelope(&wrapper);
    let sealed = block_on(e.seal(b"x", b"")).expect("seal");

    vault.throttle_next(1);
    let started = Instant::now();
    assert!(block_on(e.open(&sealed, b"")).is_ok());
    // Retry-After: 1 is honoured over the 10 ms the retry options would otherwise wait.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    vault.throttle_next(100);
    match block_on(e.open(&sealed, b"")) {
        Err(Error::Throttled { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn outages_are_retried_with_backoff_and_bounded() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let wrapper = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let e = envelope(&wrapper);
    let sealed = block_on(e.seal(b"x", b"")).expect("seal");

    vault.fail_next(2);
    assert!(block_on(e.open(&sealed, b"")).is_ok());
    vault.clear_log();
    vault.fail_next(100);
    match block_on(e.open(&sealed, b"")) {
        Err(Error::Unavailable { kid, detail }) => {
            assert_eq!(kid, slot_kid(&sealed));
            assert!(
                detail.starts_with("unwrapKey:") && detail.contains("503"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    // One try and three retries, then it stops.
    assert_eq!(vault.log().len(), 4, "{:?}", vault.log());
}

#[test]
fn a_tampered_wrapped_key_is_the_opaque_decryption_error() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let wrapper = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let e = envelope(&wrapper);
    let sealed = block_on(e.seal(b"x", b"")).expect("seal");
    let (header, _) = Header::parse_prefix(&sealed).expect("header");
    let slot = &header.slots()[0];
    let mut wrapped = slot.wrapped().to_vec();
    wrapped[100] ^= 1;
    let tampered_slot =
        cmk_envelope::format::KeySlot::new(slot.kid().to_owned(), slot.algorithm(), wrapped)
            .expect("slot");
    let tampered = behaviour::with_slots(&sealed, vec![tampered_slot]);
    assert!(matches!(
        block_on(e.open(&tampered, b"")),
        Err(Error::DecryptionFailed)
    ));
}

#[test]
fn each_key_rule_is_checked_on_connect_with_its_own_error() {
    let vault = KeyVaultDouble::start("contoso");
    let refused = |name: &str, needle: &str| match connect(&vault.key_url(name), options(&[&vault]))
    {
        Err(Error::PolicyRefused(why)) => assert!(why.contains(needle), "{name}: {why}"),
        other => panic!("{name}: {other:?}"),
    };
    vault.create_key("big", 3072);
    refused("big", "RSA-3072");
    vault.create_key("ec", 2048);
    vault.set_kty("ec", "EC-HSM");
    refused("ec", "EC-HSM key");
    vault.create_key("no-unwrap", 2048);
    vault.set_key_ops("no-unwrap", &["wrapKey", "encrypt"]);
    refused("no-unwrap", "unwrapKey");

    let disabled =
        |name: &str, needle: &str| match connect(&vault.key_url(name), options(&[&vault])) {
            Err(Error::KeyDisabled { detail, .. }) => assert!(detail.contains(needle), "{detail}"),
            other => panic!("{name}: {other:?}"),
        };
    vault.create_key("off", 2048);
    vault.set_enabled("off", false);
    disabled("off", "disabled");
    vault.create_key("expired", 2048);
    vault.set_validity("expired", None, Some(1_000_000_000));
    disabled("expired", "expired");
    vault.create_key("future", 2048);
    vault.set_validity("future", Some(4_000_000_000), None);
    disabled("future", "not valid before");

    assert!(matches!(
        connect(&vault.key_url("missing"), options(&[&vault])),
        Err(Error::KeyNotFound { .. })
    ));

    // A public exponent other than 65537 is refused, whatever the vault says.
    vault.create_key("small-e", 2048);
    vault.set_public_exponent("small-e", &[3]);
    match connect(&vault.key_url("small-e"), options(&[&vault])) {
        Err(Error::InvalidKey(why)) => assert!(why.contains("exponent 3"), "{why}"),
        other => panic!("small-e: {other:?}"),
    }

    vault.create_key("orders", 2048);
    vault.set_recovery_level("Purgeable");
    refused("orders", "purge protection");
    assert!(connect(
        &vault.key_url("orders"),
        options(&[&vault]).dangerously_allow_without_purge_protection(true)
    )
    .is_ok());
    vault.set_recovery_level("CustomizedRecoverable+ProtectedSubscription");
    assert!(connect(&vault.key_url("orders"), options(&[&vault])).is_ok());

    // With the policy opted in, 3072 is accepted.
    let policy = KeyRules::default()
        .allow_rsa_sizes(&[2048, 3072])
        .expect("policy");
    assert!(connect(&vault.key_url("big"), options(&[&vault]).key_rules(policy)).is_ok());
}

#[test]
fn rotation_new_versions_and_keys_in_the_same_vault_only() {
    let vault = KeyVaultDouble::start("contoso");
    let other_vault = KeyVaultDouble::start("fabrikam");
    let v1 = vault.create_key("orders", 2048);
    let wrapper = Arc::new(
        connect(
            &vault.key_url("orders"),
            options(&[&vault, &other_vault]).refresh_interval(Duration::ZERO),
        )
        .expect("connect"),
    );
    let e = envelope(&wrapper);
    let old = block_on(e.seal(b"old", b"")).expect("seal");
    assert_eq!(slot_kid(&old), vault.kid("orders", &v1));

    // A new version becomes current: new data uses it, old data still opens.
    let v2 = vault.create_key("orders", 2048);
    let new = block_on(e.seal(b"new", b"")).expect("seal");
    assert_eq!(slot_kid(&new), vault.kid("orders", &v2));
    assert_eq!(
        block_on(e.open(&old, b"")).expect("open").plaintext(),
        b"old"
    );

    // Lazy re-wrap to the current version: only the header changes.
    let rewrapped = block_on(e.rewrap(&old, RewrapTarget::CurrentVersion))
        .expect("rewrap")
        .expect("moved");
    let moved = rewrapped.apply_to(&old).expect("apply");
    assert_eq!(slot_kid(&moved), vault.kid("orders", &v2));
    assert_eq!(
        block_on(e.open(&moved, b"")).expect("open").plaintext(),
        b"old"
    );

    // Another key in the same vault: allowed.
    vault.create_key("billing", 2048);
    let billing: Arc<dyn KeyWrapper> = Arc::new(
        connect(&vault.key_url("billing"), options(&[&vault, &other_vault])).expect("billing"),
    );
    assert!(block_on(e.rewrap(&old, RewrapTarget::Key(billing))).is_ok());

    // A key in another vault: refused by the default policy.
    other_vault.create_key("orders", 2048);
    let elsewhere: Arc<dyn KeyWrapper> = Arc::new(
        connect(
            &other_vault.key_url("orders"),
            options(&[&vault, &other_vault]),
        )
        .expect("other vault"),
    );
    assert!(matches!(
        block_on(e.rewrap(&old, RewrapTarget::Key(elsewhere))),
        Err(Error::PolicyRefused(_))
    ));

    // Back to a software key: refused.
    let software = support::temp_keyring(cmk_envelope::crypto::Provider::default());
    assert!(matches!(
        block_on(e.rewrap(&old, RewrapTarget::Key(software.key.clone()))),
        Err(Error::PolicyRefused(_))
    ));
}

/// Wraps like an older writer that used RSA-OAEP with SHA-1 (Key Vault's `RSA-OAEP`).
struct Sha1Writer {
    kid: String,
    public: aws_lc_rs::rsa::OaepPublicEncryptingKey,
}

#[cmk_envelope::async_trait]
impl KeyWrapper for Sha1Writer {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        Ok(self.kid.clone())
    }
    async fn wrap_key(
        &self,
        data_key: &cmk_envelope::DataKey,
        _: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::format::KeySlot> {
        let mut out = vec![0u8; self.public.ciphertext_size()];
        let wrapped = self
            .public
            .encrypt(
                &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
                data_key.expose_secret(),
                &mut out,
                None,
            )
            .expect("encrypt")
            .to_vec();
        cmk_envelope::format::KeySlot::new(
            self.kid.clone(),
            cmk_envelope::format::WrapAlgorithm::RsaOaepSha1,
            wrapped,
        )
        .map_err(Error::from)
    }
    async fn unwrap_key(
        &self,
        _: &cmk_envelope::format::KeySlot,
        _: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::Unwrapped> {
        Ok(cmk_envelope::Unwrapped::NotMine)
    }
    fn key_facts(&self) -> cmk_envelope::KeyFacts<'_> {
        cmk_envelope::KeyFacts::new(cmk_envelope::ProtectionLevel::KeyVault, "sha1-writer")
    }
}

#[test]
fn slots_wrapped_with_rsa_oaep_sha1_open_too() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let public =
        aws_lc_rs::rsa::PublicEncryptingKey::from_der(&vault.public_key_der("orders", &version))
            .expect("spki");
    let writer = Arc::new(Sha1Writer {
        kid: vault.kid("orders", &version),
        public: aws_lc_rs::rsa::OaepPublicEncryptingKey::new(public).expect("oaep"),
    });
    let reader = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let e = Envelope::builder()
        .seal_with(writer as Arc<dyn KeyWrapper>)
        .open_with(reader as Arc<dyn KeyWrapper>)
        .build()
        .expect("envelope");
    let sealed = block_on(e.seal(b"from an older writer", b"")).expect("seal");
    let (header, _) = Header::parse_prefix(&sealed).expect("header");
    assert_eq!(
        header.slots()[0].algorithm(),
        cmk_envelope::format::WrapAlgorithm::RsaOaepSha1
    );
    vault.clear_log();
    assert_eq!(
        block_on(e.open(&sealed, b"")).expect("open").plaintext(),
        b"from an older writer"
    );
    assert_eq!(
        vault.log(),
        [format!("POST /keys/orders/{version}/unwrapkey 200")]
    );
}

struct KeyVaultBackend {
    vault: KeyVaultDouble,
    key: Arc<KeyVaultWrapper>,
    billing: Arc<KeyVaultWrapper>,
}

#[cmk_envelope::async_trait]
impl behaviour::Backend for KeyVaultBackend {
    fn wrapper(&self) -> Arc<dyn KeyWrapper> {
        self.key.clone()
    }
    async fn rotate(&self) {
        self.vault.create_key("orders", 2048);
    }
    async fn other_key(&self) -> Arc<dyn KeyWrapper> {
        self.billing.clone()
    }
    async fn set_enabled(&self, enabled: bool) -> bool {
        self.vault.set_enabled("orders", enabled);
        true
    }
}

#[test]
fn key_vault_behaves_like_every_backend() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let key = Arc::new(
        connect(
            &vault.key_url("orders"),
            options(&[&vault]).refresh_interval(Duration::ZERO),
        )
        .expect("connect"),
    );
    vault.create_key("billing", 2048);
    let billing =
        Arc::new(connect(&vault.key_url("billing"), options(&[&vault])).expect("billing"));
    let backend = KeyVaultBackend {
        vault,
        key: key.clone(),
        billing,
    };
    block_on(behaviour::run(&backend));
    block_on(behaviour::prefixed_slots_round_trip(key));
}

#[test]
fn a_hung_vault_is_abandoned_after_each_try_timeout_then_reported() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let wrapper = Arc::new(
        connect(
            &vault.key_url("orders"),
            options(&[&vault]).try_timeout(Duration::from_millis(300)),
        )
        .expect("connect"),
    );
    let e = envelope(&wrapper);
    let sealed = block_on(e.seal(b"x", b"")).expect("seal");
    let unwrap = format!("POST /keys/orders/{version}/unwrapkey");

    // One hung try is abandoned and the retry answers.
    vault.clear_log();
    vault.stall_next(1, Duration::from_secs(3));
    assert!(block_on(e.open(&sealed, b"")).is_ok());
    assert_eq!(
        vault.log(),
        [format!("{unwrap} stalled"), format!("{unwrap} 200")]
    );

    // A vault that never answers: one try and three retries, then a transient error that
    // says what happened, first.
    vault.clear_log();
    vault.stall_next(100, Duration::from_secs(3));
    match block_on(e.open(&sealed, b"")) {
        Err(error @ Error::Unavailable { .. }) => {
            assert!(error.is_transient());
            let message = error.to_string();
            assert!(message.contains("unwrapKey: no answer from"), "{message}");
            assert!(message.contains("within 300 ms"), "{message}");
            assert!(!message.contains("retry policy expired"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(vault.log(), vec![format!("{unwrap} stalled"); 4]);
}

#[test]
fn managed_hsm_keys_work_with_their_own_challenge_resource() {
    let hsm = KeyVaultDouble::start_managed_hsm("contoso-hsm");
    let version = hsm.create_key("orders", 2048);
    let credential = FixedTokenCredential::new(TOKEN);
    let wrapper = Arc::new(
        block_on(KeyVaultWrapper::connect(
            &hsm.key_url("orders"),
            Arc::clone(&credential) as _,
            options(&[&hsm]),
        ))
        .expect("connect"),
    );
    assert_eq!(
        credential.scopes().as_slice(),
        ["https://managedhsm.azure.net/.default"]
    );
    assert_eq!(wrapper.vault(), "https://contoso-hsm.managedhsm.azure.net");
    let e = envelope(&wrapper);
    let sealed = block_on(e.seal(b"in the HSM", b"")).expect("seal");
    assert_eq!(
        slot_kid(&sealed),
        format!("https://contoso-hsm.managedhsm.azure.net/keys/orders/{version}")
    );
    assert_eq!(
        block_on(e.open(&sealed, b"")).expect("open").plaintext(),
        b"in the HSM"
    );
}

#[test]
fn a_disabled_key_stops_new_remote_wraps_at_the_next_key_check() {
    // Key Vault itself still serves wrapKey on a disabled key; the wrapper's own check of
    // the key's attributes is what stops new data going under it.
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let wrapper = Arc::new(
        connect(
            &vault.key_url("orders"),
            options(&[&vault])
                .wrap_remotely(true)
                .refresh_interval(Duration::ZERO),
        )
        .expect("connect"),
    );
    let e = envelope(&wrapper);
    assert!(block_on(e.seal(b"x", b"")).is_ok());
    vault.set_enabled("orders", false);
    vault.clear_log();
    assert!(matches!(
        block_on(e.seal(b"y", b"")),
        Err(Error::KeyDisabled { .. })
    ));
    assert_eq!(vault.log(), ["GET /keys/orders 200"]);
}

#[test]
fn opening_depends_only_on_the_objects_own_key_version() {
    let vault = KeyVaultDouble::start("contoso");
    let v1 = vault.create_key("orders", 2048);
    let sealer = Arc::new(connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"));
    let sealed = block_on(envelope(&sealer).seal(b"old but good", b"")).expect("seal");
    let reader = || {
        let wrapper: Arc<dyn KeyWrapper> = Arc::new(
            KeyVaultWrapper::connect_lazily(
                &vault.key_url("orders"),
                FixedTokenCredential::new(TOKEN),
                options(&[&vault]),
            )
            .expect("lazy connect"),
        );
        Envelope::builder()
            .open_with(wrapper)
            .build()
            .expect("envelope")
    };
    let opens = |why: &str| {
        let opened = block_on(reader().open(&sealed, b""))
            .unwrap_or_else(|e| panic!("{why}: the object under {v1} must open: {e}"));
        assert_eq!(opened.plaintext(), b"old but good", "{why}");
    };

    // The newest version disabled.
    let v2 = vault.create_key("orders", 2048);
    vault.set_version_enabled("orders", &v2, false);
    opens("newest disabled");
    // The newest version breaks today's size policy (RSA-3072).
    let v3 = vault.create_key("orders", 3072);
    opens("newest RSA-3072");
    // The newest version deleted.
    vault.delete_version("orders", &v3);
    vault.delete_version("orders", &v2);
    let v4 = vault.create_key("orders", 2048);
    vault.delete_version("orders", &v4);
    opens("newest deleted");

    // The object's own version disabled: that version's state, named.
    vault.set_version_enabled("orders", &v1, false);
    match block_on(reader().open(&sealed, b"")) {
        Err(Error::KeyDisabled { kid, .. }) => assert!(kid.ends_with(&v1), "{kid}"),
        other => panic!("own version disabled: {:?}", other.err()),
    }
}

/// A TLS server on loopback whose self-signed certificate no client trusts; counts the
/// connections made to it.
fn untrusted_tls_server(host: &str) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let certified = rcgen::generate_simple_self_signed(vec![host.to_owned()]).expect("cert");
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
        )
        .expect("server config"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, Ordering::SeqCst);
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let Ok(connection) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let _ = tls.read(&mut [0u8; 1]);
            });
        }
    });
    (address, connections)
}

#[test]
fn a_refused_certificate_fails_at_once_naming_the_cause() {
    let host = "contoso.vault.azure.net";
    let (address, connections) = untrusted_tls_server(host);
    // The SDK's own HTTP client type, with the vault's name resolved to the loopback server;
    // the production retry options (five tries) stay.
    let client = reqwest::Client::builder()
        .resolve(host, address)
        .build()
        .expect("client");
    let options =
        KeyVaultOptions::default().transport(azure_core::http::Transport::new(Arc::new(client)));
    let error = connect(&format!("https://{host}/keys/orders"), options)
        .expect_err("the certificate is refused");
    let message = error.to_string();
    assert!(
        message.contains("failed: the TLS certificate of contoso.vault.azure.net was refused"),
        "{message}"
    );
    assert!(message.contains("certificate"), "{message}");
    assert!(!message.contains("retry policy expired"), "{message}");
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one try, no retries"
    );
}

#[test]
fn a_first_try_lost_in_transport_keeps_its_request_body() {
    // Until a client knows its vault's token scope, the SDK sends a request's first try
    // without its body and puts the body back when the challenge comes. If that try is
    // lost in transport instead, the retry must still carry the body: an empty unwrapKey
    // would be answered 400 and read as a failed decryption.
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let writer = envelope(&Arc::new(
        connect(&vault.key_url("orders"), options(&[&vault])).expect("connect"),
    ));
    let sealed = block_on(writer.seal(b"ledger", b"")).expect("seal");
    let reader = Envelope::builder()
        .open_with(Arc::new(
            KeyVaultWrapper::connect_lazily(
                &vault.key_url("orders"),
                FixedTokenCredential::new(TOKEN),
                options(&[&vault]).try_timeout(Duration::from_millis(300)),
            )
            .expect("client"),
        ))
        .lazy_rewrap(false)
        .build()
        .expect("envelope");
    vault.clear_log();
    vault.stall_next(1, Duration::from_secs(1));
    let opened = block_on(reader.open(&sealed, b"")).expect("opens after the lost try");
    assert_eq!(opened.plaintext(), b"ledger");
    assert!(
        vault.log()[0].ends_with("unwrapkey stalled"),
        "{:?}",
        vault.log()
    );
}

/// The sync way into the `std::io` adapters works with Key Vault from a runtime's blocking
/// thread, as a service would call it.
#[test]
fn the_blocking_constructors_reach_the_vault_from_spawn_blocking() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let url = vault.key_url("orders");
    let opened = runtime.block_on(async move {
        let wrapper =
            KeyVaultWrapper::connect(&url, FixedTokenCredential::new(TOKEN), options(&[&vault]))
                .await
                .expect("connect");
        let e = envelope(&Arc::new(wrapper));
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut writer = e.seal_writer_blocking(Vec::new(), b"aad").expect("writer");
            writer.write_all(&[5; 100_000]).expect("write");
            let sealed = writer.finish().expect("finish");
            let mut reader = e
                .open_reader_blocking(sealed.as_slice(), b"aad")
                .expect("reader unwraps through the vault");
            let mut plaintext = Vec::new();
            reader.read_to_end(&mut plaintext).expect("read");
            let range = e
                .open_range_blocking(std::io::Cursor::new(&sealed), b"aad", 10..20)
                .expect("range");
            (plaintext, range.plaintext().to_vec())
        })
        .await
        .expect("blocking task")
    });
    assert_eq!(opened.0, vec![5; 100_000]);
    assert_eq!(opened.1, vec![5; 10]);
}
