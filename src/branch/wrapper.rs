//! The branch-key wrapper: data keys wrapped locally under a branch key whose record a CMK
//! wraps.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use super::key_cache::{BranchKeyCache, BranchKeyCacheConfig};
use super::nonce_pool::NoncePool;
use super::record::{check_record_slots, open_record, seal_record};
use super::slot::{unwrap_data_key, wrap_data_key};
use super::store::{BranchStore, StoredCurrent};
use super::{BranchKey, BRANCH_KEY_LEN};
use crate::crypto::Provider;
use crate::data_key::DataKey;
use crate::envelope::{Envelope, RewrapTarget};
use crate::error::{Error, Result};
use crate::format::{Header, KeySlot, WrapAlgorithm};
use crate::kid::{BranchKid, KeyName, KeyVersion, BRANCH_KID_PREFIX};
use crate::wrap::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};

/// A branch key (all its versions) as a [`KeyWrapper`]: new data keys are wrapped locally
/// under the current version; slots of any version whose record the store holds are
/// unwrapped locally, after one CMK unwrap of that version's record per time to live
/// ([`BranchKeyCacheConfig`]).
///
/// The CMK is any [`KeyWrapper`]: a software keyring key, a Key Vault key, a PKCS#11 key.
/// For the re-wrap policy a branch key counts as its CMK: same protection level, same
/// vault or keyring.
///
/// Revocation: disabling or deleting the CMK stops opens and seals once the cached branch
/// keys expire, that is after at most the time to live (5 minutes by default).
///
/// # Errors
/// The [`KeyWrapper`] methods report the store's errors (a missing record is
/// [`Error::KeyNotFound`]) and the CMK's (revocation is [`Error::KeyDisabled`],
/// [`Error::AccessDenied`], [`Error::KeyNotFound`]). A record wrapped by a branch key is
/// [`Error::PolicyRefused`]; a record of another version or name is
/// [`Error::DecryptionFailed`]. A branch slot is bound to its object: its wrapping key is
/// derived from the [`SlotContext`]'s message id, which every call carries.
pub struct BranchWrapper {
    name: KeyName,
    /// `branch:{name}`: every version's kid starts with it.
    key: String,
    store: Arc<dyn BranchStore>,
    cmk: Arc<dyn KeyWrapper>,
    /// More CMKs every new record is also sealed under (vaults of other regions), and
    /// that open records when `cmk`'s service fails transiently.
    extra_cmks: Vec<Arc<dyn KeyWrapper>>,
    /// Which CMK services failed transiently, for the records' failover.
    records_failover: crate::wrap::FailoverState,
    /// Opens records under other CMKs than `cmk` (older versions after a rotation to
    /// another CMK); `None`: every record opens with `cmk`.
    record_keys: Option<Arc<dyn RecordKeys>>,
    cache: BranchKeyCache,
    provider: Provider,
    /// The current version as last read, and when: read again after the time to live, so
    /// that another machine's rotation is followed within that time.
    current: Mutex<Option<(KeyVersion, Instant)>>,
    /// The current version's kid and key until the earlier of their times to live end:
    /// sealing many objects then costs no kid formatting and no cache look-up each.
    sealing: Mutex<Option<Sealing>>,
    nonces: NoncePool,
}

/// What sealing needs, kept while it is fresh.
struct Sealing {
    kid: String,
    key: Arc<BranchKey>,
    until: Instant,
}

impl std::fmt::Debug for BranchWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BranchWrapper")
            .field("name", &self.name.as_str())
            .field("store", &self.store.location())
            .field("cmk", &self.cmk.key_facts().domain)
            .finish_non_exhaustive()
    }
}

/// The keys that open branch key records whose CMK is not the wrapper's own: after
/// `rotate` under another CMK, objects under the older versions still open, each record
/// with the CMK its own slots name. The implementation decides which CMKs it will use (an
/// allowlist of vaults, tokens and keyrings): a record names its CMK, and nothing read
/// from a store should choose where the caller's credentials go.
#[async_trait]
pub trait RecordKeys: Send + Sync {
    /// An envelope that opens the record whose header is `record` (its slots name the
    /// CMK), or an error saying why none may. Lazy re-wrap should be off: a record is
    /// re-wrapped by [`BranchWrapper::rewrap_records`], not on open.
    ///
    /// # Errors
    /// [`Error::NoKeyForKid`] for a record under a CMK the caller does not allow; the
    /// CMK's errors.
    async fn envelope_for(&self, record: &Header) -> Result<Arc<Envelope>>;
}

/// One branch key in a store, for listings and inventories.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchListing {
    /// The branch key's name.
    pub name: KeyName,
    /// The current version, if `current` exists and is readable.
    pub current: Option<KeyVersion>,
    /// Every version with a record, and the kids of the CMK slots of its record (empty
    /// when the record does not parse).
    pub versions: Vec<(KeyVersion, Vec<String>)>,
    /// What is wrong with this branch key's entries (an unreadable `current`, a record
    /// that is refused or does not parse), one line each; the rest is still listed.
    pub problems: Vec<String>,
}

impl BranchWrapper {
    /// The branch key `name` in `store`, whose records `cmk` wraps and unwraps. Nothing is
    /// read until the first use.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a name that is not 1 to 127 of `[A-Za-z0-9-]`.
    pub fn new(store: Arc<dyn BranchStore>, name: &str, cmk: Arc<dyn KeyWrapper>) -> Result<Self> {
        let name = KeyName::new(name)?;
        Ok(Self {
            key: format!("{BRANCH_KID_PREFIX}{}", name.as_str()),
            name,
            store,
            cmk,
            extra_cmks: Vec::new(),
            records_failover: crate::wrap::FailoverState::new(),
            record_keys: None,
            cache: BranchKeyCache::new(BranchKeyCacheConfig::default()),
            provider: Provider::default(),
            current: Mutex::new(None),
            sealing: Mutex::new(None),
            nonces: NoncePool::new(),
        })
    }

    /// Creates the branch key `name` in `store` (its first version, under `cmk`'s current
    /// version) and returns its wrapper.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the branch key exists; the CMK's and the store's errors.
    pub async fn create(
        store: Arc<dyn BranchStore>,
        name: &str,
        cmk: Arc<dyn KeyWrapper>,
    ) -> Result<Self> {
        Self::new(store, name, cmk)?.create_first_version().await
    }

    /// Creates the branch key in its store (its first version) with this wrapper's
    /// settings, for example with records under two CMKs:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cmk_envelope::Error> {
    /// # use std::sync::Arc;
    /// # use cmk_envelope::{branch::{BranchWrapper, DirectoryStore}, software::Keyring};
    /// # let dir = tempfile::tempdir()?;
    /// # let east = Keyring::create(dir.path().join("east"))?;
    /// # east.create_key("east-cmk")?;
    /// # let west = Keyring::create(dir.path().join("west"))?;
    /// # west.create_key("west-cmk")?;
    /// # let store = Arc::new(DirectoryStore::create(dir.path().join("branches"))?);
    /// let branch = BranchWrapper::new(store, "orders", Arc::new(east.key("east-cmk")?))?
    ///     .also_seal_records_with(Arc::new(west.key("west-cmk")?))
    ///     .create_first_version()
    ///     .await?;
    /// # let _ = branch; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Conflict`] when the branch key exists; the CMKs' and the store's errors.
    pub async fn create_first_version(self) -> Result<Self> {
        self.add_version(None).await?;
        Ok(self)
    }

    /// Seals every new record (each new version of the branch key) under `cmk` too, for
    /// example a CMK in a vault of another region; records that have its slot open with it
    /// when the first CMK's service fails transiently (the failover of
    /// [`EnvelopeBuilder::also_seal_with`](crate::EnvelopeBuilder::also_seal_with), with
    /// its default cool-down). At most 7.
    #[must_use]
    pub fn also_seal_records_with(mut self, cmk: Arc<dyn KeyWrapper>) -> Self {
        self.extra_cmks.push(cmk);
        self
    }

    /// Keeps unwrapped branch keys as `config` says (default: 5 minutes, 1,000 versions).
    /// The time to live is also how long a CMK revocation takes to stop this wrapper.
    #[must_use]
    pub fn cache(mut self, config: BranchKeyCacheConfig) -> Self {
        self.cache = BranchKeyCache::new(config);
        self
    }

    /// Opens records whose slots do not name `cmk` with `keys` (see [`RecordKeys`]), so
    /// that objects under versions wrapped by an earlier CMK keep opening. Records under
    /// `cmk` still open with it.
    #[must_use]
    pub fn record_keys(mut self, keys: Arc<dyn RecordKeys>) -> Self {
        self.record_keys = Some(keys);
        self
    }

    /// Uses this crypto provider for branch slots and records (default: aws-lc when
    /// compiled in).
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// The envelope that seals and opens records: under the CMK (and the extra ones), never
    /// re-wrapped on open.
    fn records(&self) -> Result<Envelope> {
        let mut builder = Envelope::builder().seal_with(Arc::clone(&self.cmk));
        for extra in &self.extra_cmks {
            builder = builder.also_seal_with(Arc::clone(extra));
        }
        builder
            .failover_state(self.records_failover.clone())
            .provider(self.provider)
            .lazy_rewrap(false)
            .build()
    }

    /// The envelope that opens `record`: the CMK's own when one of its slots is the
    /// CMK's, else what the [`RecordKeys`] give for it.
    async fn records_for(&self, kid: &BranchKid, record: &[u8]) -> Result<Arc<Envelope>> {
        let Some(keys) = &self.record_keys else {
            return Ok(Arc::new(self.records()?));
        };
        check_record_slots(kid, record)?;
        let (header, _) = Header::parse_prefix(record)?;
        let ours = header.slots().iter().any(|slot| {
            std::iter::once(&self.cmk)
                .chain(&self.extra_cmks)
                .any(|cmk| cmk.key_facts().recognizes(slot.kid()) == Some(true))
        });
        if ours {
            return Ok(Arc::new(self.records()?));
        }
        keys.envelope_for(&header).await
    }

    /// The branch key's name.
    #[must_use]
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// Adds a version and makes it current: a new random key, its record under the CMK's
    /// current version, then `current` moves, only if nobody else moved it since it was
    /// read. Old versions are never deleted, so objects under them still open.
    ///
    /// # Errors
    /// [`Error::Conflict`] when another rotation moved `current` first (its record is kept
    /// and still opens; nothing is lost); the CMK's and the store's errors.
    pub async fn rotate(&self) -> Result<BranchKid> {
        let expected = self.store.read_current(&self.name).await?;
        self.add_version(Some(expected)).await
    }

    async fn add_version(&self, expected: Option<StoredCurrent>) -> Result<BranchKid> {
        let mut random = [0u8; 16];
        let mut secret = zeroize::Zeroizing::new([0u8; BRANCH_KEY_LEN]);
        let ops = self.provider.ops();
        let failed = |_| Error::Backend {
            backend: self.provider.name(),
            message: "random generator failed".to_owned(),
        };
        ops.fill_random(&mut random).map_err(failed)?;
        ops.fill_random(secret.as_mut_slice()).map_err(failed)?;
        let kid = BranchKid {
            name: self.name.clone(),
            version: KeyVersion::from_random(random),
        };
        let key = BranchKey::from_slice(secret.as_slice())
            .ok_or_else(|| failed(crate::crypto::CryptoFailure))?;
        let records = self.records()?;
        let record = seal_record(&records, &kid, &key).await?;
        // Proves the record opens before anything points at it.
        let back = open_record(&records, &kid, &record).await?;
        if back.expose_secret() != key.expose_secret() {
            return Err(Error::Backend {
                backend: "branch",
                message: format!("the new record of {kid} does not open to its key"),
            });
        }
        self.store
            .create_record(&self.name, &kid.version, &record)
            .await?;
        self.store
            .set_current(&self.name, &kid.version, expected.as_ref())
            .await?;
        // This process seals under the new version at once.
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((kid.version.clone(), Instant::now()));
        *self.sealing.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(kid)
    }

    /// The current version's kid, read from the store at most once per time to live, and
    /// when that time ends.
    async fn current_until(&self) -> Result<(BranchKid, Instant)> {
        let ttl = self.cache_ttl();
        let cached = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(_, since)| since.elapsed() < ttl)
            .map(|(version, since)| (version.clone(), *since));
        let (version, since) = match cached {
            Some(cached) => cached,
            None => {
                let version = self.store.read_current(&self.name).await?.version;
                let since = Instant::now();
                *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((version.clone(), since));
                (version, since)
            }
        };
        let kid = BranchKid {
            name: self.name.clone(),
            version,
        };
        Ok((kid, since + ttl))
    }

    async fn current(&self) -> Result<BranchKid> {
        Ok(self.current_until().await?.0)
    }

    fn cache_ttl(&self) -> std::time::Duration {
        self.cache.config().ttl()
    }

    /// The branch key of `kid`: from memory, or its record opened through the CMK; with
    /// the moment it must be forgotten.
    async fn branch_key(&self, kid: &BranchKid) -> Result<(Arc<BranchKey>, Instant)> {
        self.cache
            .get_or_load(&kid.to_string(), || async {
                let record = self.store.read_record(&kid.name, &kid.version).await?;
                open_record(
                    &*self.records_for(kid, &record.bytes).await?,
                    kid,
                    &record.bytes,
                )
                .await
            })
            .await
    }

    /// Forgets every unwrapped branch key and the current version (they are read again on
    /// next use). Use it after revoking the CMK to stop this process at once instead of
    /// after the time to live.
    pub fn forget_keys(&self) {
        self.cache.clear();
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        *self.sealing.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// The kid and key to seal under now.
    async fn sealing_key(&self) -> Result<(String, Arc<BranchKey>)> {
        let now = Instant::now();
        if let Some(fresh) = self
            .sealing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|s| now < s.until)
        {
            return Ok((fresh.kid.clone(), Arc::clone(&fresh.key)));
        }
        let (kid, current_until) = self.current_until().await?;
        let (key, key_until) = self.branch_key(&kid).await?;
        let kid = kid.to_string();
        *self.sealing.lock().unwrap_or_else(PoisonError::into_inner) = Some(Sealing {
            kid: kid.clone(),
            key: Arc::clone(&key),
            until: current_until.min(key_until),
        });
        Ok((kid, key))
    }

    /// This wrapper's kid in `kid`, if it names one of its versions.
    fn mine(&self, kid: &str) -> Option<BranchKid> {
        BranchKid::parse(kid).ok().filter(|k| k.name == self.name)
    }

    /// Every branch key in `store`: its current version and its versions' records' CMK
    /// kids.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn list(store: &dyn BranchStore) -> Result<Vec<BranchListing>> {
        let mut listings = Vec::new();
        for name in store.names().await? {
            let mut problems = Vec::new();
            let current = match store.read_current(&name).await {
                Ok(current) => Some(current.version),
                Err(e) => {
                    problems.push(format!("current: {e}"));
                    None
                }
            };
            let mut versions = Vec::new();
            let found = match store.versions(&name).await {
                Ok(found) => found,
                Err(e) => {
                    problems.push(format!("versions: {e}"));
                    Vec::new()
                }
            };
            for version in found {
                let kids = match store.read_record(&name, &version).await {
                    Ok(record) => match Header::parse_prefix(&record.bytes) {
                        Ok((header, _)) => {
                            header.slots().iter().map(|s| s.kid().to_owned()).collect()
                        }
                        Err(e) => {
                            problems.push(format!("record {version}: {e}"));
                            Vec::new()
                        }
                    },
                    Err(e) => {
                        problems.push(format!("record {version}: {e}"));
                        Vec::new()
                    }
                };
                versions.push((version, kids));
            }
            listings.push(BranchListing {
                name,
                current,
                versions,
                problems,
            });
        }
        Ok(listings)
    }

    /// After a CMK rotation: re-wraps every record in `store` whose CMK slot is not under the
    /// current version of its key, with `records` (an envelope that opens with the CMKs and
    /// seals with none needed: [`RewrapTarget::CurrentVersion`]). Only the records change;
    /// the objects under the branch keys are never touched. Returns the kids of the
    /// records re-wrapped, with the CMK kid they moved to.
    ///
    /// # Errors
    /// The first failure, after which the remaining records are left as they were; each
    /// replaced record was confirmed to open first and was replaced only if unchanged
    /// since it was read ([`Error::Conflict`] otherwise).
    pub async fn rewrap_records(
        store: &dyn BranchStore,
        records: &Envelope,
    ) -> Result<Vec<(BranchKid, String)>> {
        let mut moved = Vec::new();
        for name in store.names().await? {
            for version in store.versions(&name).await? {
                if let Some(moved_to) = Self::rewrap_record(store, &name, &version, records).await?
                {
                    moved.push((
                        BranchKid {
                            name: name.clone(),
                            version,
                        },
                        moved_to,
                    ));
                }
            }
        }
        Ok(moved)
    }

    /// Re-wraps the record of one version, as [`BranchWrapper::rewrap_records`] does for
    /// every record; `Ok(None)` when it is already under its CMK's current version, else the
    /// CMK kid it moved to.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when there is no such record; [`Error::PolicyRefused`] for a
    /// record that is not one (a branch-wrapped slot); [`Error::Conflict`] when it changed
    /// since it was read; the CMK's errors.
    pub async fn rewrap_record(
        store: &dyn BranchStore,
        name: &KeyName,
        version: &KeyVersion,
        records: &Envelope,
    ) -> Result<Option<String>> {
        let kid = BranchKid {
            name: name.clone(),
            version: version.clone(),
        };
        let record = store.read_record(name, version).await?;
        check_record_slots(&kid, &record.bytes)?;
        let Some(rewrapped) = records
            .rewrap(&record.bytes, RewrapTarget::CurrentVersion)
            .await?
        else {
            return Ok(None);
        };
        let new_record = rewrapped.apply_to(&record.bytes)?;
        store
            .replace_record(name, version, &new_record, &record.tag)
            .await?;
        Ok(Some(rewrapped.to_kid().to_owned()))
    }
}

#[async_trait]
impl KeyWrapper for BranchWrapper {
    async fn current_kid(&self) -> Result<String> {
        Ok(self.current().await?.to_string())
    }

    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
        let (kid, key) = self.sealing_key().await?;
        let nonce = self
            .nonces
            .take(self.provider)
            .map_err(|_| Error::Backend {
                backend: self.provider.name(),
                message: "random number generator failed".to_owned(),
            })?;
        let wrapped = wrap_data_key(
            self.provider,
            &key,
            &kid,
            context.message_id(),
            &nonce,
            data_key,
        )?;
        Ok(KeySlot::new(kid, WrapAlgorithm::BranchAes256Gcm, wrapped)?)
    }

    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
        let Some(kid) = self.mine(slot.kid()) else {
            return Ok(Unwrapped::NotMine);
        };
        if slot.algorithm() != WrapAlgorithm::BranchAes256Gcm {
            // A slot under one of our versions that is not a branch slot was tampered with.
            return Err(Error::DecryptionFailed);
        }
        let (key, _) = self.branch_key(&kid).await?;
        unwrap_data_key(
            self.provider,
            &key,
            slot.kid(),
            context.message_id(),
            slot.wrapped(),
        )
        .map(Unwrapped::Key)
    }

    /// The CMK's protection and vault or keyring: a branch key is as well protected as the
    /// key that wraps its records, and counts as it for the same-vault rule.
    fn key_facts(&self) -> KeyFacts<'_> {
        let cmk = self.cmk.key_facts();
        KeyFacts::new(cmk.protection, cmk.domain).key(&self.key)
    }
}
