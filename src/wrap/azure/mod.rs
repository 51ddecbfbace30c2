//! Azure Key Vault and Managed HSM keys (feature `azure`), through the official Azure SDK
//! (`azure_security_keyvault_keys`, `azure_identity`, `azure_core`).
//!
//! A [`KeyVaultWrapper`] holds one key. On connect, and again every
//! [`KeyVaultOptions::refresh_interval`], it reads the key (`get key`) and applies the CMK
//! rules: RSA or RSA-HSM, a size the [`KeyRules`] accepts, `wrapKey` and `unwrapKey` among
//! the key's operations, enabled and within `nbf`..`exp`, and a vault with purge protection.
//! New data keys are wrapped locally with the key's public half (RSA-OAEP-256, no network
//! call per object) or, when configured, by the vault's `wrapKey`; unwrapping is always the
//! vault's `unwrapKey` on the exact version the slot names.

mod keep_body;
mod key_facts;
mod key_ops_budget;
#[cfg(feature = "insecure-loopback-vault")]
pub mod loopback;
mod next_policy;
mod sensitive_body;
mod service_error;
mod tls;
mod try_timeout;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RequestContent, RetryOptions};
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientGetKeyOptions, KeyClientWrapKeyOptions, KeyOperationParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};

use self::key_facts::{KeyFacts, Rules};
use self::service_error::ServiceError;
use crate::crypto::{Provider, RsaPublic};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::wrap::key_url::KeyUrl;
use crate::wrap::KeyRules;
use crate::wrap::{KeyWrapper, ProtectionLevel, Unwrapped};

const BACKEND: &str = "azure-keyvault";

/// How a [`KeyVaultWrapper`] checks, wraps and talks to the vault.
///
/// ```
/// # use std::time::Duration;
/// use cmk_envelope::azure::KeyVaultOptions;
/// let options = KeyVaultOptions::default()
///     .refresh_interval(Duration::from_secs(60))
///     .wrap_remotely(true);
/// ```
#[derive(Debug, Clone)]
pub struct KeyVaultOptions {
    refresh_interval: Duration,
    wrap_remotely: bool,
    require_purge_protection: bool,
    key_rules: KeyRules,
    provider: Provider,
    try_timeout: Duration,
    client_options: ClientOptions,
    max_key_ops: Option<crate::wrap::KeyOpsLimit>,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        // Bounded: a vault that stays unavailable fails the call within about half a
        // minute, rather than after the SDK's longer default.
        let client_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 4,
                max_total_elapsed: azure_core::time::Duration::seconds(30),
                max_delay: azure_core::time::Duration::seconds(8),
            }),
            ..ClientOptions::default()
        };
        Self {
            refresh_interval: Duration::from_secs(300),
            wrap_remotely: false,
            require_purge_protection: true,
            key_rules: KeyRules::default(),
            provider: Provider::default(),
            try_timeout: Duration::from_secs(10),
            client_options,
            max_key_ops: None,
        }
    }
}

impl KeyVaultOptions {
    /// How long a successful key check stands before `get key` runs again (default five
    /// minutes). A disabled or deleted key stops *new* wraps within this time; unwrapping
    /// always asks the vault.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Wraps with the vault's `wrapKey` (one round trip per object, and each wrap appears in
    /// the vault's audit log) instead of locally with the public key.
    #[must_use]
    pub fn wrap_remotely(mut self, remote: bool) -> Self {
        self.wrap_remotely = remote;
        self
    }

    /// Accepts a vault without purge protection. Azure requires purge protection for
    /// customer-managed keys, because a purged key makes every object under it unreadable
    /// for good; a warning is logged (`tracing`) at each check that relies on this.
    #[must_use]
    pub fn dangerously_allow_without_purge_protection(mut self, allow: bool) -> Self {
        self.require_purge_protection = !allow;
        self
    }

    /// The key rules (default: RSA-2048 only).
    #[must_use]
    pub fn key_rules(mut self, key_rules: KeyRules) -> Self {
        self.key_rules = key_rules;
        self
    }

    /// The crypto provider for local wraps.
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// How long one try of a request may take before it is abandoned and retried (default
    /// ten seconds; a Key Vault operation normally answers in tens of milliseconds). With
    /// the default retries, a vault that accepts connections and never answers fails a call
    /// within about a minute.
    #[must_use]
    pub fn try_timeout(mut self, limit: Duration) -> Self {
        self.try_timeout = limit;
        self
    }

    /// The Azure SDK's client options: retries, extra policies, and the HTTP transport.
    /// They replace the defaults, this crate's bounded retries included.
    #[must_use]
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self
    }

    /// Shares `limit` (operations per second) with every wrapper and task holding a clone
    /// of it: each request to the vault, retries included, waits for its turn, and a 429
    /// answer pauses them all until its `Retry-After`. For bulk jobs on a vault that
    /// production also uses: the vault's throughput is one budget (about 4,000 RSA-2048
    /// operations per 10 s for software-protected keys, less for HSM keys).
    #[must_use]
    pub fn max_key_ops(mut self, limit: crate::wrap::KeyOpsLimit) -> Self {
        self.max_key_ops = Some(limit);
        self
    }

    /// Sends requests through `transport` (a proxy, a test double), keeping every other
    /// client option, the bounded retries included.
    #[must_use]
    pub fn transport(mut self, transport: azure_core::http::Transport) -> Self {
        self.client_options.transport = Some(transport);
        self
    }
}

/// The key version that new data is wrapped under, as last checked.
struct Current {
    kid: String,
    version: String,
    public: Box<dyn RsaPublic>,
    modulus: Vec<u8>,
    checked_at: Instant,
}

/// One Key Vault or Managed HSM key, all its versions.
pub struct KeyVaultWrapper {
    client: KeyClient,
    url: KeyUrl,
    rules: Rules,
    refresh_interval: Duration,
    wrap_remotely: bool,
    provider: Provider,
    current: Mutex<Option<Arc<Current>>>,
    checking: async_lock::Mutex<()>,
    /// When the last check failed, and how: for the callers that waited for it.
    last_failure: Mutex<Option<(Instant, Error)>>,
    /// Versions whose public key (the modulus kept here) was proven to match the vault's
    /// private key by a canary round trip; one proof per version, shared by concurrent
    /// re-wraps.
    proven: Mutex<HashMap<String, Arc<async_lock::OnceCell<Vec<u8>>>>>,
}

impl std::fmt::Debug for KeyVaultWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVaultWrapper")
            .field("vault", &self.url.vault)
            .field("key", &self.url.name)
            .field("pinned_version", &self.url.version)
            .field("wrap_remotely", &self.wrap_remotely)
            .finish_non_exhaustive()
    }
}

impl KeyVaultWrapper {
    /// Connects to the key at `key_url` (`https://{vault}.vault.azure.net/keys/{name}`, or
    /// with `/{version}` to pin one version; Managed HSM hosts too) and checks it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL or a host that is not Key Vault's;
    /// [`Error::PolicyRefused`] or [`Error::KeyDisabled`] naming the rule the key breaks;
    /// [`Error::AccessDenied`], [`Error::KeyNotFound`], [`Error::Throttled`],
    /// [`Error::Backend`] as the vault answers.
    pub async fn connect(
        key_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self> {
        let wrapper = Self::connect_lazily(key_url, credential, options)?;
        wrapper.current().await?;
        Ok(wrapper)
    }

    /// As [`KeyVaultWrapper::connect`], without reading the key now: for opening. Opening
    /// an object calls `unwrapKey` on the version its slot names and reports that version's
    /// own state (disabled, deleted, access denied); the key's current version is read and
    /// checked against the CMK rules only when something is wrapped under it, or its kid is
    /// asked for. So a disabled or non-compliant newest version does not stop old objects
    /// under a good version from opening.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL or a host that is not Key Vault's;
    /// [`Error::Backend`] when the client cannot be made. No network call is made.
    pub fn connect_lazily(
        key_url: &str,
        credential: Arc<dyn TokenCredential>,
        options: KeyVaultOptions,
    ) -> Result<Self> {
        let url = KeyUrl::parse(key_url)?;
        let mut client_options = options.client_options;
        client_options
            .per_call_policies
            .push(Arc::new(keep_body::RememberBody));
        client_options
            .per_try_policies
            .insert(0, Arc::new(keep_body::RestoreBody));
        // The budget is outermost: waiting for a turn is not part of a try's time limit.
        if let Some(limit) = options.max_key_ops {
            client_options
                .per_try_policies
                .push(Arc::new(key_ops_budget::KeyOpsBudget { limit }));
        }
        client_options
            .per_try_policies
            .push(Arc::new(try_timeout::TryTimeout {
                limit: options.try_timeout,
            }));
        client_options
            .per_try_policies
            .push(Arc::new(tls::CertificateFailuresAreFinal));
        let client = KeyClient::new(
            &url.vault,
            credential,
            Some(KeyClientOptions {
                client_options,
                ..KeyClientOptions::default()
            }),
        )
        .map_err(|e| Error::Backend {
            backend: BACKEND,
            message: format!("cannot create the Key Vault client: {e}"),
        })?;
        let wrapper = Self {
            client,
            url,
            rules: Rules {
                key_rules: options.key_rules,
                require_purge_protection: options.require_purge_protection,
            },
            refresh_interval: options.refresh_interval,
            wrap_remotely: options.wrap_remotely,
            provider: options.provider,
            current: Mutex::new(None),
            checking: async_lock::Mutex::new(()),
            last_failure: Mutex::new(None),
            proven: Mutex::new(HashMap::new()),
        };
        Ok(wrapper)
    }

    /// The vault, `https://{host}`.
    #[must_use]
    pub fn vault(&self) -> &str {
        &self.url.vault
    }

    fn fresh_current(&self) -> Option<Arc<Current>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|c| c.checked_at.elapsed() < self.refresh_interval)
    }

    /// The checked current version, fetched again once the last check is too old. Callers
    /// that find it stale at once wait for one `get`, not one each; when that check fails,
    /// those that were waiting for it get its error rather than trying again one by one
    /// (a vault that is down would otherwise cost each of them the whole retry budget, in
    /// turn).
    async fn current(&self) -> Result<Arc<Current>> {
        if let Some(current) = self.fresh_current() {
            return Ok(current);
        }
        let asked_at = Instant::now();
        let _one_check_at_a_time = self.checking.lock().await;
        if let Some(current) = self.fresh_current() {
            return Ok(current);
        }
        let failed_meanwhile = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(failed_at, _)| *failed_at >= asked_at)
            .map(|(_, error)| error.duplicate());
        if let Some(error) = failed_meanwhile {
            return Err(error);
        }
        // A failed check drops the old one: after a revocation, nothing is wrapped under
        // the key again.
        let fetched = self.fetch_current().await;
        let mut slot = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match fetched {
            Ok(current) => {
                let current = Arc::new(current);
                *slot = Some(Arc::clone(&current));
                Ok(current)
            }
            Err(e) => {
                *slot = None;
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), e.duplicate()));
                Err(e)
            }
        }
    }

    /// Proves that `current.public` belongs to the vault's private key of that version: a
    /// random canary wrapped here must come back from the vault's `unwrapKey`. Done once per
    /// version (and public key); concurrent callers wait for the one proof.
    async fn prove_public_key(&self, current: &Current) -> Result<()> {
        let cell = Arc::clone(
            self.proven
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(current.version.clone())
                .or_default(),
        );
        let proven_modulus = cell
            .get_or_try_init(|| async {
                let canary = self.random_canary(&current.kid)?;
                let wrapped = current
                    .public
                    .encrypt_oaep(WrapAlgorithm::RsaOaepSha256, canary.expose_secret())
                    .map_err(|_| Error::Backend {
                        backend: BACKEND,
                        message: format!("local RSA-OAEP-256 wrap under {} failed", current.kid),
                    })?;
                let slot =
                    KeySlot::new(current.kid.clone(), WrapAlgorithm::RsaOaepSha256, wrapped)?;
                let refuted = || Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the public key read for {} is not the vault's: a canary wrapped with it \
                         does not come back from unwrapKey",
                        current.kid
                    ),
                };
                match self.unwrap_key(&slot).await {
                    Ok(Unwrapped::Key(back)) if back.same_as(&canary) => {
                        Ok(current.modulus.clone())
                    }
                    Ok(_) | Err(Error::DecryptionFailed) => Err(refuted()),
                    Err(other) => Err(other),
                }
            })
            .await?;
        if *proven_modulus == current.modulus {
            Ok(())
        } else {
            Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the vault answered two different public keys for {}",
                    current.kid
                ),
            })
        }
    }

    fn random_canary(&self, kid: &str) -> Result<DataKey> {
        let mut bytes = zeroize::Zeroizing::new([0u8; crate::data_key::DATA_KEY_LEN]);
        let no_random = || Error::Backend {
            backend: BACKEND,
            message: format!("no random bytes for the canary of {kid}"),
        };
        self.provider
            .ops()
            .fill_random(bytes.as_mut())
            .map_err(|_| no_random())?;
        DataKey::from_slice(bytes.as_ref()).ok_or_else(no_random)
    }

    async fn fetch_current(&self) -> Result<Current> {
        let name_for_errors = match &self.url.version {
            Some(v) => self.url.kid(v),
            None => format!("{}/keys/{}", self.url.vault, self.url.name),
        };
        let response = self
            .client
            .get_key(
                &self.url.name,
                Some(KeyClientGetKeyOptions {
                    key_version: self.url.version.clone(),
                    ..KeyClientGetKeyOptions::default()
                }),
            )
            .await
            .map_err(|e| service_error(e, &name_for_errors, "get"))?;
        let facts = KeyFacts::from_json(response.body()).map_err(|e| match e {
            Error::Backend { message, .. } => malformed(&name_for_errors, "get", &message),
            other => other,
        })?;
        let version = self
            .url
            .version_in(&facts.kid)
            .filter(|v| {
                self.url
                    .version
                    .as_deref()
                    .is_none_or(|pinned| pinned == *v)
            })
            .ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: format!(
                    "get key for {name_for_errors} answered with another key, {}",
                    facts.kid
                ),
            })?
            .to_owned();
        facts.check(&self.rules, unix_now())?;
        if !self.rules.require_purge_protection {
            tracing::warn!(
                kid = %facts.kid,
                recovery_level = facts.recovery_level.as_deref().unwrap_or("(none)"),
                "purge protection is not required for this key: a purged key makes its data unreadable for good"
            );
        }
        crate::wrap::key_rules::check_rsa_exponent(&facts.exponent, &facts.kid)?;
        let public = self
            .provider
            .ops()
            .rsa_public_from_components(&facts.modulus, &facts.exponent)
            .map_err(|_| {
                Error::InvalidKey(format!("{}: the public key does not load", facts.kid))
            })?;
        Ok(Current {
            kid: self.url.kid(&version),
            version,
            public,
            modulus: facts.modulus.clone(),
            checked_at: Instant::now(),
        })
    }
}

#[async_trait]
impl KeyWrapper for KeyVaultWrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.kid.clone())
    }

    async fn wrap_key(&self, data_key: &DataKey) -> Result<KeySlot> {
        let current = self.current().await?;
        let wrapped = if self.wrap_remotely {
            // The request body carries the data key: built here, in one buffer, and wiped
            // once the SDK has let go of it.
            let body = sensitive_body::wrap_request(data_key);
            let kept = body.clone();
            let answer = self
                .client
                .wrap_key(
                    &self.url.name,
                    <RequestContent<_> as From<bytes::Bytes>>::from(body),
                    Some(KeyClientWrapKeyOptions {
                        key_version: Some(current.version.clone()),
                        ..KeyClientWrapKeyOptions::default()
                    }),
                )
                .await;
            sensitive_body::wipe(kept);
            let response = answer.map_err(|e| service_error(e, &current.kid, "wrapKey"))?;
            let result = response
                .into_model()
                .map_err(|e| malformed(&current.kid, "wrapKey", &e.to_string()))?;
            if result.kid.as_deref() != Some(current.kid.as_str()) {
                return Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "wrapKey on {} answered for {}",
                        current.kid,
                        result.kid.as_deref().unwrap_or("no key")
                    ),
                });
            }
            result.result.ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: format!("wrapKey on {} returned no value", current.kid),
            })?
        } else {
            current
                .public
                .encrypt_oaep(WrapAlgorithm::RsaOaepSha256, data_key.expose_secret())
                .map_err(|_| Error::Backend {
                    backend: BACKEND,
                    message: format!("local RSA-OAEP-256 wrap under {} failed", current.kid),
                })?
        };
        Ok(KeySlot::new(
            current.kid.clone(),
            WrapAlgorithm::RsaOaepSha256,
            wrapped,
        )?)
    }

    async fn unwrap_key(&self, slot: &KeySlot) -> Result<Unwrapped> {
        let Some(version) = self.url.version_in(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
        let algorithm = match slot.algorithm() {
            WrapAlgorithm::RsaOaepSha256 => EncryptionAlgorithm::RsaOaep256,
            WrapAlgorithm::RsaOaepSha1 => EncryptionAlgorithm::RsaOaep,
        };
        let parameters = KeyOperationParameters {
            algorithm: Some(algorithm),
            value: Some(slot.wrapped().to_vec()),
            ..KeyOperationParameters::default()
        };
        let response = self
            .client
            .unwrap_key(
                &self.url.name,
                &version,
                parameters.try_into().map_err(|e| Error::Backend {
                    backend: BACKEND,
                    message: format!("unwrapKey on {}: cannot build the request: {e}", slot.kid()),
                })?,
                None,
            )
            .await
            .map_err(|e| service_error(e, slot.kid(), "unwrapKey"))?;
        // The answer carries the data key: read from the SDK's body buffer, which is wiped,
        // into a data key, never through an intermediate string.
        let (data_key, answered_kid) = sensitive_body::read_unwrap_answer(response.into_body())
            .map_err(|why| malformed(slot.kid(), "unwrapKey", &why.to_string()))?;
        if answered_kid.as_deref() != Some(slot.kid()) {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "unwrapKey on {} answered for {}",
                    slot.kid(),
                    answered_kid.as_deref().unwrap_or("no key")
                ),
            });
        }
        data_key.map(Unwrapped::Key).ok_or(Error::DecryptionFailed)
    }

    fn recognizes(&self, kid: &str) -> Option<bool> {
        Some(self.url.version_in(kid).is_some())
    }

    /// A slot the vault wrapped (`wrap_remotely`) is the vault's own work. A slot wrapped
    /// here under the current version is confirmed by proving, once per version, that the
    /// public key read from the vault belongs to the private key that unwraps: a random
    /// canary is wrapped locally with it and unwrapped by the vault. So a re-wrap costs one
    /// `unwrapKey` per object (its own), not two.
    ///
    /// This proves the key, not each wrap: a local RSA-OAEP encryption that went wrong for
    /// one object would not be seen here (the crypto providers are tested against
    /// known-answer vectors instead), nor would a version disabled or deleted later.
    async fn confirm_wrap(&self, slot: &KeySlot, data_key: &DataKey) -> Result<()> {
        let current = self.current().await?;
        if slot.kid() != current.kid {
            return Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the new slot names {}, not the current version {}",
                    slot.kid(),
                    current.kid
                ),
            });
        }
        if self.wrap_remotely {
            return Ok(());
        }
        let _ = data_key;
        self.prove_public_key(&current).await
    }

    fn protection(&self) -> ProtectionLevel {
        ProtectionLevel::KeyVault
    }

    fn domain(&self) -> &str {
        &self.url.vault
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An answer that is not what the operation returns: names the operation, never echoes
/// the body (an unwrap answer carries a data key).
fn malformed(kid: &str, operation: &str, why: &str) -> Error {
    Error::Backend {
        backend: BACKEND,
        message: format!("{operation} on {kid}: malformed answer from the vault: {why}"),
    }
}

/// What failed, and each cause under it, without the retry policy's own words ("retry
/// policy expired…"), which would hide what failed each try.
fn with_causes(error: &azure_core::Error) -> String {
    const RETRY_POLICY_WORDS: [&str; 2] = ["retry policy expired", "will not be retried"];
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !RETRY_POLICY_WORDS.iter().any(|w| said.contains(w)) && !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// Maps an SDK error: service answers by status and Key Vault error code; a refused TLS
/// certificate as itself (it was not retried); other transport failures, after the retries,
/// as [`Error::Unavailable`]; a credential that gives no token as access denied, saying how
/// to log in.
fn service_error(error: azure_core::Error, kid: &str, operation: &str) -> Error {
    use azure_core::error::ErrorKind;
    if let Some(refused) = tls::certificate_refusal(&error) {
        return Error::Backend {
            backend: BACKEND,
            message: format!("{refused}; {operation} on {kid} was not sent and not retried"),
        };
    }
    match error.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let status = u16::from(*status);
            let (body, retry_after, challenge) = raw_response
                .as_ref()
                .map(|raw| {
                    (
                        raw.body().to_vec(),
                        retry_after(raw.headers()),
                        raw.headers()
                            .get_optional_str(&azure_core::http::headers::WWW_AUTHENTICATE)
                            .map(str::to_owned),
                    )
                })
                .unwrap_or_default();
            ServiceError::from_response(status, &body, retry_after)
                .with_challenge(challenge.as_deref())
                .into_error(kid, operation)
        }
        ErrorKind::Credential => Error::AccessDenied {
            kid: kid.to_owned(),
            detail: format!(
                "{operation}: no token from the credential ({}); log in again (`az login` for \
                 the developer credential) or check the tenant, client id, secret or \
                 certificate of the credential in use (cmke: --azure-credential)",
                with_causes(&error)
            ),
        },
        ErrorKind::Io | ErrorKind::Connection => Error::Unavailable {
            kid: kid.to_owned(),
            detail: format!(
                "{operation}: {} (still failing after the retries)",
                with_causes(&error)
            ),
        },
        _ => Error::Backend {
            backend: BACKEND,
            message: format!("{operation} on {kid}: {}", with_causes(&error)),
        },
    }
}

fn retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    headers
        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
