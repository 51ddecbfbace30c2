//! Azure Key Vault and Managed HSM keys (feature `azure`), through the official Azure SDK
//! (`azure_security_keyvault_keys`, `azure_identity`, `azure_core`).
//!
//! A [`KeyVaultWrapper`] holds one key. On connect, and again every
//! [`KeyVaultOptions::refresh_interval`], it reads the key (`get key`) and applies the CMK
//! rules: RSA or RSA-HSM, a size the [`KeyRules`](crate::policy::KeyRules) accepts, `wrapKey` and `unwrapKey` among
//! the key's operations, enabled and within `nbf`..`exp`, and a vault with purge protection.
//! New data keys are wrapped locally with the key's public half (RSA-OAEP-256, no network
//! call per object) or, when configured, by the vault's `wrapKey`; unwrapping is always the
//! vault's `unwrapKey` on the exact version the slot names.

mod backend;
mod canary;
mod keep_body;
mod key_facts;
mod key_ops_budget;
#[cfg(feature = "insecure-loopback-vault")]
pub mod loopback;
mod next_policy;
mod options;
mod sensitive_body;
pub(crate) mod service_error;
mod tls;
mod tries;
mod try_timeout;

use backend::BACKEND;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::RequestContent;
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientGetKeyOptions, KeyClientUnwrapKeyOptions,
    KeyClientWrapKeyOptions, KeyOperationParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};

use self::key_facts::{Rules, VaultKeyFacts};
pub use self::options::KeyVaultOptions;
use self::service_error::{malformed, service_error};
use crate::crypto::{Provider, RsaPublic};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::kid::KeyUrl;
use crate::observe::{key_call_with_tries, KeyOp, Tries};
use crate::policy::ProtectionLevel;
use crate::wrap::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

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
    /// `https://{vault}/keys/{name}`: every version's kid starts with it.
    key: String,
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
            key: format!("{}/keys/{}", url.vault, url.name),
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

    /// The current version, if it was checked less than the refresh interval ago; or, while
    /// the vault fails transiently (throttled, 5xx, timeouts: the last check failed so less
    /// than [`RECHECK_AFTER_TRANSIENT_FAILURE`] ago), if it was checked less than twice the
    /// refresh interval ago. Seals go on through a short outage under the version last
    /// seen (its public key wraps locally); a refusal (access revoked, key disabled or
    /// deleted) is not transient and drops it at once.
    fn fresh_current(&self) -> Option<Arc<Current>> {
        let current = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let age = current.checked_at.elapsed();
        if age < self.refresh_interval {
            return Some(current);
        }
        let failing_transiently = self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|(at, error)| {
                // A failure of the check after this version's, not of one before it.
                *at > current.checked_at
                    && error.is_transient()
                    && at.elapsed() < RECHECK_AFTER_TRANSIENT_FAILURE
            });
        (failing_transiently && age < self.refresh_interval.saturating_mul(2)).then_some(current)
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
        // A failed check drops the old one (after a revocation, nothing is wrapped under
        // the key again), unless it failed transiently: see `fresh_current`.
        let fetched = self.fetch_current().await;
        let mut slot = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match fetched {
            Ok(current) => {
                let current = Arc::new(current);
                *slot = Some(Arc::clone(&current));
                Ok(current)
            }
            Err(e) => {
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) =
                    Some((Instant::now(), e.duplicate()));
                let usable = slot.clone().filter(|old| {
                    e.is_transient()
                        && old.checked_at.elapsed() < self.refresh_interval.saturating_mul(2)
                });
                match usable {
                    Some(old) => Ok(old),
                    None => {
                        *slot = None;
                        Err(e)
                    }
                }
            }
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
        let tries = Tries::default();
        let response = key_call_with_tries(
            BACKEND_LABEL,
            &self.key,
            KeyOp::Get,
            None,
            Some(&tries),
            async {
                let answer = self
                    .client
                    .get_key(
                        &self.url.name,
                        Some(KeyClientGetKeyOptions {
                            key_version: self.url.version.clone(),
                            method_options: tries::method_options(&tries),
                        }),
                    )
                    .await;
                answer.map_err(|e| service_error(e, &name_for_errors, "get"))
            },
        )
        .await?;
        let facts = VaultKeyFacts::from_json(response.body()).map_err(|e| match e {
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
            modulus: facts.modulus.clone(),
            checked_at: Instant::now(),
        })
    }
}

impl KeyVaultWrapper {
    /// Wraps under the current version: with its public half here, or by `wrapKey` when
    /// [`KeyVaultOptions::wrap_remotely`] is on.
    async fn wrap_here_or_there(
        &self,
        data_key: &DataKey,
        context: SlotContext<'_>,
        tries: &Tries,
    ) -> Result<KeySlot> {
        let current = self.current().await?;
        let key_bytes = context.wrap_input(data_key);
        let wrapped = if self.wrap_remotely {
            // The request body carries the data key: built here, in one buffer, and wiped
            // once the SDK has let go of it.
            let body = sensitive_body::wrap_request(&key_bytes);
            let kept = body.clone();
            let answer = self
                .client
                .wrap_key(
                    &self.url.name,
                    <RequestContent<_> as From<bytes::Bytes>>::from(body),
                    Some(KeyClientWrapKeyOptions {
                        key_version: Some(current.version.clone()),
                        method_options: tries::method_options(tries),
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
                .encrypt_oaep(WrapAlgorithm::RsaOaepSha256, &key_bytes)
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
}

/// After a check of the current version failed transiently, how long the version checked
/// before keeps wrapping before the vault is asked again (one `get` per this long, however
/// many seals, while it is down).
const RECHECK_AFTER_TRANSIENT_FAILURE: Duration = Duration::from_secs(5);

/// The `backend` label of this backend's calls (`crate::observe`).
const BACKEND_LABEL: &str = "azure-key-vault";

#[async_trait]
impl KeyWrapper for KeyVaultWrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.kid.clone())
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        let tries = Tries::default();
        let wrap = self.wrap_here_or_there(data_key, context, &tries);
        if self.wrap_remotely {
            key_call_with_tries(
                BACKEND_LABEL,
                &self.key,
                KeyOp::Wrap,
                None,
                Some(&tries),
                wrap,
            )
            .await
        } else {
            // Wrapped here with the key's public half: not a call to the vault, so not
            // counted as one (the `get` that checked the version is).
            wrap.await
        }
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        let Some(version) = self.url.version_in(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
        let tries = Tries::default();
        key_call_with_tries(
            BACKEND_LABEL,
            &self.key,
            KeyOp::Unwrap,
            Some(slot.kid()),
            Some(&tries),
            async {
                let algorithm = match slot.algorithm() {
                    WrapAlgorithm::RsaOaepSha256 => EncryptionAlgorithm::RsaOaep256,
                    WrapAlgorithm::RsaOaepSha1 => EncryptionAlgorithm::RsaOaep,
                    // A slot under one of our key versions that is not RSA was tampered with.
                    _ => return Err(Error::DecryptionFailed),
                };
                let parameters = KeyOperationParameters {
                    algorithm: Some(algorithm),
                    value: Some(slot.wrapped().to_vec()),
                    ..KeyOperationParameters::default()
                };
                let answer = self
                    .client
                    .unwrap_key(
                        &self.url.name,
                        &version,
                        parameters.try_into().map_err(|e| Error::Backend {
                            backend: BACKEND,
                            message: format!(
                                "unwrapKey on {}: cannot build the request: {e}",
                                slot.kid()
                            ),
                        })?,
                        Some(KeyClientUnwrapKeyOptions {
                            method_options: tries::method_options(&tries),
                        }),
                    )
                    .await;
                let response = answer.map_err(|e| service_error(e, slot.kid(), "unwrapKey"))?;
                // The answer carries the data key: read from the SDK's body buffer, which is wiped,
                // into a data key, never through an intermediate string.
                let (data_key, answered_kid) =
                    sensitive_body::read_unwrap_answer(response.into_body(), context)
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
            },
        )
        .await
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
    async fn confirm_wrap(
        &self,
        slot: &KeySlot,
        data_key: &DataKey,
        _: SlotContext<'_>,
    ) -> Result<()> {
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

    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::KeyVault, &self.url.vault).key(&self.key)
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
