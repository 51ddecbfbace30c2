//! Keys in a PKCS#11 hardware security module (feature `pkcs11`), through `cryptoki`.
//!
//! A [`Pkcs11Wrapper`] holds one key, named by its `CKA_LABEL`, in one token, named by its
//! label. Each **version** of the key is its own RSA key pair with that label and its own
//! `CKA_ID` (cmke numbers them `00000001`, `00000002`, … as four bytes); the current
//! version is the one with the greatest id (longer ids after shorter, then bytewise), or
//! the one [`Pkcs11Config::key_id`] pins. The kid of a version is the RFC 7512 URI
//! `pkcs11:token={token};object={label};id={id}`.
//!
//! The private keys never leave the token: they are created sensitive and not extractable,
//! and a key that is either is refused. Unwrapping is `C_Decrypt` with `CKM_RSA_PKCS_OAEP`
//! inside the token; wrapping is local, with the public half read once from the token.
//!
//! **Rotation** ([`Pkcs11Wrapper::rotate_key`], `cmke key rotate pkcs11:…`): a new key pair
//! with the next id is generated in the token and becomes current for every process at its
//! next key check ([`Pkcs11Config::refresh_interval`]); old versions stay in the token, so
//! old objects keep opening, and `rewrap` moves them to the new version lazily.
//!
//! All PKCS#11 calls block, so they run on a pool of worker threads, one per session
//! ([`Pkcs11Config::sessions`]), never on the async executor.

mod admin;
mod backend;
mod config;
#[cfg(test)]
mod interop_tests;
mod session_pool;
mod token;

pub use config::{OaepHash, PinSource, Pkcs11Config};

use backend::BACKEND;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use cryptoki::object::ObjectHandle;
use zeroize::Zeroizing;

use self::session_pool::{run_blocking, SessionPool};
use self::token::{DecryptFailure, Token, VersionFacts};
use crate::crypto::RsaPublic;
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::observe::{key_call, KeyOp};
use crate::policy::ProtectionLevel;
use crate::wrap::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// The version new data keys are wrapped under.
struct Current {
    kid: String,
    public: Box<dyn RsaPublic>,
    bits: usize,
    checked_at: Instant,
}

/// One key in a PKCS#11 token, all its versions.
pub struct Pkcs11Wrapper {
    config: Pkcs11Config,
    domain: String,
    /// `pkcs11:token=…;object=…`: the key, whatever its version's `CKA_ID`.
    key: String,
    pool: SessionPool,
    wrap_algorithm: WrapAlgorithm,
    /// The trial unwrap on connect showed the token lacks OAEP with SHA-256.
    sha256_missing: bool,
    current: Mutex<Arc<Current>>,
    handles: Mutex<HashMap<Vec<u8>, ObjectHandle>>,
}

impl std::fmt::Debug for Pkcs11Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Wrapper")
            .field("key", &self.config.key_uri().to_uri())
            .field("module", &self.config.module)
            .field("sessions", &self.pool.size())
            .field("wrap_algorithm", &self.wrap_algorithm)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pkcs11Wrapper {
    /// Loads the module, finds the token, logs in with the user PIN, opens the session pool
    /// and checks the current version: RSA, a size the key rules accept, sensitive, not
    /// extractable, allowed to decrypt. With [`OaepHash::Auto`] or [`OaepHash::Sha256`] it
    /// unwraps one random trial key to learn whether the token takes OAEP with SHA-256.
    ///
    /// # Errors
    /// [`Error::Backend`] when the module does not load or lacks `CKM_RSA_PKCS_OAEP` (or
    /// SHA-256 was required and is missing); [`Error::KeyNotFound`] for a missing token or
    /// key; [`Error::AccessDenied`] for a wrong or locked PIN; [`Error::PolicyRefused`] for
    /// a key the rules refuse; [`Error::InvalidArgument`] when the PIN is not available.
    pub async fn connect(config: Pkcs11Config) -> Result<Self> {
        let pin = config.pin.read()?;
        let setup = config.clone();
        let sessions = run_blocking(move || {
            let token_uri = setup.token_uri();
            let token = Token::open(&setup.module, &setup.token, &token_uri)?;
            token.sessions(setup.sessions, false, &pin, &token_uri)
        })
        .await??;
        let pool = SessionPool::start(sessions, &config.key)?;
        let (current, handle) = Self::check_current(&pool, &config).await?;
        let mut wrapper = Self {
            domain: config.token_uri(),
            key: config.key_uri().to_uri(),
            wrap_algorithm: WrapAlgorithm::RsaOaepSha1,
            sha256_missing: false,
            current: Mutex::new(Arc::new(current)),
            handles: Mutex::new(HashMap::new()),
            pool,
            config,
        };
        if wrapper.config.oaep != OaepHash::Sha1 {
            wrapper.sha256_missing = !wrapper.token_unwraps_sha256(handle.1, handle.0).await?;
            if !wrapper.sha256_missing {
                wrapper.wrap_algorithm = WrapAlgorithm::RsaOaepSha256;
            } else if wrapper.config.oaep == OaepHash::Sha256 {
                return Err(Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "token {} does not take CKM_RSA_PKCS_OAEP with SHA-256; use OaepHash::Sha1 \
                         (or OaepHash::Auto) with this token",
                        wrapper.domain
                    ),
                });
            }
        }
        Ok(wrapper)
    }

    /// Every version's kid, oldest first.
    ///
    /// # Errors
    /// As the token answers.
    pub async fn versions(&self) -> Result<Vec<String>> {
        let config = self.config.clone();
        let versions = self
            .pool
            .run(move |session| {
                token::list_versions(session, &config.key, &config.key_uri().to_uri())
            })
            .await??;
        Ok(versions.iter().map(|(id, _)| self.config.kid(id)).collect())
    }

    /// Reads the current version again now, instead of at the next refresh.
    ///
    /// # Errors
    /// As [`Pkcs11Wrapper::connect`].
    pub async fn refresh(&self) -> Result<()> {
        let (current, _) = Self::check_current(&self.pool, &self.config).await?;
        *lock(&self.current) = Arc::new(current);
        Ok(())
    }

    async fn current(&self) -> Result<Arc<Current>> {
        let current = Arc::clone(&lock(&self.current));
        if current.checked_at.elapsed() < self.config.refresh_interval {
            return Ok(current);
        }
        self.refresh().await?;
        Ok(Arc::clone(&lock(&self.current)))
    }

    /// Finds and checks the current version; also returns its (id, handle).
    async fn check_current(
        pool: &SessionPool,
        config: &Pkcs11Config,
    ) -> Result<(Current, (Vec<u8>, ObjectHandle))> {
        let lookup = config.clone();
        let facts: VersionFacts = pool
            .run(move |session| {
                let key_uri = lookup.key_uri().to_uri();
                let (id, handle) = match &lookup.key_id {
                    Some(id) => {
                        let kid = lookup.kid(id);
                        (
                            id.clone(),
                            token::find_version(session, &lookup.key, id, &kid)?,
                        )
                    }
                    None => token::list_versions(session, &lookup.key, &key_uri)?
                        .pop()
                        .ok_or(Error::KeyNotFound {
                            kid: key_uri,
                            detail: String::new(),
                        })?,
                };
                let kid = lookup.kid(&id);
                token::read_version(session, id, handle, &kid)
            })
            .await??;
        let kid = config.kid(&facts.id);
        if !facts.sensitive || facts.extractable {
            return Err(Error::PolicyRefused(format!(
                "{kid}: the private key must be sensitive and not extractable \
                 (CKA_SENSITIVE {}, CKA_EXTRACTABLE {})",
                facts.sensitive, facts.extractable
            )));
        }
        if !facts.decrypt {
            return Err(Error::PolicyRefused(format!(
                "{kid}: the private key may not decrypt (CKA_DECRYPT false), so it cannot unwrap"
            )));
        }
        let bits = facts.bits();
        config.key_rules.check_rsa_size(bits)?;
        crate::policy::check_rsa_exponent(&facts.exponent, &kid)?;
        let public = config
            .provider
            .ops()
            .rsa_public_from_components(&facts.modulus, &facts.exponent)
            .map_err(|_| Error::InvalidKey(format!("{kid}: the public key does not load")))?;
        Ok((
            Current {
                kid,
                public,
                bits,
                checked_at: Instant::now(),
            },
            (facts.id, facts.handle),
        ))
    }

    /// Whether the token decrypts OAEP with SHA-256: one trial unwrap of a random key.
    async fn token_unwraps_sha256(&self, handle: ObjectHandle, id: Vec<u8>) -> Result<bool> {
        let current = self.current().await?;
        let mut trial = Zeroizing::new([0u8; 32]);
        self.config
            .provider
            .ops()
            .fill_random(trial.as_mut())
            .map_err(|_| Error::Backend {
                backend: BACKEND,
                message: "no randomness for the trial unwrap".to_owned(),
            })?;
        let wrapped = current
            .public
            .encrypt_oaep(WrapAlgorithm::RsaOaepSha256, trial.as_ref())
            .map_err(|_| Error::Backend {
                backend: BACKEND,
                message: "the trial wrap failed".to_owned(),
            })?;
        let kid = self.config.kid(&id);
        match self
            .decrypt(handle, WrapAlgorithm::RsaOaepSha256, wrapped, kid)
            .await
        {
            Ok(recovered) => Ok(recovered.as_slice() == trial.as_ref()),
            Err(DecryptFailure::Unsupported(_)) => Ok(false),
            Err(DecryptFailure::Other(e)) => Err(e),
        }
    }

    async fn decrypt(
        &self,
        handle: ObjectHandle,
        algorithm: WrapAlgorithm,
        wrapped: Vec<u8>,
        kid: String,
    ) -> std::result::Result<Zeroizing<Vec<u8>>, DecryptFailure> {
        let budget = self.config.max_key_ops.clone();
        self.pool
            .run(move |session| {
                if let Some(limit) = budget {
                    limit.wait_blocking();
                }
                session
                    .decrypt(&token::oaep(algorithm), handle, &wrapped)
                    .map(Zeroizing::new)
                    .map_err(|e| token::decrypt_failure(e, &kid))
            })
            .await
            .map_err(DecryptFailure::Other)?
    }

    async fn handle_of(&self, id: &[u8], kid: &str) -> Result<ObjectHandle> {
        if let Some(handle) = lock(&self.handles).get(id) {
            return Ok(*handle);
        }
        let (label, wanted, kid_owned) = (self.config.key.clone(), id.to_vec(), kid.to_owned());
        let handle = self
            .pool
            .run(move |session| token::find_version(session, &label, &wanted, &kid_owned))
            .await??;
        lock(&self.handles).insert(id.to_vec(), handle);
        Ok(handle)
    }

    /// The module this wrapper loaded.
    #[must_use]
    pub fn module(&self) -> &Path {
        &self.config.module
    }

    /// The OAEP variant new slots use.
    #[must_use]
    pub fn wrap_algorithm(&self) -> WrapAlgorithm {
        self.wrap_algorithm
    }
}

impl Pkcs11Wrapper {
    /// The `CKA_ID` a kid names, when it names a version of this key.
    fn names_this_key(&self, kid: &str) -> Option<Vec<u8>> {
        match crate::kid::Kid::parse(kid) {
            crate::kid::Kid::Pkcs11 { token, object, id }
                if token == self.config.token && object == self.config.key =>
            {
                Some(id)
            }
            _ => None,
        }
    }
}

/// The `backend` label of this backend's calls (`crate::observe`).
const BACKEND_LABEL: &str = "pkcs11";

#[async_trait]
impl KeyWrapper for Pkcs11Wrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.kid.clone())
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        key_call(BACKEND_LABEL, &self.key, KeyOp::Wrap, None, async {
            let current = self.current().await?;
            self.config.key_rules.check_rsa_size(current.bits)?;
            let wrapped = current
                .public
                .encrypt_oaep(self.wrap_algorithm, &context.wrap_input(data_key))
                .map_err(|_| Error::Backend {
                    backend: BACKEND,
                    message: format!("local RSA-OAEP wrap under {} failed", current.kid),
                })?;
            Ok(KeySlot::new(
                current.kid.clone(),
                self.wrap_algorithm,
                wrapped,
            )?)
        })
        .await
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        let Some(id) = self.names_this_key(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
        key_call(
            BACKEND_LABEL,
            &self.key,
            KeyOp::Unwrap,
            Some(slot.kid()),
            async {
                if !slot.algorithm().is_rsa() {
                    // A slot under one of our key versions that is not RSA was tampered with.
                    return Err(Error::DecryptionFailed);
                }
                if slot.algorithm() == WrapAlgorithm::RsaOaepSha256 && self.sha256_missing {
                    return Err(Error::Backend {
                        backend: BACKEND,
                        message: format!(
                            "{}: this slot is RSA-OAEP with SHA-256, which token {} does not take",
                            slot.kid(),
                            self.domain
                        ),
                    });
                }
                let handle = self.handle_of(&id, slot.kid()).await?;
                let recovered = match self
                    .decrypt(
                        handle,
                        slot.algorithm(),
                        slot.wrapped().to_vec(),
                        slot.kid().to_owned(),
                    )
                    .await
                {
                    Ok(recovered) => recovered,
                    Err(DecryptFailure::Unsupported(rv)) => {
                        return Err(Error::Backend {
                            backend: BACKEND,
                            message: format!(
                                "{}: token {} refused the OAEP parameters ({rv})",
                                slot.kid(),
                                self.domain
                            ),
                        })
                    }
                    Err(DecryptFailure::Other(e)) => return Err(e),
                };
                context
                    .unwrap_output(&recovered)
                    .map(Unwrapped::Key)
                    .ok_or(Error::DecryptionFailed)
            },
        )
        .await
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Hsm, &self.domain).key(&self.key)
    }
}
