//! Azure Key Vault and Managed HSM keys (feature `azure`), through the official Azure SDK
//! (`azure_security_keyvault_keys`, `azure_identity`, `azure_core`).
//!
//! A [`KeyVaultWrapper`] holds one key. On connect, and again every
//! [`KeyVaultOptions::refresh_interval`], it reads the key (`get key`) and applies the CMK
//! rules: RSA or RSA-HSM, a size the [`KeyPolicy`] accepts, `wrapKey` and `unwrapKey` among
//! the key's operations, enabled and within `nbf`..`exp`, and a vault with purge protection.
//! New data keys are wrapped locally with the key's public half (RSA-OAEP-256, no network
//! call per object) or, when configured, by the vault's `wrapKey`; unwrapping is always the
//! vault's `unwrapKey` on the exact version the slot names.

mod key_facts;
mod key_url;
#[cfg(feature = "insecure-loopback-vault")]
pub mod loopback;
mod sensitive_body;
mod service_error;
mod try_timeout;

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
use self::key_url::KeyUrl;
use self::service_error::ServiceError;
use crate::crypto::{Provider, RsaPublic};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::policy::KeyPolicy;
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
    policy: KeyPolicy,
    provider: Provider,
    try_timeout: Duration,
    client_options: ClientOptions,
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
            policy: KeyPolicy::default(),
            provider: Provider::default(),
            try_timeout: Duration::from_secs(10),
            client_options,
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

    /// The key policy (default: RSA-2048 only).
    #[must_use]
    pub fn policy(mut self, policy: KeyPolicy) -> Self {
        self.policy = policy;
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
            .per_try_policies
            .push(Arc::new(try_timeout::TryTimeout {
                limit: options.try_timeout,
            }));
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
                policy: options.policy,
                require_purge_protection: options.require_purge_protection,
            },
            refresh_interval: options.refresh_interval,
            wrap_remotely: options.wrap_remotely,
            provider: options.provider,
            current: Mutex::new(None),
        };
        Ok(wrapper)
    }

    /// The vault, `https://{host}`.
    #[must_use]
    pub fn vault(&self) -> &str {
        &self.url.vault
    }

    /// The checked current version, fetched again once the last check is too old.
    async fn current(&self) -> Result<Arc<Current>> {
        let cached = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(current) = cached.filter(|c| c.checked_at.elapsed() < self.refresh_interval) {
            return Ok(current);
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
                Err(e)
            }
        }
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
        let facts = KeyFacts::from_json(response.body())?;
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
        crate::policy::check_rsa_exponent(&facts.exponent, &facts.kid)?;
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
            checked_at: Instant::now(),
        })
    }
}

#[async_trait]
impl KeyWrapper for KeyVaultWrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.kid.clone())
    }

    async fn wrap(&self, data_key: &DataKey) -> Result<KeySlot> {
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
                .map_err(|e| backend(&current.kid, e))?;
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

    async fn unwrap(&self, slot: &KeySlot) -> Result<Unwrapped> {
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
                version,
                parameters.try_into().map_err(|e| backend(slot.kid(), e))?,
                None,
            )
            .await
            .map_err(|e| service_error(e, slot.kid(), "unwrapKey"))?;
        // The answer carries the data key: read from the SDK's body buffer, which is wiped,
        // into a data key, never through an intermediate string.
        let (data_key, answered_kid) = sensitive_body::read_unwrap_answer(response.into_body())
            .map_err(|why| Error::Backend {
                backend: BACKEND,
                message: format!("unwrapKey on {}: malformed answer: {why}", slot.kid()),
            })?;
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

fn backend(kid: &str, error: azure_core::Error) -> Error {
    Error::Backend {
        backend: BACKEND,
        message: format!("{kid}: {}", with_causes(&error)),
    }
}

/// The SDK's message and each cause under it: the retry policy's "expired" alone would
/// hide what failed each try.
fn with_causes(error: &azure_core::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// Maps an SDK error: service answers by status and Key Vault error code, everything else
/// (connection, timeout after retries, credential) as a backend failure.
fn service_error(error: azure_core::Error, kid: &str, operation: &str) -> Error {
    use azure_core::error::ErrorKind;
    match error.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let status = u16::from(*status);
            let (body, retry_after) = raw_response
                .as_ref()
                .map(|raw| (raw.body().to_vec(), retry_after(raw.headers())))
                .unwrap_or_default();
            ServiceError::from_response(status, &body, retry_after).into_error(kid, operation)
        }
        ErrorKind::Credential => Error::AccessDenied {
            kid: kid.to_owned(),
            detail: format!("no token from the credential: {}", with_causes(&error)),
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
