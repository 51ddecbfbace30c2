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

#[cfg(test)]
mod interop_tests;
mod session_pool;
mod token;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cryptoki::object::ObjectHandle;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use self::session_pool::{run_blocking, SessionPool};
use self::token::{DecryptFailure, Token, VersionFacts};
use crate::crypto::{Provider, RsaPublic};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::kid::Kid;
pub use crate::wrap::pkcs11_uri::{Pkcs11Uri, PKCS11_SCHEME};
use crate::wrap::KeyRules;
use crate::wrap::{KeyWrapper, ProtectionLevel, Unwrapped};

const BACKEND: &str = "pkcs11";

/// Where the user PIN comes from. Never from a command-line argument (other users can read
/// those), and never logged: `Debug` shows the source, not the PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// An environment variable.
    Env(String),
    /// A file (its first line; mode 0600 recommended). Refused when it is writable by group
    /// or others or owned by another user (root excepted): see
    /// [`check_file_trust`](crate::check_file_trust).
    File(PathBuf),
}

impl PinSource {
    fn read(&self) -> Result<AuthPin> {
        let pin = match self {
            PinSource::Env(name) => Zeroizing::new(std::env::var(name).map_err(|_| {
                Error::InvalidArgument(format!(
                    "the PKCS#11 user PIN variable {name} is not set (or not UTF-8)"
                ))
            })?),
            PinSource::File(path) => {
                crate::check_file_trust(path, "PIN file")?;
                let text = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| Error::io_at(path, e))?,
                );
                Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
            }
        };
        Ok(AuthPin::from(pin.as_str()))
    }
}

/// Which OAEP hash new slots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OaepHash {
    /// SHA-256 if the token decrypts it (checked on connect with one trial unwrap), else
    /// SHA-1.
    #[default]
    Auto,
    /// SHA-256, or fail to connect when the token lacks it.
    Sha256,
    /// SHA-1 (Key Vault's `RSA-OAEP`): every PKCS#11 token has it, SoftHSM2 2.6 only it.
    Sha1,
}

/// How to reach one key in one token.
///
/// ```
/// use cmk_envelope::pkcs11::{PinSource, Pkcs11Config};
/// let config = Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so", "prod-hsm", "orders")
///     .pin(PinSource::Env("CMKE_PKCS11_PIN".into()))
///     .sessions(4);
/// ```
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    module: PathBuf,
    token: String,
    key: String,
    key_id: Option<Vec<u8>>,
    pin: PinSource,
    sessions: usize,
    oaep: OaepHash,
    key_rules: KeyRules,
    provider: Provider,
    refresh_interval: Duration,
    max_key_ops: Option<crate::wrap::KeyOpsLimit>,
}

impl Pkcs11Config {
    /// The key labelled `key` in the token labelled `token` of the PKCS#11 `module`; the
    /// PIN from `CMKE_PKCS11_PIN` unless [`Pkcs11Config::pin`] says otherwise.
    pub fn new(module: impl Into<PathBuf>, token: &str, key: &str) -> Self {
        Self {
            module: module.into(),
            token: token.to_owned(),
            key: key.to_owned(),
            key_id: None,
            pin: PinSource::Env("CMKE_PKCS11_PIN".to_owned()),
            sessions: 4,
            oaep: OaepHash::Auto,
            key_rules: KeyRules::default(),
            provider: Provider::default(),
            refresh_interval: Duration::from_secs(300),
            max_key_ops: None,
        }
    }

    /// Shares `limit` (operations per second) with every wrapper and task holding a clone
    /// of it: each private-key operation in the token (`C_Decrypt`) waits for its turn on
    /// its session's worker thread. For bulk jobs on an HSM that production also uses.
    #[must_use]
    pub fn max_key_ops(mut self, limit: crate::wrap::KeyOpsLimit) -> Self {
        self.max_key_ops = Some(limit);
        self
    }

    /// The key named by a `pkcs11:token=…;object=…[;id=…]` URI in `module`; an `id` pins
    /// that version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the URI is malformed or lacks `token` or `object`.
    pub fn from_uri(module: impl Into<PathBuf>, uri: &str) -> Result<Self> {
        let parsed = Pkcs11Uri::parse(uri)?;
        let (Some(token), Some(object)) = (&parsed.token, &parsed.object) else {
            return Err(Error::InvalidArgument(format!(
                "{} names no key: it needs token= and object=",
                parsed
            )));
        };
        let mut config = Self::new(module, token, object);
        config.key_id = parsed.id;
        Ok(config)
    }

    /// Pins one version by its `CKA_ID` instead of following the newest.
    #[must_use]
    pub fn key_id(mut self, id: Vec<u8>) -> Self {
        self.key_id = Some(id);
        self
    }

    /// Where the user PIN comes from.
    #[must_use]
    pub fn pin(mut self, source: PinSource) -> Self {
        self.pin = source;
        self
    }

    /// Sessions (worker threads), and so unwraps in the token at once; default 4, at least 1.
    #[must_use]
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// The OAEP hash of new slots (default [`OaepHash::Auto`]).
    #[must_use]
    pub fn oaep_hash(mut self, hash: OaepHash) -> Self {
        self.oaep = hash;
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

    /// How long the current version stands before the token is asked again (default five
    /// minutes): how soon a rotation by another process is followed.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    fn token_uri(&self) -> String {
        Pkcs11Uri {
            token: Some(self.token.clone()),
            ..Pkcs11Uri::default()
        }
        .to_uri()
    }

    fn key_uri(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            token: Some(self.token.clone()),
            object: Some(self.key.clone()),
            id: None,
        }
    }

    fn kid(&self, id: &[u8]) -> String {
        Pkcs11Uri {
            id: Some(id.to_vec()),
            ..self.key_uri()
        }
        .to_uri()
    }
}

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

    /// Creates the key: its first version (id `00000001`), RSA of `bits` bits, in the token.
    /// Returns the new kid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the key already has versions; [`Error::PolicyRefused`]
    /// for a size the key rules refuse; otherwise as [`Pkcs11Wrapper::connect`].
    pub async fn create_key(config: &Pkcs11Config, bits: usize) -> Result<Kid> {
        config.key_rules.check_rsa_size(bits)?;
        let kid = Self::add_version(config, bits, true).await?;
        Ok(Kid::parse(&kid))
    }

    /// Adds the next version (the greatest id + 1) of an existing key, RSA-2048, which then
    /// becomes current. Old versions stay in the token. Returns the new kid.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the key has no versions yet; [`Error::InvalidArgument`]
    /// when its newest id is not a four-byte version number; otherwise as
    /// [`Pkcs11Wrapper::connect`].
    pub async fn rotate_key(config: &Pkcs11Config) -> Result<Kid> {
        let kid = Self::add_version(config, 2048, false).await?;
        Ok(Kid::parse(&kid))
    }

    async fn add_version(config: &Pkcs11Config, bits: usize, first: bool) -> Result<String> {
        let pin = config.pin.read()?;
        let config = config.clone();
        run_blocking(move || {
            let token_uri = config.token_uri();
            let key_uri = config.key_uri().to_uri();
            let token = Token::open(&config.module, &config.token, &token_uri)?;
            let sessions = token.sessions(1, true, &pin, &token_uri)?;
            let session = sessions.first().ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: "no session".to_owned(),
            })?;
            let versions = token::list_versions(session, &config.key, &key_uri)?;
            let next: u32 = match (versions.last(), first) {
                (None, true) => 1,
                (Some(_), true) => {
                    return Err(Error::InvalidArgument(format!(
                        "{key_uri} already exists; rotate it instead"
                    )))
                }
                (None, false) => {
                    return Err(Error::KeyNotFound {
                        kid: key_uri,
                        detail: String::new(),
                    })
                }
                (Some((newest, _)), false) => <[u8; 4]>::try_from(newest.as_slice())
                    .ok()
                    .and_then(|n| u32::from_be_bytes(n).checked_add(1))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{}: the newest id is not a four-byte version number, so the next \
                             one is not obvious; generate it with your HSM's tools",
                            config.kid(newest)
                        ))
                    })?,
            };
            let id = next.to_be_bytes();
            let kid = config.kid(&id);
            token::generate_version(session, &config.key, &id, bits, &kid)?;
            Ok(kid)
        })
        .await?
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
        crate::wrap::key_rules::check_rsa_exponent(&facts.exponent, &kid)?;
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
        match crate::Kid::parse(kid) {
            crate::Kid::Pkcs11 { token, object, id }
                if token == self.config.token && object == self.config.key =>
            {
                Some(id)
            }
            _ => None,
        }
    }
}

#[async_trait]
impl KeyWrapper for Pkcs11Wrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.kid.clone())
    }

    async fn wrap_key(&self, data_key: &DataKey) -> Result<KeySlot> {
        let current = self.current().await?;
        self.config.key_rules.check_rsa_size(current.bits)?;
        let wrapped = current
            .public
            .encrypt_oaep(self.wrap_algorithm, data_key.expose_secret())
            .map_err(|_| Error::Backend {
                backend: BACKEND,
                message: format!("local RSA-OAEP wrap under {} failed", current.kid),
            })?;
        Ok(KeySlot::new(
            current.kid.clone(),
            self.wrap_algorithm,
            wrapped,
        )?)
    }

    fn recognizes(&self, kid: &str) -> Option<bool> {
        Some(self.names_this_key(kid).is_some())
    }

    async fn unwrap_key(&self, slot: &KeySlot) -> Result<Unwrapped> {
        let Some(id) = self.names_this_key(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
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
        DataKey::from_slice(&recovered)
            .map(Unwrapped::Key)
            .ok_or(Error::DecryptionFailed)
    }

    fn protection(&self) -> ProtectionLevel {
        ProtectionLevel::Hsm
    }

    fn domain(&self) -> &str {
        &self.domain
    }
}
