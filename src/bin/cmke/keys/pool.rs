//! The keys of one run: each key connected once, whichever file needs it first, and one
//! envelope per set of keys.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use cmk_envelope::branch::{BranchWrapper, RecordKeys};
use cmk_envelope::format::Header;
use cmk_envelope::kid::{KeyName, Kid};
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, Error, KeyWrapper, Result};
use tokio::sync::{OnceCell, Semaphore};

use crate::branch::command::branch_name_in;
use crate::keys::sources::{remote_keys_in, same_error, KeySources};
use crate::keys::{hsm, vault};

/// Remote keys connected (and checked) at once in one run.
const CONCURRENT_CONNECTS: usize = 8;

impl KeySources {
    /// What one run uses to open many files. Its envelopes do not look for stale objects
    /// (no lazy re-wrap): `verify`, `rewrap` and `inventory` have no use for a re-wrapped
    /// header, and a Key Vault key would be asked for its current version.
    pub fn pool(&self) -> Arc<KeyPool> {
        self.pool_with(false)
    }

    /// As [`KeySources::pool`], for `decrypt`: opening also says when the object is under an
    /// old version of its key (one look at the key's current version per run).
    pub fn pool_noting_stale(&self) -> Arc<KeyPool> {
        self.pool_with(true)
    }

    fn pool_with(&self, lazy_rewrap: bool) -> Arc<KeyPool> {
        Arc::new(KeyPool {
            lazy_rewrap,
            sources: self.clone(),
            keyring: Arc::new(OnceCell::new()),
            remote: Arc::new(Mutex::new(HashMap::new())),
            envelopes: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            connects: Arc::new(Semaphore::new(CONCURRENT_CONNECTS)),
            failover: cmk_envelope::wrap::FailoverState::new(),
        })
    }
}

type Shared<T> = std::result::Result<T, Arc<Error>>;

/// A remote key, connected once by whichever file needs it first.
type RemoteCell = Arc<OnceCell<Shared<Arc<dyn KeyWrapper>>>>;

/// A branch key, opened once by whichever file needs it first.
type BranchCell = Arc<OnceCell<Shared<Arc<BranchWrapper>>>>;

/// Opens branch key records with the CMKs their own slots name, as any other envelope of
/// the run: only keys of the operator's keyring and of the services the operator allows.
struct PoolRecordKeys(Arc<KeyPool>);

#[cmk_envelope::async_trait]
impl RecordKeys for PoolRecordKeys {
    async fn envelope_for(&self, record: &Header) -> Result<Arc<Envelope>> {
        self.0.envelope_for(record).await
    }
}

/// Which keys an envelope opens with: the keyring or not, and the remote and branch keys.
type KeySet = (bool, Vec<String>);

/// The keys of one run, resolved per file and connected once each: a key that cannot be
/// reached fails only the files under it, and many files under one key cost one connect.
pub struct KeyPool {
    sources: KeySources,
    /// Whether opening looks for stale objects (see [`KeySources::pool_noting_stale`]).
    lazy_rewrap: bool,
    /// Shared with the pool that opens branch records ([`KeyPool::for_records`]), so a
    /// key serves objects and records with one connect.
    keyring: Arc<OnceCell<Shared<Keyring>>>,
    remote: Arc<Mutex<HashMap<String, RemoteCell>>>,
    /// One envelope per set of keys, so that keys loaded once serve every file.
    envelopes: Mutex<HashMap<KeySet, Arc<Envelope>>>,
    branches: Mutex<HashMap<String, BranchCell>>,
    connects: Arc<Semaphore>,
    /// One failover state for the run: a vault that failed is passed over by every
    /// envelope of the pool for the cool-down, whichever objects it opens.
    failover: cmk_envelope::wrap::FailoverState,
}

impl KeyPool {
    /// The pool that opens branch key records: the same keys and connections, no lazy
    /// re-wrap (records are re-wrapped by `rewrap STORE`), and no branch keys of its own
    /// (a record is wrapped by a CMK, never by a branch key).
    fn for_records(&self) -> Arc<KeyPool> {
        Arc::new(KeyPool {
            lazy_rewrap: false,
            sources: self.sources.clone(),
            keyring: Arc::clone(&self.keyring),
            remote: Arc::clone(&self.remote),
            envelopes: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            connects: Arc::clone(&self.connects),
            failover: self.failover.clone(),
        })
    }

    async fn keyring(&self) -> Shared<Keyring> {
        self.keyring
            .get_or_init(|| async { self.sources.open_keyring().map_err(|e| Arc::new(e.into())) })
            .await
            .clone()
    }

    /// The remote key `key` (a Key Vault key URL or a `pkcs11:` key), connected on first
    /// use; the allowlist was checked by the caller. A Key Vault key is not read until it
    /// is used: opening needs only the slot's own version, and the current version is
    /// checked when something is wrapped under it.
    pub async fn remote(&self, key: &str) -> Shared<Arc<dyn KeyWrapper>> {
        let cell = {
            let mut remote = self.remote.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(remote.entry(key.to_owned()).or_default())
        };
        cell.get_or_init(|| async {
            let _permit = self.connects.acquire().await;
            if vault::is_key_url(key) {
                return vault::connect_for_opening(
                    key,
                    self.sources.azure_credential,
                    self.sources.max_key_ops.clone(),
                )
                .map_err(|e| Arc::new(e.into()));
            }
            self.sources
                .named_key(key)
                .await
                .map_err(|e| Arc::new(e.into()))
        })
        .await
        .clone()
    }

    /// The branch key `name` of the operator's store, opened on first use.
    async fn branch(&self, name: &str) -> Shared<Arc<BranchWrapper>> {
        let cell = {
            let mut branches = self.branches.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(branches.entry(name.to_owned()).or_default())
        };
        cell.get_or_init(|| async {
            let _permit = self.connects.acquire().await;
            let keys: Arc<dyn RecordKeys> = Arc::new(PoolRecordKeys(self.for_records()));
            self.sources
                .branch_wrapper(name, Some(keys))
                .await
                .map(Arc::new)
                .map_err(|e| Arc::new(e.into()))
        })
        .await
        .clone()
    }

    /// An envelope that opens `header` with the keys its slots name and the operator
    /// allows: the keyring for `local:` slots, each allowed vault or token key, and the
    /// branch keys of the operator's branch store.
    ///
    /// # Errors
    /// [`Error::NoKeyForKid`] (saying how to allow them) when every slot names a service
    /// that is not allowed; the error of a key that cannot be used when no slot's key can.
    pub async fn envelope_for(&self, header: &Header) -> Result<Arc<Envelope>> {
        let allowlist = self.sources.allowlist();
        let kids: Vec<&str> = header.slots().iter().map(|s| s.kid()).collect();
        if kids.iter().all(|k| !allowlist.allows(k)) {
            return Err(Error::NoKeyForKid {
                kids: kids
                    .iter()
                    .map(|k| match allowlist.refusal(k) {
                        Some(why) => format!("{k} ({why})"),
                        None => (*k).to_owned(),
                    })
                    .collect(),
            });
        }
        let wants_keyring = kids.iter().any(|k| matches!(Kid::parse(k), Kid::Local(_)));
        let remote: BTreeSet<String> = remote_keys_in(header)
            .into_iter()
            .filter(|k| allowlist.allows(k))
            .collect();
        let mut problem: Option<Error> = None;
        let keyring = if wants_keyring {
            match self.keyring().await {
                Ok(keyring) => Some(keyring),
                Err(e) => {
                    problem = Some(same_error(&e));
                    None
                }
            }
        } else {
            None
        };
        let branch_names: BTreeSet<String> = kids
            .iter()
            .filter_map(|k| match Kid::parse(k) {
                Kid::Branch(branch) => Some(branch.name.as_str().to_owned()),
                _ => None,
            })
            .collect();
        let mut branches = Vec::new();
        if !branch_names.is_empty() && self.sources.branch_store.is_none() {
            problem = Some(Error::NoKeyForKid {
                kids: kids
                    .iter()
                    .map(|k| match Kid::parse(k) {
                        Kid::Branch(_) => format!(
                            "{k} (a branch key: name its store with --branch-store DIR, \
                             CMKE_BRANCH_STORE or branch_store in cmke.toml)"
                        ),
                        _ => (*k).to_owned(),
                    })
                    .collect(),
            });
        }
        for name in branch_names
            .iter()
            .filter(|_| self.sources.branch_store.is_some())
        {
            match self.branch(name).await {
                Ok(wrapper) => branches.push((format!("branch:{name}"), wrapper)),
                Err(e) => {
                    problem.get_or_insert_with(|| same_error(&e));
                }
            }
        }
        let mut connected = Vec::new();
        for key in &remote {
            match self.remote(key).await {
                Ok(wrapper) => connected.push((key.clone(), wrapper)),
                Err(e) => {
                    problem.get_or_insert_with(|| same_error(&e));
                }
            }
        }
        if keyring.is_none() && connected.is_empty() && branches.is_empty() {
            return Err(problem.unwrap_or_else(|| Error::NoKeyForKid {
                kids: kids.iter().map(|k| (*k).to_owned()).collect(),
            }));
        }
        let set = (
            keyring.is_some(),
            connected
                .iter()
                .map(|(k, _)| k.clone())
                .chain(branches.iter().map(|(k, _)| k.clone()))
                .collect::<Vec<_>>(),
        );
        if let Some(envelope) = self
            .envelopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&set)
        {
            return Ok(Arc::clone(envelope));
        }
        let mut builder = Envelope::builder()
            .provider(self.sources.provider)
            .lazy_rewrap(self.lazy_rewrap)
            .kid_allowlist(allowlist.clone())
            .failover_state(self.failover.clone())
            .failover_cooldown(self.sources.failover_cooldown);
        // The keyring's keys, the connected services' and the branch keys, each ranked by
        // the operator's --prefer-key (unranked last, in this order).
        let preferred = &self.sources.preferred_keys;
        let rank = |key: &str| {
            preferred
                .iter()
                .position(|p| p == key)
                .unwrap_or(usize::MAX)
        };
        let mut openers: Vec<(usize, Vec<Arc<dyn KeyWrapper>>)> = Vec::new();
        if let Some(keyring) = &keyring {
            let local = preferred
                .iter()
                .position(|p| p.starts_with("local:"))
                .unwrap_or(usize::MAX);
            openers.push((local, keyring.openers()?));
        }
        for (key, wrapper) in connected {
            openers.push((rank(&key), vec![wrapper]));
        }
        for (key, wrapper) in branches {
            openers.push((rank(&key), vec![wrapper as Arc<dyn KeyWrapper>]));
        }
        if !preferred.is_empty() {
            openers.sort_by_key(|(rank, _)| *rank);
            builder = builder.slot_order(cmk_envelope::wrap::SlotOrder::Preferred);
        }
        for (_, wrappers) in openers {
            builder = builder.open_with_all(wrappers);
        }
        let envelope = Arc::new(builder.build()?);
        Ok(Arc::clone(
            self.envelopes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(set)
                .or_insert(envelope),
        ))
    }

    /// The current kid of the key a kid belongs to (as
    /// [`key_of`](crate::keys::sources::key_of) names it), asking only allowed services.
    pub async fn current_kid_of(&self, key: &str) -> Result<String> {
        if let Some(name) = branch_name_in(key) {
            // The store alone says which version is current: no CMK is needed.
            let store = self.sources.branch_store(false)?;
            let current = store.read_current(&KeyName::new(name)?).await?;
            return Ok(format!("{key}/{}", current.version));
        }
        if let Some(why) = self.sources.allowlist().refusal(key) {
            return Err(Error::NoKeyForKid {
                kids: vec![format!("{key} ({why})")],
            });
        }
        if vault::is_key_url(key) || hsm::is_pkcs11_uri(key) {
            let wrapper = self.remote(key).await.map_err(|e| same_error(&e))?;
            return wrapper.current_kid().await;
        }
        let name = key.strip_prefix("local:").unwrap_or(key);
        let keyring = self.keyring().await.map_err(|e| same_error(&e))?;
        keyring.key(name)?.current_kid().await
    }
}
