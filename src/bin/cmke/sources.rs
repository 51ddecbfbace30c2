//! Where keys come from: the keyring directory, Key Vault, PKCS#11 tokens, with the
//! settings merged from flags, environment and the configuration file (in that order).
//!
//! Only the operator decides which key services are contacted: the keys named with
//! `--key`/`--to`, and the vaults and tokens allowed by flag or configuration. A slot that
//! names anything else is passed over with no network call and no login, like a kid no
//! key holds.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use cmk_envelope::branch::BranchWrapper;
use cmk_envelope::format::Header;
use cmk_envelope::software::{KeyName, Keyring};
use cmk_envelope::{Envelope, Error, KeyOpsLimit, KeyWrapper, Kid, KidAllowlist, Provider, Result};
use tokio::sync::{OnceCell, Semaphore};

use crate::args::{AzureCredential, Cli, ProviderChoice};
use crate::branches::branch_name_in;
use crate::config::{user_keyring_path, FileConfig};
use crate::hsm::{self, HsmSettings};
use crate::vault;

/// Remote keys connected (and checked) at once in one run.
const CONCURRENT_CONNECTS: usize = 8;

/// Everything `cmke` needs to reach keys.
#[derive(Clone)]
pub struct KeySources {
    /// `None` when no flag, variable or configuration names one and there is no home
    /// directory to hold the default.
    keyring: Option<PathBuf>,
    pub provider: Provider,
    pub azure_credential: AzureCredential,
    pub hsm: HsmSettings,
    jobs: Option<usize>,
    allowlist: KidAllowlist,
    /// One budget for every key of the run (clones share it): `--max-key-ops` when given,
    /// else no rate; either way a 429 pauses the whole run together.
    pub max_key_ops: Option<KeyOpsLimit>,
    /// The branch key store the operator named, if any (a directory).
    pub branch_store: Option<String>,
}

impl KeySources {
    /// Flags and environment first, then the configuration file, then the built-in
    /// defaults.
    ///
    /// # Errors
    /// As [`FileConfig::load`]; [`Error::InvalidArgument`] for a provider not compiled in
    /// or a malformed vault URL.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let file = FileConfig::load(cli.config.as_deref())?;
        let mut allowlist = KidAllowlist::new();
        for vault in file.vaults.iter().chain(&cli.allow_vault) {
            allowlist = allowlist.allow_vault(vault)?;
        }
        for token in file.pkcs11_tokens.iter().chain(&cli.allow_pkcs11_token) {
            allowlist = allowlist.allow_pkcs11_token(token);
        }
        Ok(Self {
            keyring: cli
                .keyring
                .clone()
                .or(file.keyring)
                .or_else(user_keyring_path),
            provider: provider(
                cli.provider
                    .or(file.provider)
                    .unwrap_or(ProviderChoice::Default),
            )?,
            azure_credential: cli
                .azure_credential
                .or(file.azure_credential)
                .unwrap_or(AzureCredential::Dev),
            hsm: HsmSettings {
                module: cli.pkcs11_module.clone().or(file.pkcs11_module),
                pin_file: std::env::var_os("CMKE_PKCS11_PIN_FILE")
                    .map(PathBuf::from)
                    .or(file.pkcs11_pin_file),
            },
            jobs: file.jobs,
            allowlist,
            branch_store: cli.branch_store.clone().or(file.branch_store),
            max_key_ops: Some(
                cli.max_key_ops
                    .or(file.max_key_ops)
                    .map_or_else(KeyOpsLimit::unlimited, KeyOpsLimit::per_second),
            ),
        })
    }

    /// The services this run may contact.
    pub fn allowlist(&self) -> &KidAllowlist {
        &self.allowlist
    }

    /// Allows the service of a key the operator named (`--key`, `--to`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed key URL.
    pub fn allow_named_key(&mut self, key: &str) -> Result<()> {
        self.allowlist = self.allowlist.clone().allow_key(key)?;
        Ok(())
    }

    /// Files handled at once: the flag, else the configuration, else four per core (at
    /// least 8). Each file waits on disk (fsync) as well as on RSA, so more files than
    /// cores keep the CPU busy (figures: README, "Performance"), and a remote key service
    /// sees at most that many calls at once.
    pub fn jobs(&self, flag: Option<usize>) -> usize {
        flag.or(self.jobs)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(8, |n| n.get().saturating_mul(4))
                    .max(8)
            })
            .max(1)
    }

    /// The keyring directory.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when none is named and there is no home directory.
    pub fn keyring_dir(&self) -> Result<&PathBuf> {
        self.keyring.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "no keyring: name one with --keyring, CMKE_KEYRING or keyring in the \
                 configuration (HOME is not set, so there is no default)"
                    .to_owned(),
            )
        })
    }

    pub fn open_keyring(&self) -> Result<Keyring> {
        Ok(Keyring::open(self.keyring_dir()?)?.with_provider(self.provider))
    }

    /// A key named on the command line: a Key Vault key URL, a `pkcs11:` URI, or a keyring
    /// key (`orders` or `local:orders`).
    pub async fn named_key(&self, key: &str) -> Result<Arc<dyn KeyWrapper>> {
        if let Some(name) = branch_name_in(key) {
            if name.contains('/') {
                return Err(Error::InvalidArgument(format!(
                    "{key} names one version; name the branch key (branch:{}) and its current                      version is used",
                    name.split('/').next().unwrap_or_default()
                )));
            }
            return Ok(self.branch_key(name).await?);
        }
        self.service_key(key).await
    }

    /// A key of a key service or of the keyring (not a branch key): a Key Vault key URL, a
    /// `pkcs11:` URI, or a keyring key (`orders` or `local:orders`).
    pub async fn service_key(&self, key: &str) -> Result<Arc<dyn KeyWrapper>> {
        if vault::is_key_url(key) {
            return vault::connect(key, self.azure_credential, self.max_key_ops.clone()).await;
        }
        if hsm::is_pkcs11_uri(key) {
            return hsm::connect(&self.hsm, key, self.max_key_ops.clone()).await;
        }
        let name = match key.strip_prefix("local:") {
            Some(rest) if rest.contains('/') => {
                return Err(Error::InvalidArgument(format!(
                    "{key} names one version; name the key (local:{}) and its current version \
                     is used",
                    rest.split('/').next().unwrap_or_default()
                )))
            }
            Some(rest) => rest,
            None => key,
        };
        Ok(Arc::new(self.open_keyring()?.key(name)?))
    }

    /// The key a `rewrap --to` names: as [`KeySources::named_key`], except that a Key Vault
    /// key is not read until it is used.
    pub async fn target_key(&self, key: &str) -> Result<Arc<dyn KeyWrapper>> {
        if vault::is_key_url(key) {
            return vault::connect_for_opening(
                key,
                self.azure_credential,
                self.max_key_ops.clone(),
            );
        }
        self.named_key(key).await
    }

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
            keyring: OnceCell::new(),
            remote: Mutex::new(HashMap::new()),
            envelopes: Mutex::new(HashMap::new()),
            branches: Mutex::new(HashMap::new()),
            connects: Semaphore::new(CONCURRENT_CONNECTS),
        })
    }
}

type Shared<T> = std::result::Result<T, Arc<Error>>;

/// A remote key, connected once by whichever file needs it first.
type RemoteCell = Arc<OnceCell<Shared<Arc<dyn KeyWrapper>>>>;

/// A branch key, opened once by whichever file needs it first.
type BranchCell = Arc<OnceCell<Shared<Arc<BranchWrapper>>>>;

/// Which keys an envelope opens with: the keyring or not, and the remote and branch keys.
type KeySet = (bool, Vec<String>);

/// The keys of one run, resolved per file and connected once each: a key that cannot be
/// reached fails only the files under it, and many files under one key cost one connect.
pub struct KeyPool {
    sources: KeySources,
    /// Whether opening looks for stale objects (see [`KeySources::pool_noting_stale`]).
    lazy_rewrap: bool,
    keyring: OnceCell<Shared<Keyring>>,
    remote: Mutex<HashMap<String, RemoteCell>>,
    /// One envelope per set of keys, so that keys loaded once serve every file.
    envelopes: Mutex<HashMap<KeySet, Arc<Envelope>>>,
    branches: Mutex<HashMap<String, BranchCell>>,
    connects: Semaphore,
}

impl KeyPool {
    async fn keyring(&self) -> Shared<Keyring> {
        self.keyring
            .get_or_init(|| async { self.sources.open_keyring().map_err(Arc::new) })
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
                .map_err(Arc::new);
            }
            self.sources.named_key(key).await.map_err(Arc::new)
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
            self.sources.branch_key(name).await.map_err(Arc::new)
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
        let allowlist = &self.sources.allowlist;
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
            .kid_allowlist(allowlist.clone());
        if let Some(keyring) = &keyring {
            builder = builder.open_with_all(keyring.openers()?);
        }
        for (_, wrapper) in connected {
            builder = builder.open_with(wrapper);
        }
        for (_, wrapper) in branches {
            builder = builder.open_with(wrapper);
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

    /// The current kid of the key a kid belongs to (as [`key_of`] names it), asking only
    /// allowed services.
    pub async fn current_kid_of(&self, key: &str) -> Result<String> {
        if let Some(name) = branch_name_in(key) {
            // The store alone says which version is current: no CMK is needed.
            let store = self.sources.branch_store(false)?;
            let current = store.read_current(&KeyName::new(name)?).await?;
            return Ok(format!("{key}/{}", current.version));
        }
        if let Some(why) = self.sources.allowlist.refusal(key) {
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

/// A copy of a shared error for one more file: the same variant (so the same exit code)
/// and the same words.
pub fn same_error(error: &Error) -> Error {
    error.duplicate()
}

/// The Key Vault and PKCS#11 keys a header's slots name.
pub fn remote_keys_in(header: &Header) -> Vec<String> {
    let mut keys = vault::key_urls_in(header);
    keys.extend(hsm::key_uris_in(header));
    keys
}

/// The key a kid belongs to, without the version: `local:orders`, a Key Vault key URL, or
/// `pkcs11:token=…;object=…`; another kid as it is.
pub fn key_of(kid: &str) -> String {
    Kid::parse(kid).key()
}

fn provider(choice: ProviderChoice) -> Result<Provider> {
    let not_built = |name: &str| {
        if cfg!(feature = "fips") {
            Error::PolicyRefused(format!(
                "provider {name} is left out of this FIPS build: only AWS-LC's validated \
                 module serves the data path"
            ))
        } else {
            Error::InvalidArgument(format!("provider {name} is not compiled into this cmke"))
        }
    };
    let named = |name: &'static str| {
        Provider::all()
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| not_built(name))
    };
    match choice {
        ProviderChoice::Default => Ok(Provider::default()),
        ProviderChoice::AwsLc => named("aws-lc"),
        ProviderChoice::Rustcrypto => named("rustcrypto"),
    }
}
