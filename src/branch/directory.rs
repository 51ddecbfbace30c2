//! A branch key store in a directory: the embedded default.

use std::io::ErrorKind;
use std::path::Path;

use async_trait::async_trait;
use rustix::fs::FileType;

use super::store::{BranchStore, StoredCurrent, StoredRecord};
use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::kid::{KeyName, KeyVersion};
use crate::trust::{create_private_dir, TrustedDir, TrustedKind};

const CURRENT_FILE: &str = "current";
const LOCK_FILE: &str = ".lock";
const RECORD_SUFFIX: &str = ".cmke";
const FILE_MODE: u32 = 0o600;
/// A record is a header with a few slots and a 32-byte body: far below this. A larger file
/// (or a device, a FIFO) is refused before more than this is read.
pub const MAX_RECORD_LEN: usize = 64 * 1024;
/// `current` holds one version line.
const CURRENT_LIMIT: usize = 256;

/// Branch key records in a directory: `{dir}/{name}/{version}.cmke` and
/// `{dir}/{name}/current`, like the software keyring.
///
/// Every part is checked before anything in it is read: the store directory and all its
/// ancestors, each key directory, `current`, each record and the lock file must be the
/// user's (or root's) and writable by nobody else; a symlink or a hard link anywhere inside
/// is refused, and so is anything that is not a regular file of at most
/// [`MAX_RECORD_LEN`] bytes. Whoever can write a store chooses the keys of future objects:
/// a record is easy to make (wrapping needs only the CMK's public key), and moving
/// `current` to it would seal new objects under a key its maker knows.
///
/// Records are created only where none exists, and `current` is replaced atomically
/// (write, fsync, rename) while holding an exclusive lock on `{dir}/{name}/.lock`, and only
/// if it still names the version the writer read: two rotations at once on one machine (or
/// over a file system with working `flock`) cannot both win. Temporary files of a write
/// that was killed are removed by the next write, once provably this user's and of a
/// process that is gone.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: TrustedDir,
}

impl DirectoryStore {
    /// Opens an existing store directory, checked as described above.
    ///
    /// # Errors
    /// [`Error::KeyringNotFound`] when `dir` is not a directory; [`Error::UntrustedFile`]
    /// for a directory (or an ancestor) someone else can change.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::KeyringNotFound(dir.to_path_buf()));
        }
        Ok(Self {
            root: TrustedDir::open(dir, "branch key store")?,
        })
    }

    /// Opens a store, creating its directory (mode 0700) if it does not exist.
    ///
    /// # Errors
    /// As [`DirectoryStore::open`]; [`Error::Io`] when the directory cannot be created.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.exists() {
            create_private_dir(dir)?;
        }
        Self::open(dir)
    }

    fn name_dir(&self, name: &KeyName, create: bool) -> Result<Option<TrustedDir>> {
        self.root
            .subdir(name.as_str(), "branch key directory", create)
    }

    /// The key directory of `name`, made (mode 0700) if missing.
    fn created_name_dir(&self, name: &KeyName) -> Result<TrustedDir> {
        self.name_dir(name, true)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: format!("branch:{name}"),
                detail: String::new(),
            })
    }

    fn existing_name_dir(&self, name: &KeyName, kid: String) -> Result<TrustedDir> {
        self.name_dir(name, false)?
            .ok_or_else(|| Error::KeyNotFound {
                kid,
                detail: format!("no branch key {name} in {}", self.root.path().display()),
            })
    }

    /// Runs `f` holding the branch key's lock, so that read-compare-replace is one step.
    fn locked<T>(&self, dir: &TrustedDir, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let lock = dir.lock(LOCK_FILE)?;
        let result = f();
        // Closing the file releases the lock.
        drop(lock);
        result
    }

    fn read_current_in(dir: &TrustedDir) -> Result<Option<StoredCurrent>> {
        let Some(bytes) = dir.read(
            CURRENT_FILE,
            TrustedKind::Record,
            "branch current file",
            CURRENT_LIMIT,
        )?
        else {
            return Ok(None);
        };
        let version = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| KeyVersion::new(text.trim()).ok())
            .ok_or_else(|| {
                Error::InvalidKey(format!(
                    "{} does not hold a version (32 lowercase hex characters)",
                    dir.path().join(CURRENT_FILE).display()
                ))
            })?;
        // Versions are random and never reused, so the version itself tells whether
        // `current` moved since it was read.
        let tag = version.as_str().to_owned();
        Ok(Some(StoredCurrent { version, tag }))
    }
}

fn record_file(version: &KeyVersion) -> String {
    format!("{}{RECORD_SUFFIX}", version.as_str())
}

fn digest(bytes: &[u8]) -> String {
    Provider::default()
        .ops()
        .sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn conflict(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Conflict {
        what: what.into(),
        detail: detail.into(),
    }
}

#[async_trait]
impl BranchStore for DirectoryStore {
    fn location(&self) -> String {
        self.root.path().display().to_string()
    }

    async fn read_record(&self, name: &KeyName, version: &KeyVersion) -> Result<StoredRecord> {
        let kid = format!("branch:{name}/{version}");
        let dir = self.existing_name_dir(name, kid.clone())?;
        let file = record_file(version);
        match dir.read(
            &file,
            TrustedKind::Record,
            "branch key record",
            MAX_RECORD_LEN,
        )? {
            Some(bytes) => Ok(StoredRecord {
                tag: digest(&bytes),
                bytes: bytes.to_vec(),
            }),
            None => Err(Error::KeyNotFound {
                kid,
                detail: format!("no record {}", dir.path().join(file).display()),
            }),
        }
    }

    async fn create_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
    ) -> Result<()> {
        let dir = self.created_name_dir(name)?;
        // Temporary files of a create or rotate that was killed: ours, so removed.
        dir.sweep_temps();
        let file = record_file(version);
        match dir.create_file(&file, record, FILE_MODE) {
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                Err(conflict(
                    dir.path().join(file).display().to_string(),
                    "a record of this version exists",
                ))
            }
            other => other,
        }
    }

    async fn replace_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
        tag: &str,
    ) -> Result<()> {
        let dir = self.existing_name_dir(name, format!("branch:{name}/{version}"))?;
        let file = record_file(version);
        let shown = dir.path().join(&file).display().to_string();
        self.locked(&dir, || {
            let now = dir
                .read(
                    &file,
                    TrustedKind::Record,
                    "branch key record",
                    MAX_RECORD_LEN,
                )?
                .ok_or_else(|| conflict(shown.clone(), "the record is gone"))?;
            if digest(&now) != tag {
                return Err(conflict(
                    shown.clone(),
                    "the record changed since it was read",
                ));
            }
            dir.replace_file(&file, record, FILE_MODE)
        })
    }

    async fn read_current(&self, name: &KeyName) -> Result<StoredCurrent> {
        let dir = self.existing_name_dir(name, format!("branch:{name}"))?;
        Self::read_current_in(&dir)?.ok_or_else(|| Error::KeyNotFound {
            kid: format!("branch:{name}"),
            detail: format!("no current version in {}", dir.path().display()),
        })
    }

    async fn set_current(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        expected: Option<&StoredCurrent>,
    ) -> Result<()> {
        let dir = self.created_name_dir(name)?;
        let shown = dir.path().join(CURRENT_FILE).display().to_string();
        self.locked(&dir, || {
            let now = Self::read_current_in(&dir)?;
            match (expected, &now) {
                (None, None) => {}
                (Some(expected), Some(now)) if expected.tag == now.tag => {}
                (None, Some(now)) => {
                    return Err(conflict(
                        shown,
                        format!("branch key {name} exists (current version {})", now.version),
                    ))
                }
                (_, now) => {
                    return Err(conflict(
                        shown,
                        format!(
                            "another rotation moved it first (now {})",
                            now.as_ref()
                                .map_or("missing".to_owned(), |c| c.version.to_string())
                        ),
                    ))
                }
            }
            dir.replace_file(CURRENT_FILE, format!("{version}\n").as_bytes(), FILE_MODE)
        })
    }

    async fn names(&self) -> Result<Vec<KeyName>> {
        // Symlinks named like a branch key are listed too, so that using or listing them
        // says why they are refused instead of hiding them.
        Ok(self
            .root
            .entries()?
            .into_iter()
            .filter(|(_, kind)| matches!(kind, FileType::Directory | FileType::Symlink))
            .filter_map(|(name, _)| KeyName::new(&name).ok())
            .collect())
    }

    async fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>> {
        let Some(dir) = self.name_dir(name, false)? else {
            return Ok(Vec::new());
        };
        let mut versions: Vec<KeyVersion> = dir
            .entries()?
            .into_iter()
            .filter_map(|(file, _)| KeyVersion::new(file.strip_suffix(RECORD_SUFFIX)?).ok())
            .collect();
        versions.sort();
        Ok(versions)
    }
}
