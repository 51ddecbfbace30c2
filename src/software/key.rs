//! One key of the software keyring, as a [`KeyWrapper`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use async_trait::async_trait;

use super::keyring::Keyring;
use crate::crypto::{RsaPrivate, RsaPublic};
use crate::data_key::DataKey;
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::kid::{KeyName, KeyVersion, LocalKid, LOCAL_KID_PREFIX};
use crate::observe::{key_call, KeyOp};
use crate::policy::ProtectionLevel;
use crate::wrap::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// A software keyring key: wraps under its current version, unwraps any of its versions.
///
/// The current version is read when the key is loaded. A rotation in this process (through
/// any [`Keyring`] handle on the same directory) is followed at once: the next wrap uses the
/// new version. A rotation by another process is picked up by [`SoftwareWrapper::refresh`].
/// Private keys are loaded on first use and kept in memory.
pub struct SoftwareWrapper {
    keyring: Keyring,
    name: KeyName,
    /// `local:{name}`: what every version's kid starts with.
    key: String,
    current: RwLock<Current>,
    /// The keyring's rotation count when `current` was read.
    current_as_of: std::sync::atomic::AtomicU64,
    private_keys: Mutex<HashMap<KeyVersion, Arc<dyn RsaPrivate>>>,
}

struct Current {
    kid: String,
    public: Arc<dyn RsaPublic>,
    bits: usize,
}

impl std::fmt::Debug for SoftwareWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareWrapper")
            .field("name", &self.name.as_str())
            .field("current_kid", &self.read_current().kid)
            .finish_non_exhaustive()
    }
}

impl SoftwareWrapper {
    pub(super) fn load(keyring: Keyring, name: KeyName) -> Result<Self> {
        let as_of = keyring.rotations().now();
        let current = Self::load_current(&keyring, &name)?;
        Ok(Self {
            key: format!("{LOCAL_KID_PREFIX}{}", name.as_str()),
            keyring,
            name,
            current: RwLock::new(current),
            current_as_of: std::sync::atomic::AtomicU64::new(as_of),
            private_keys: Mutex::new(HashMap::new()),
        })
    }

    fn load_current(keyring: &Keyring, name: &KeyName) -> Result<Current> {
        let version = keyring.current_version(name)?;
        let material = keyring.read_version(name, &version)?;
        let provider = keyring.crypto_provider();
        let private = provider
            .ops()
            .rsa_private_from_pkcs8(material.der())
            .map_err(|_| Error::InvalidKey(format!("{} rejected key {name}", provider.name())))?;
        let public = private.public_key().map_err(|_| Error::Backend {
            backend: provider.name(),
            message: "cannot derive the public key".to_owned(),
        })?;
        Ok(Current {
            kid: LocalKid {
                name: name.clone(),
                version,
            }
            .to_string(),
            public: Arc::from(public),
            bits: material.bits(),
        })
    }

    /// Re-reads the current version from disk, for a rotation by another process (one in
    /// this process is followed without it).
    ///
    /// # Errors
    /// As [`Keyring::key`].
    pub async fn refresh(&self) -> Result<()> {
        self.reload()
    }

    fn reload(&self) -> Result<()> {
        let as_of = self.keyring.rotations().now();
        let current = Self::load_current(&self.keyring, &self.name)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = current;
        self.current_as_of
            .store(as_of, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Re-reads the current version when this process has rotated a key of the keyring
    /// since it was read.
    fn follow_rotations(&self) -> Result<()> {
        let seen = self
            .current_as_of
            .load(std::sync::atomic::Ordering::Acquire);
        if seen == self.keyring.rotations().now() {
            return Ok(());
        }
        self.reload()
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    fn read_current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn private_key(&self, version: &KeyVersion) -> Result<Arc<dyn RsaPrivate>> {
        let mut cache = self
            .private_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = cache.get(version) {
            return Ok(Arc::clone(key));
        }
        let material = self.keyring.read_version(&self.name, version)?;
        let provider = self.keyring.crypto_provider();
        let key: Arc<dyn RsaPrivate> = Arc::from(
            provider
                .ops()
                .rsa_private_from_pkcs8(material.der())
                .map_err(|_| Error::InvalidKey(format!("{} rejected the key", provider.name())))?,
        );
        cache.insert(version.clone(), Arc::clone(&key));
        Ok(key)
    }

    /// Which version of this key a kid names, or `None` when the kid is not this key's.
    fn version_of(&self, kid: &str) -> Option<Result<KeyVersion>> {
        let rest = kid.strip_prefix(LOCAL_KID_PREFIX)?;
        let (name, _) = rest.split_once('/')?;
        if name != self.name.as_str() {
            return None;
        }
        Some(
            LocalKid::parse(kid)
                .map(|k| k.version)
                .map_err(|_| Error::KeyNotFound {
                    kid: kid.to_owned(),
                    detail: String::new(),
                }),
        )
    }
}

/// The keyring's wrappers (the keyring itself only stores keys).
impl Keyring {
    /// A key wrapper for key `name`, wrapping under its current version.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the key or its current version is missing;
    /// [`Error::InvalidKey`] / [`Error::PolicyRefused`] when the current version's file is
    /// unusable or breaks the key rules.
    pub fn key(&self, name: &str) -> Result<SoftwareWrapper> {
        let name = KeyName::new(name)?;
        SoftwareWrapper::load(self.clone(), name)
    }

    /// Wrappers for every key in the keyring: what a reader needs to open anything written
    /// under any of them.
    ///
    /// # Errors
    /// As [`Keyring::key`], for the first key that cannot be loaded. To open with a keyring
    /// in which some keys may be broken, use [`Keyring::openers`], which loads each key only
    /// when a slot names it.
    pub fn keys(&self) -> Result<Vec<SoftwareWrapper>> {
        self.key_names()?
            .into_iter()
            .map(|name| SoftwareWrapper::load(self.clone(), name))
            .collect()
    }

    /// Wrappers that open anything written under any key and version of this keyring: one
    /// per key directory, each loading its key only when a slot first names it, so a broken
    /// or half-created key fails only the objects under it. Give them to
    /// [`EnvelopeBuilder::open_with_all`](crate::EnvelopeBuilder::open_with_all).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cmk_envelope::Error> {
    /// use std::sync::Arc;
    /// use cmk_envelope::{software::Keyring, Envelope};
    /// # let dir = tempfile::tempdir()?;
    /// let keyring = Keyring::create(dir.path())?;
    /// keyring.create_key("orders")?;
    /// keyring.create_key("invoices")?;
    /// let writer = Envelope::builder().seal_with(Arc::new(keyring.key("invoices")?)).build()?;
    /// let sealed = writer.seal(b"invoice", b"").await?;
    ///
    /// let reader = Envelope::builder().open_with_all(keyring.openers()?).build()?;
    /// assert_eq!(reader.open(&sealed, b"").await?.plaintext(), b"invoice");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when the keyring directory cannot be listed.
    pub fn openers(&self) -> Result<Vec<Arc<dyn KeyWrapper>>> {
        Ok(self
            .key_names()?
            .into_iter()
            .map(|name| Arc::new(LazyKey::new(self.clone(), name)) as Arc<dyn KeyWrapper>)
            .collect())
    }
}

/// The `backend` label of this backend's calls (`crate::observe`).
const BACKEND_LABEL: &str = "software";

#[async_trait]
impl KeyWrapper for SoftwareWrapper {
    async fn current_kid(&self) -> Result<String> {
        self.follow_rotations()?;
        Ok(self.read_current().kid.clone())
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        key_call(BACKEND_LABEL, &self.key, KeyOp::Wrap, None, async {
            self.follow_rotations()?;
            let (kid, public, bits) = {
                let current = self.read_current();
                (
                    current.kid.clone(),
                    Arc::clone(&current.public),
                    current.bits,
                )
            };
            self.keyring.rules().check_rsa_size(bits)?;
            let algorithm = WrapAlgorithm::RsaOaepSha256;
            let wrapped = public
                .encrypt_oaep(algorithm, &context.wrap_input(data_key))
                .map_err(|_| Error::Backend {
                    backend: self.keyring.crypto_provider().name(),
                    message: format!("RSA-OAEP wrap under {kid} failed"),
                })?;
            Ok(KeySlot::new(kid, algorithm, wrapped)?)
        })
        .await
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        let Some(version) = self.version_of(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
        key_call(
            BACKEND_LABEL,
            &self.key,
            KeyOp::Unwrap,
            Some(slot.kid()),
            async {
                let private = self.private_key(&version?)?;
                let recovered = private
                    .decrypt_oaep(slot.algorithm(), slot.wrapped())
                    .map_err(|_| Error::DecryptionFailed)?;
                let data_key = context
                    .unwrap_output(&recovered)
                    .ok_or(Error::DecryptionFailed)?;
                Ok(Unwrapped::Key(data_key))
            },
        )
        .await
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Software, self.keyring.domain()).key(&self.key)
    }
}

/// A keyring key loaded on first use: [`Keyring::openers`] gives one per key directory, so a
/// broken key fails only the slots that name it.
pub(crate) struct LazyKey {
    keyring: Keyring,
    name: KeyName,
    /// `local:{name}`.
    key: String,
    loaded: Mutex<Option<Arc<SoftwareWrapper>>>,
}

impl LazyKey {
    pub(super) fn new(keyring: Keyring, name: KeyName) -> Self {
        Self {
            key: format!("{LOCAL_KID_PREFIX}{}", name.as_str()),
            keyring,
            name,
            loaded: Mutex::new(None),
        }
    }

    /// The key, loaded now if this is its first use (a failure is not kept: the next use
    /// tries again, after an operator's fix).
    fn key(&self) -> Result<Arc<SoftwareWrapper>> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = loaded.as_ref() {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(SoftwareWrapper::load(
            self.keyring.clone(),
            self.name.clone(),
        )?);
        *loaded = Some(Arc::clone(&key));
        Ok(key)
    }

    fn names_this_key(&self, kid: &str) -> bool {
        kid.strip_prefix(LOCAL_KID_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(name, _)| name == self.name.as_str())
    }
}

#[async_trait]
impl KeyWrapper for LazyKey {
    async fn current_kid(&self) -> Result<String> {
        self.key()?.current_kid().await
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        self.key()?.wrap_key(data_key, context).await
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        if !self.names_this_key(slot.kid()) {
            return Ok(Unwrapped::NotMine);
        }
        self.key()?.unwrap_key(slot, context).await
    }

    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Software, self.keyring.domain()).key(&self.key)
    }
}
