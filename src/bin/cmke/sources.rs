//! Where keys come from: the keyring directory, Key Vault, PKCS#11 tokens, with the
//! settings merged from flags, environment and cmke.toml (in that order).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::format::Header;
use cmk_envelope::software::{Keyring, LocalKid};
use cmk_envelope::{Envelope, Error, KeyWrapper, Provider, Result};

use crate::args::{AzureCredential, Cli, ProviderChoice};
use crate::config::FileConfig;
use crate::hsm::{self, HsmSettings};
use crate::vault;

/// The keyring used when no flag, variable or cmke.toml names one.
const DEFAULT_KEYRING: &str = "cmke-keyring";

/// Everything `cmke` needs to reach keys.
pub struct KeySources {
    pub keyring: PathBuf,
    pub provider: Provider,
    pub azure_credential: AzureCredential,
    pub hsm: HsmSettings,
    jobs: Option<usize>,
}

impl KeySources {
    /// Flags and environment first, then cmke.toml, then the built-in defaults.
    ///
    /// # Errors
    /// As [`FileConfig::load`]; [`Error::InvalidArgument`] for a provider not compiled in.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let file = FileConfig::load(cli.config.as_deref())?;
        Ok(Self {
            keyring: cli
                .keyring
                .clone()
                .or(file.keyring)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
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
        })
    }

    /// Files handled at once: the flag, else cmke.toml, else four per core (at least 8).
    /// Each file waits on disk (fsync) as well as on RSA, so more files than cores keep the
    /// CPU busy (measured: 10,000 re-wraps on 2 cores took 7.3 s with 4 at once, 6.0 s with
    /// 8, 6.2 s with 16), and a remote key service sees at most that many calls at once.
    pub fn jobs(&self, flag: Option<usize>) -> usize {
        flag.or(self.jobs)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(8, |n| n.get().saturating_mul(4))
                    .max(8)
            })
            .max(1)
    }

    pub fn open_keyring(&self) -> Result<Keyring> {
        Ok(Keyring::open(&self.keyring)?.with_provider(self.provider))
    }

    /// A key named on the command line: a Key Vault key URL, a `pkcs11:` URI, or a keyring
    /// key (`orders` or `local:orders`).
    pub async fn named_key(&self, key: &str) -> Result<Arc<dyn KeyWrapper>> {
        if vault::is_key_url(key) {
            return vault::connect(key, self.azure_credential).await;
        }
        if hsm::is_pkcs11_uri(key) {
            return hsm::connect(&self.hsm, key).await;
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

    /// The current kid of the key `key` names (as [`key_of`] gives it).
    pub async fn current_kid_of(&self, key: &str) -> Result<String> {
        self.named_key(key).await?.current_kid().await
    }

    /// An envelope that opens anything written under any key of the keyring, and under the
    /// remote (Key Vault and PKCS#11) keys named.
    pub async fn reader_for(&self, remote_keys: &BTreeSet<String>) -> Result<Envelope> {
        let mut builder = Envelope::builder().provider(self.provider);
        match Keyring::open(&self.keyring) {
            Ok(keyring) => {
                builder = builder.open_with_keyring(&keyring.with_provider(self.provider))?
            }
            // Without a keyring, the vault and HSM keys may still open everything.
            Err(e) if remote_keys.is_empty() => return Err(e),
            Err(_) => {}
        }
        for key in remote_keys {
            builder = builder.open_with(self.named_key(key).await?);
        }
        builder.build().map_err(|_| Error::KeyNotFound {
            kid: format!("any key (the keyring {} is empty)", self.keyring.display()),
        })
    }

    /// As [`KeySources::reader_for`], for the remote keys these header bytes name.
    pub async fn reader(&self, headers: &[Vec<u8>]) -> Result<Envelope> {
        let mut keys = BTreeSet::new();
        for header in headers
            .iter()
            .filter_map(|h| Header::parse_detached(h).ok())
        {
            keys.extend(remote_keys_in(&header));
        }
        self.reader_for(&keys).await
    }
}

/// The Key Vault and PKCS#11 keys a header's slots name.
pub fn remote_keys_in(header: &Header) -> Vec<String> {
    let mut keys = vault::key_urls_in(header);
    keys.extend(hsm::key_uris_in(header));
    keys
}

/// The key a kid belongs to, without the version: `local:orders`, a Key Vault key URL, or
/// `pkcs11:token=…;object=…`.
pub fn key_of(kid: &str) -> String {
    if let Ok(local) = LocalKid::parse(kid) {
        return format!("local:{}", local.name.as_str());
    }
    if hsm::is_pkcs11_uri(kid) {
        return hsm::key_of(kid).unwrap_or_else(|| kid.to_owned());
    }
    if vault::is_key_url(kid) {
        return kid
            .rsplit_once('/')
            .map_or_else(|| kid.to_owned(), |(key, _)| key.to_owned());
    }
    kid.to_owned()
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
