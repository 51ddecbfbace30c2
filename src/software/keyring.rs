//! The keyring directory: create, rotate, import, list, and hand out keys.

use std::path::{Path, PathBuf};

use super::material::RsaKeyMaterial;
use super::rotations::RotationCount;
use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::kid::{KeyName, KeyVersion, Kid, LocalKid};
use crate::policy::KeyRules;
use crate::trust::{create_private_dir, TrustedDir, TrustedKind};

const CURRENT_FILE: &str = "current";
const KEY_FILE_MODE: u32 = 0o600;
/// No PEM RSA key this crate accepts comes near this; a larger "key file" is not read.
const KEY_FILE_LIMIT: usize = 64 * 1024;
/// `current` holds one version line.
const CURRENT_LIMIT: usize = 256;

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
    /// The keyring directory as checked when it was opened: every key directory and file
    /// is reached from it, never by a path again.
    root: TrustedDir,
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
    /// The directory and every directory above it must be owned by the user (or root) and
    /// not writable by group or others ([`trust`](crate::trust)); so must every key
    /// directory and key file read later, none of which may be a symlink or a hard link,
    /// and key files must be readable by nobody else (mode 0600).
    ///
    /// # Errors
    /// [`Error::KeyringNotFound`] when `dir` is not a directory; [`Error::UntrustedFile`]
    /// for a directory someone else can change.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::KeyringNotFound(dir.to_path_buf()));
        }
        let root = TrustedDir::open(dir, "keyring directory")?;
        let canonical = dir.canonicalize().map_err(|e| Error::io_at(dir, e))?;
        let domain = format!("local:{}", canonical.display());
        Ok(Self {
            rotations: RotationCount::of(&domain),
            domain,
            dir: dir.to_path_buf(),
            root,
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
    pub fn key_rules(mut self, key_rules: KeyRules) -> Self {
        self.key_rules = key_rules;
        self
    }

    /// Uses this crypto provider for keys handed out.
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
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
        if self
            .root
            .subdir(name.as_str(), "key directory", false)?
            .is_some()
        {
            return Err(Error::InvalidArgument(format!(
                "key {name} already exists in {}: rotate it instead",
                self.dir.display()
            )));
        }
        let material = RsaKeyMaterial::generate(bits, &self.key_rules, self.provider)?;
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

    pub(super) fn rules(&self) -> &KeyRules {
        &self.key_rules
    }

    pub(super) fn crypto_provider(&self) -> Provider {
        self.provider
    }

    /// The key's directory, checked: a real directory (not a symlink) that only its user
    /// can change.
    fn checked_key_dir(&self, name: &KeyName) -> Result<TrustedDir> {
        self.root
            .subdir(name.as_str(), "key directory", false)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: format!("local:{name}"),
                detail: String::new(),
            })
    }

    /// The version named by `{name}/current`.
    pub(super) fn current_version(&self, name: &KeyName) -> Result<KeyVersion> {
        let key_dir = self.checked_key_dir(name)?;
        let path = key_dir.path().join(CURRENT_FILE);
        let bytes = key_dir
            .read(CURRENT_FILE, TrustedKind::Record, "key file", CURRENT_LIMIT)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: format!("local:{name}"),
                detail: "no current version".to_owned(),
            })?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| KeyVersion::new(text.trim()).ok())
            .ok_or_else(|| Error::InvalidKey(format!("{} does not name a version", path.display())))
    }

    /// Reads and checks one version's key file.
    pub(super) fn read_version(
        &self,
        name: &KeyName,
        version: &KeyVersion,
    ) -> Result<RsaKeyMaterial> {
        let key_dir = self.checked_key_dir(name)?;
        let file = format!("{version}.pem");
        let path = key_dir.path().join(&file);
        let bytes = key_dir
            .read(&file, TrustedKind::Secret, "key file", KEY_FILE_LIMIT)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: LocalKid {
                    name: name.clone(),
                    version: version.clone(),
                }
                .to_string(),
                detail: String::new(),
            })?;
        let pem = zeroize::Zeroizing::new(
            std::str::from_utf8(&bytes)
                .map_err(|_| Error::InvalidKey(format!("{}: not PEM text", path.display())))?
                .to_owned(),
        );
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
        let mut found = Vec::new();
        for (file_name, kind) in self.root.entries()? {
            let Ok(name) = KeyName::new(&file_name) else {
                continue;
            };
            // Entries are not followed: `alias -> orders` is not a second key.
            if kind == rustix::fs::FileType::Symlink {
                found.push(Err((
                    name.to_string(),
                    symlink_refused(&self.dir.join(&file_name), "key directory").to_string(),
                )));
            } else if kind == rustix::fs::FileType::Directory {
                found.push(Ok(name));
            }
        }
        Ok(found)
    }

    fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>> {
        let key_dir = self.checked_key_dir(name)?;
        let mut versions: Vec<KeyVersion> = key_dir
            .entries()?
            .into_iter()
            .filter_map(|(file, _)| KeyVersion::new(file.strip_suffix(".pem")?).ok())
            .collect();
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
        let key_dir = self
            .root
            .subdir(name.as_str(), "key directory", true)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: format!("local:{name}"),
                detail: String::new(),
            })?;
        // Temporary files of a write that was killed: ours, so removed.
        key_dir.sweep_temps();
        key_dir.create_file(&format!("{version}.pem"), pem.as_bytes(), KEY_FILE_MODE)?;
        key_dir.replace_file(
            CURRENT_FILE,
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
