//! The keyring directory: create, rotate, import, list, and hand out keys.

use std::fs;
use std::path::{Path, PathBuf};

use super::material::RsaKeyMaterial;
use super::names::{KeyName, KeyVersion, LocalKid};
use super::rotations::RotationCount;
use crate::atomic_write::{create_file_durably, create_private_dir, write_file_atomically};
use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::file_trust::{check_file_trust, check_metadata};
use crate::kid::Kid;
use crate::wrap::KeyRules;

const CURRENT_FILE: &str = "current";
const KEY_FILE_MODE: u32 = 0o600;

/// A software keyring on disk (see the [module docs](super) for the layout).
///
/// ```
/// # fn main() -> Result<(), cmk_envelope::Error> {
/// use cmk_envelope::software::Keyring;
/// let dir = tempfile::tempdir()?;
/// let keyring = Keyring::create(dir.path())?;
/// let v1 = keyring.create_key("orders")?;
/// let v2 = keyring.rotate_key("orders")?;
/// assert_ne!(v1, v2);
/// assert_eq!(keyring.list()?[0].versions.len(), 2);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
    domain: String,
    key_rules: KeyRules,
    provider: Provider,
    rotations: RotationCount,
}

/// One key of a keyring, as [`Keyring::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyListing {
    /// The key name.
    pub name: String,
    /// The current version's kid (empty when the key is broken).
    pub current_kid: String,
    /// Every version on disk, sorted.
    pub versions: Vec<String>,
    /// Why the key cannot be used (no or garbage `current`, a symlink, unsafe
    /// permissions), or `None` for a usable key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

impl Keyring {
    /// Opens an existing keyring directory.
    ///
    /// The directory must be owned by the user (or root) and not writable by group or
    /// others ([`check_file_trust`](crate::check_file_trust)); so must every key directory
    /// and key file read later, and none of those may be a symlink.
    ///
    /// # Errors
    /// [`Error::KeyringNotFound`] when `dir` is not a directory; [`Error::UntrustedFile`]
    /// for a directory someone else can change.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::KeyringNotFound(dir.to_path_buf()));
        }
        check_file_trust(dir, "keyring directory")?;
        let canonical = dir.canonicalize().map_err(|e| Error::io_at(dir, e))?;
        let domain = format!("local:{}", canonical.display());
        Ok(Self {
            rotations: RotationCount::of(&domain),
            domain,
            dir: dir.to_path_buf(),
            key_rules: KeyRules::default(),
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

    /// Uses these key rules for key sizes (default: RSA-2048 only).
    #[must_use]
    pub fn with_key_rules(mut self, key_rules: KeyRules) -> Self {
        self.key_rules = key_rules;
        self
    }

    /// Uses this crypto provider for keys handed out.
    #[must_use]
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    pub(super) fn rotations(&self) -> &RotationCount {
        &self.rotations
    }

    /// The keyring directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new RSA-2048 key (the first size the key rules allow) and returns the kid of
    /// its first version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad name or a key that already exists; [`Error::Io`].
    pub fn create_key(&self, name: &str) -> Result<Kid> {
        let bits = self.key_rules.rsa_sizes().first().copied().unwrap_or(2048);
        self.create_key_with_size(name, bits)
    }

    /// Creates a new key of `bits` bits (which the key rules must allow).
    ///
    /// # Errors
    /// As [`Keyring::create_key`], and [`Error::PolicyRefused`] for a size the key rules refuse.
    pub fn create_key_with_size(&self, name: &str, bits: usize) -> Result<Kid> {
        let name = KeyName::new(name)?;
        let key_dir = self.key_dir(&name);
        if key_dir.exists() {
            return Err(Error::InvalidArgument(format!(
                "key {name} already exists in {}: rotate it instead",
                self.dir.display()
            )));
        }
        let material = RsaKeyMaterial::generate(bits, &self.key_rules, self.provider)?;
        create_private_dir(&key_dir)?;
        self.add_version(&name, &material)
    }

    /// Rotates a key: writes a new version (same size as the current one) and makes it
    /// current. Old versions stay, so old data stays readable.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] for an unknown key; [`Error::Io`].
    pub fn rotate_key(&self, name: &str) -> Result<Kid> {
        let name = KeyName::new(name)?;
        let bits = self
            .read_version(&name, &self.current_version(&name)?)?
            .bits();
        let material = RsaKeyMaterial::generate(bits, &self.key_rules, self.provider)?;
        self.add_version(&name, &material)
    }

    /// Imports a PKCS#8 PEM private key (for example from
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`) as a new version of
    /// key `name`, creating the key if needed, and makes it current.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for bad PEM, PKCS#1 or encrypted PEM, or a key that is not RSA;
    /// [`Error::PolicyRefused`] for a size the key rules refuse; [`Error::Io`].
    pub fn import_pem(&self, name: &str, pem: &str) -> Result<Kid> {
        let name = KeyName::new(name)?;
        let material = RsaKeyMaterial::from_pem(pem, &self.key_rules, self.provider)?;
        let key_dir = self.key_dir(&name);
        if !key_dir.exists() {
            create_private_dir(&key_dir)?;
        }
        self.add_version(&name, &material)
    }

    /// Lists the keys, sorted by name. A key that cannot be used (no or garbage `current`,
    /// a symlink, unsafe permissions) is listed with the reason in
    /// [`KeyListing::broken`]; it does not hide the others.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<KeyListing>> {
        let mut keys = Vec::new();
        for entry in self.key_entries()? {
            let name = match entry {
                Ok(name) => name,
                Err((name, why)) => {
                    keys.push(KeyListing {
                        name,
                        current_kid: String::new(),
                        versions: Vec::new(),
                        broken: Some(why),
                    });
                    continue;
                }
            };
            let listed = self.versions(&name).and_then(|versions| {
                let current = self.current_version(&name)?;
                Ok((versions, current))
            });
            keys.push(match listed {
                Ok((versions, current)) => KeyListing {
                    current_kid: LocalKid {
                        name: name.clone(),
                        version: current,
                    }
                    .to_string(),
                    name: name.to_string(),
                    versions: versions.iter().map(ToString::to_string).collect(),
                    broken: None,
                },
                Err(e) => KeyListing {
                    name: name.to_string(),
                    current_kid: String::new(),
                    versions: Vec::new(),
                    broken: Some(e.to_string()),
                },
            });
        }
        Ok(keys)
    }

    pub(super) fn domain(&self) -> &str {
        &self.domain
    }

    pub(super) fn key_rules(&self) -> &KeyRules {
        &self.key_rules
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

    /// The key's directory, checked: a real directory (not a symlink) that only its user
    /// can change.
    fn checked_key_dir(&self, name: &KeyName) -> Result<PathBuf> {
        let key_dir = self.key_dir(name);
        let meta = match fs::symlink_metadata(&key_dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyNotFound {
                    kid: format!("local:{name}"),
                    detail: String::new(),
                })
            }
            Err(e) => return Err(Error::io_at(&key_dir, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(symlink_refused(&key_dir, "key directory"));
        }
        if !meta.is_dir() {
            return Err(Error::KeyNotFound {
                kid: format!("local:{name}"),
                detail: String::new(),
            });
        }
        check_metadata(&key_dir, &meta, "key directory")?;
        Ok(key_dir)
    }

    /// The version named by `{name}/current`.
    pub(super) fn current_version(&self, name: &KeyName) -> Result<KeyVersion> {
        let key_dir = self.checked_key_dir(name)?;
        let path = key_dir.join(CURRENT_FILE);
        let text = read_key_file(&path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::KeyNotFound {
                    kid: format!("local:{name}"),
                    detail: "no current version".to_owned(),
                }
            }
            other => other,
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
        self.checked_key_dir(name)?;
        let path = self.version_path(name, version);
        let pem = read_key_file(&path).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::KeyNotFound {
                    kid: LocalKid {
                        name: name.clone(),
                        version: version.clone(),
                    }
                    .to_string(),
                    detail: String::new(),
                }
            }
            other => other,
        })?;
        // Reading old data must not depend on today's size policy: sizes are checked when a
        // key is created, imported, or used to wrap new data.
        let any_size = KeyRules::any_supported_size();
        RsaKeyMaterial::from_pem(&pem, &any_size, self.provider).map_err(|e| match e {
            Error::InvalidKey(why) => Error::InvalidKey(format!("{}: {why}", path.display())),
            other => other,
        })
    }

    /// The key directories (real directories with a valid key name), sorted.
    pub(super) fn key_names(&self) -> Result<Vec<KeyName>> {
        Ok(self.key_entries()?.into_iter().flatten().collect())
    }

    /// Every entry that is or poses as a key: valid key directories, and symlinks with a
    /// key's name (refused, with the reason). Other entries (stray files, names that are
    /// not key names) are no keys and are passed over.
    fn key_entries(&self) -> Result<Vec<std::result::Result<KeyName, (String, String)>>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io_at(&self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io_at(&self.dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| KeyName::new(n).ok()) else {
                continue;
            };
            // file_type does not follow symlinks: `alias -> orders` is not a second key.
            let kind = entry
                .file_type()
                .map_err(|e| Error::io_at(entry.path(), e))?;
            if kind.is_symlink() {
                found.push(Err((
                    name.to_string(),
                    symlink_refused(&entry.path(), "key directory").to_string(),
                )));
            } else if kind.is_dir() {
                found.push(Ok(name));
            }
        }
        found.sort_by(|a, b| {
            let key = |e: &std::result::Result<KeyName, (String, String)>| match e {
                Ok(n) => n.as_str().to_owned(),
                Err((n, _)) => n.clone(),
            };
            key(a).cmp(&key(b))
        });
        Ok(found)
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
    fn add_version(&self, name: &KeyName, material: &RsaKeyMaterial) -> Result<Kid> {
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
        // Keys loaded from this keyring in this process follow the new version at once.
        self.rotations.bump();
        Ok(Kid::Local(LocalKid {
            name: name.clone(),
            version,
        }))
    }
}

fn symlink_refused(path: &Path, what: &str) -> Error {
    Error::UntrustedFile {
        path: path.to_path_buf(),
        reason: format!(
            "this {what} is a symlink; keys are read only from real files in the keyring, \
             so that nothing outside it decides which key is used"
        ),
    }
}

/// Reads a key file or `current`: a regular file, not a symlink, only its user can change.
fn read_key_file(path: &Path) -> Result<zeroize::Zeroizing<String>> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io_at(path, e))?;
    if meta.file_type().is_symlink() {
        return Err(symlink_refused(path, "key file"));
    }
    check_metadata(path, &meta, "key file")?;
    fs::read_to_string(path)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| Error::io_at(path, e))
}
