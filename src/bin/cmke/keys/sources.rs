//! Where keys come from: the keyring directory, Key Vault, PKCS#11 tokens, with the
//! settings merged from flags, environment and the configuration file (in that order).
//!
//! Only the operator decides which key services are contacted: the keys named with
//! `--key`/`--to`, and the vaults and tokens allowed by flag or configuration. A slot that
//! names anything else is passed over with no network call and no login, like a kid no
//! key holds.

use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::crypto::Provider;
use cmk_envelope::format::Header;
use cmk_envelope::kid::Kid;
use cmk_envelope::policy::KidAllowlist;
use cmk_envelope::software::Keyring;
use cmk_envelope::wrap::KeyOpsLimit;
use cmk_envelope::{Error, KeyWrapper};

use crate::cli::args::{AzureCredential, Cli, ProviderChoice};
use crate::cli::config::{user_keyring_path, FileConfig};
use crate::cli::failure::{Failure, Result, UsageError};
use crate::keys::hsm::{self, HsmSettings};
use crate::keys::names::branch_name_in;
use crate::keys::vault;

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
    /// `max_memory` in cmke.toml, parsed.
    max_memory: Option<u64>,
    allowlist: KidAllowlist,
    /// One budget for every key of the run (clones share it): `--max-key-ops` when given,
    /// else no rate; either way a 429 pauses the whole run together.
    pub max_key_ops: Option<KeyOpsLimit>,
    /// The branch key store the operator named, if any (a directory).
    pub branch_store: Option<String>,
    /// `--prefer-key`, as [`key_of`] names keys: their slots are tried first.
    pub preferred_keys: Vec<String>,
    /// `--failover-cooldown`.
    pub failover_cooldown: std::time::Duration,
}

impl KeySources {
    /// Flags and environment first, then the configuration file, then the built-in
    /// defaults.
    ///
    /// # Errors
    /// As [`FileConfig::load`]; [`UsageError`] for a provider not compiled in
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
            max_memory: file
                .max_memory
                .as_deref()
                .map(crate::cli::size::parse_size)
                .transpose()
                .map_err(|why| UsageError::new(format!("max_memory in cmke.toml: {why}")))?,
            allowlist,
            branch_store: cli.branch_store.clone().or(file.branch_store),
            preferred_keys: cli.prefer_key.iter().map(|k| named_key_of(k)).collect(),
            failover_cooldown: std::time::Duration::from_secs(cli.failover_cooldown),
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
    /// [`UsageError`] for a malformed key URL.
    pub fn allow_named_key(&mut self, key: &str) -> Result<()> {
        self.allowlist = self.allowlist.clone().allow_key(key)?;
        Ok(())
    }

    /// The memory budget of a bulk run: the flag, else the configuration, else 256 MiB.
    pub fn max_memory(&self, flag: Option<u64>) -> u64 {
        flag.or(self.max_memory)
            .unwrap_or(crate::cli::size::DEFAULT_MAX_MEMORY)
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
    /// [`UsageError`] when none is named and there is no home directory.
    pub fn keyring_dir(&self) -> Result<&PathBuf> {
        self.keyring.as_ref().ok_or_else(|| {
            UsageError::new(
                "no keyring: name one with --keyring, CMKE_KEYRING or keyring in the \
                 configuration (HOME is not set, so there is no default)",
            )
            .into()
        })
    }

    pub fn open_keyring(&self) -> Result<Keyring> {
        Ok(Keyring::open(self.keyring_dir()?)?.provider(self.provider))
    }

    /// A key named on the command line: a Key Vault key URL, a `pkcs11:` URI, or a keyring
    /// key (`orders` or `local:orders`).
    pub async fn named_key(&self, key: &str) -> Result<Arc<dyn KeyWrapper>> {
        if let Some(name) = branch_name_in(key) {
            if name.contains('/') {
                return Err(UsageError::new(format!(
                    "{key} names one version; name the branch key (branch:{}) and its current                      version is used",
                    name.split('/').next().unwrap_or_default()
                )).into());
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
                return Err(UsageError::new(format!(
                    "{key} names one version; name the key (local:{}) and its current version \
                     is used",
                    rest.split('/').next().unwrap_or_default()
                ))
                .into())
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

/// A key as the operator names it (`orders` in the keyring, a key URL, `pkcs11:…`,
/// `branch:NAME`), as [`key_of`] names the key of a kid.
pub fn named_key_of(key: &str) -> String {
    if key.contains(':') {
        key_of(key)
    } else {
        key_of(&format!("local:{key}"))
    }
}

fn provider(choice: ProviderChoice) -> Result<Provider> {
    let not_built = |name: &str| -> Failure {
        if cfg!(feature = "fips") {
            Error::PolicyRefused(format!(
                "provider {name} is left out of this FIPS build: only AWS-LC's validated \
                 module serves the data path"
            ))
            .into()
        } else {
            UsageError::new(format!("provider {name} is not compiled into this cmke")).into()
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
