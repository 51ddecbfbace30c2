//! The keyring directory: create, rotate, import, list, and hand out keys.

use std::fs;
use std::path::{Path, PathBuf};

use super::key::SoftwareKey;
use super::material::RsaKeyMaterial;
use super::names::{KeyName, KeyVersion, LocalKid};
use crate::atomic_write::{create_file_durably, write_file_atomically};
use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::policy::KeyPolicy;

const CURRENT_FILE: &str = "current";
const KEY_FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// A software keyring on disk (see the [module docs](super) for the layout).
///
/// ```
/// # fn main() -> Result<(), cmk_envelope::Error> {
/// use cmk_envelope::software::Keyring;
/// let dir = tempfile::tempdir()?;
/// let keyring = Keyring::create(dir.path())?;
/// let v1 = keyring.create_key("orders")?;
/// let v2 = keyring.rotate("orders")?;
/// assert_ne!(v1, v2);
/// assert_eq!(keyring.list()?[0].versions.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
    domain: String,
    policy: KeyPolicy,
    provider: Provider,
}

/// One key of a keyring, as [`Keyring::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyListing {
    /// The key name.
    pub name: String,
    /// The current version's kid.
    pub current_kid: String,
    /// Every version on disk, sorted.
    pub versions: Vec<String>,
}

impl Keyring {
    /// Opens an existing keyring directory.
    ///
    /// # Errors
    /// [`Error::KeyringNotFound`] when `dir` is not a directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::KeyringNotFound(dir.to_path_buf()));
        }
        let canonical = dir.canonicalize().map_err(|e| Error::io_at(dir, e))?;
        Ok(Self {
            domain: format!("local:{}", canonical.display()),
            dir: dir.to_path_buf(),
            policy: KeyPolicy::default(),
            provider: Provider::default(),
        })
    }

    /// Opens a keyring, creating its directory (mode 0700) if it does not exist.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.exists() {
            create_private_dir(dir)?;
        }
        Self::open(dir)
    }

    /// Uses this policy for key sizes (default: RSA-2048 only).
    #[must_use]
    pub fn with_policy(mut self, policy: KeyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Uses this crypto provider for keys handed out.
    #[must_use]
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// The keyring directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new RSA-2048 key (the first size the policy allows) and returns the kid of
    /// its first version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name or a key that already exists; [`Error::Io`].
    pub fn create_key(&self, name: &str) -> Result<String> {
        let bits = self.policy.rsa_sizes().first().copied().unwrap_or(2048);
        self.create_key_with_size(name, bits)
    }

    /// Creates a new key of `bits` bits (which the policy must allow).
    ///
    /// # Errors
    /// As [`Keyring::create_key`], and [`Error::PolicyRefused`] for a size the policy refuses.
    pub fn create_key_with_size(&self, name: &str, bits: usize) -> Result<String> {
        let name = KeyName::new(name)?;
        let key_dir = self.key_dir(&name);
        if key_dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "key {name} already exists in {}: rotate it instead",
                self.dir.display()
            )));
        }
        let material = RsaKeyMaterial::generate(bits, &self.policy, self.provider)?;
        create_private_dir(&key_dir)?;
        self.add_version(&name, &material)
    }

    /// Rotates a key: writes a new version (same size as the current one) and makes it
    /// current. Old versions stay, so old data stays readable.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] for an unknown key; [`Error::Io`].
    pub fn rotate(&self, name: &str) -> Result<String> {
        let key = self.key(name)?;
        let bits = key.current_bits();
        let material = RsaKeyMaterial::generate(bits, &self.policy, self.provider)?;
        self.add_version(&KeyName::new(name)?, &material)
    }

    /// Imports a PKCS#8 PEM private key (for example from
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) as a new version of
    /// key `name`, creating the key if needed, and makes it current.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for bad PEM, PKCS#1 or encrypted PEM, or a key that is not RSA;
    /// [`Error::PolicyRefused`] for a size the policy refuses; [`Error::Io`].
    pub fn import_pem(&self, name: &str, pem: &str) -> Result<String> {
        let name = KeyName::new(name)?;
        let material = RsaKeyMaterial::from_pem(pem, &self.policy, self.provider)?;
        let key_dir = self.key_dir(&name);
        if !key_dir.exists() {
            create_private_dir(&key_dir)?;
        }
        self.add_version(&name, &material)
    }

    /// Lists the keys, sorted by name.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<KeyListing>> {
        let mut keys = Vec::new();
        for name in self.key_names()? {
            let versions = self.versions(&name)?;
            let current = self.current_version(&name)?;
            keys.push(KeyListing {
                current_kid: LocalKid {
                    name: name.clone(),
                    version: current,
                }
                .to_string(),
                name: name.to_string(),
                versions: versions.iter().map(ToString::to_string).collect(),
            });
        }
        Ok(keys)
    }

    /// A key wrapper for key `name`, wrapping under its current version.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the key or its current version is missing;
    /// [`Error::InvalidKey`] / [`Error::PolicyRefused`] when the current version's file is
    /// unusable or breaks the policy.
    pub fn key(&self, name: &str) -> Result<SoftwareKey> {
        let name = KeyName::new(name)?;
        SoftwareKey::load(self.clone(), name)
    }

    /// Wrappers for every key in the keyring: what a reader needs to open anything written
    /// under any of them.
    ///
    /// # Errors
    /// As [`Keyring::key`].
    pub fn keys(&self) -> Result<Vec<SoftwareKey>> {
        self.key_names()?
            .into_iter()
            .map(|name| SoftwareKey::load(self.clone(), name))
            .collect()
    }

    pub(super) fn domain(&self) -> &str {
        &self.domain
    }

    pub(super) fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    pub(super) fn provider(&self) -> Provider {
        self.provider
    }

    fn key_dir(&self, name: &KeyName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    pub(super) fn version_path(&self, name: &KeyName, version: &KeyVersion) -> PathBuf {
        self.key_dir(name).join(format!("{version}.pem"))
    }

    /// The version named by `{name}/current`.
    pub(super) fn current_version(&self, name: &KeyName) -> Result<KeyVersion> {
        let key_dir = self.key_dir(name);
        if !key_dir.is_dir() {
            return Err(Error::KeyNotFound {
                kid: format!("local:{name}"),
            });
        }
        let path = key_dir.join(CURRENT_FILE);
        let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::KeyNotFound {
                kid: format!("local:{name} (no current version)"),
            },
            _ => Error::io_at(&path, e),
        })?;
        KeyVersion::new(text.trim())
            .map_err(|_| Error::InvalidKey(format!("{} does not name a version", path.display())))
    }

    /// Reads and checks one version's key file.
    pub(super) fn read_version(
        &self,
        name: &KeyName,
        version: &KeyVersion,
    ) -> Result<RsaKeyMaterial> {
        let path = self.version_path(name, version);
        let pem = fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::KeyNotFound {
                kid: LocalKid {
                    name: name.clone(),
                    version: version.clone(),
                }
                .to_string(),
            },
            _ => Error::io_at(&path, e),
        })?;
        let pem = zeroize::Zeroizing::new(pem);
        // Reading old data must not depend on today's size policy: sizes are checked when a
        // key is created, imported, or used to wrap new data.
        let any_size = KeyPolicy::default()
            .allow_rsa_sizes(&crate::policy::RSA_SIZES)
            .unwrap_or_default();
        RsaKeyMaterial::from_pem(&pem, &any_size, self.provider).map_err(|e| match e {
            Error::InvalidKey(why) => Error::InvalidKey(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    fn key_names(&self) -> Result<Vec<KeyName>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io_at(&self.dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io_at(&self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if entry.path().is_dir() {
                if let Ok(name) = KeyName::new(name) {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>> {
        let key_dir = self.key_dir(name);
        let entries = fs::read_dir(&key_dir).map_err(|e| Error::io_at(&key_dir, e))?;
        let mut versions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io_at(&key_dir, e))?;
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".pem")) else {
                continue;
            };
            if let Ok(version) = KeyVersion::new(stem) {
                versions.push(version);
            }
        }
        versions.sort();
        Ok(versions)
    }

    /// Writes a new version file, then points `current` at it atomically.
    fn add_version(&self, name: &KeyName, material: &RsaKeyMaterial) -> Result<String> {
        let mut random = [0u8; 16];
        self.provider
            .ops()
            .fill_random(&mut random)
            .map_err(|_| Error::Backend {
                backend: self.provider.name(),
                message: "random number generator failed".to_owned(),
            })?;
        let version = KeyVersion::from_random(random);
        let pem = material.to_pem()?;
        create_file_durably(
            &self.version_path(name, &version),
            pem.as_bytes(),
            KEY_FILE_MODE,
        )?;
        write_file_atomically(
            &self.key_dir(name).join(CURRENT_FILE),
            format!("{version}\n").as_bytes(),
            KEY_FILE_MODE,
        )?;
        Ok(LocalKid {
            name: name.clone(),
            version,
        }
        .to_string())
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir).map_err(|e| Error::io_at(dir, e))
}
