//! A branch key store in a directory: the embedded default.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::store::{BranchStore, StoredCurrent, StoredRecord};
use crate::atomic_write::{create_file_durably, create_private_dir, write_file_atomically};
use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::file_trust::check_file_trust;
use crate::software::{KeyName, KeyVersion};

const CURRENT_FILE: &str = "current";
const LOCK_FILE: &str = ".lock";
const RECORD_SUFFIX: &str = ".cmke";
const FILE_MODE: u32 = 0o600;

/// Branch key records in a directory: `{dir}/{name}/{version}.cmke` and
/// `{dir}/{name}/current`, like the software keyring.
///
/// Records are created only where none exists, and `current` is replaced atomically
/// (write, fsync, rename) while holding an exclusive lock on `{dir}/{name}/.lock`, and only
/// if it still names the version the writer read: two rotations at once on one machine (or
/// over a file system with working `flock`) cannot both win.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    dir: PathBuf,
}

impl DirectoryStore {
    /// Opens an existing store directory. Like a keyring, it must be owned by the user (or
    /// root) and not writable by others: whoever can change `current` chooses the version
    /// new objects are sealed under.
    ///
    /// # Errors
    /// [`Error::KeyringNotFound`] when `dir` is not a directory; [`Error::UntrustedFile`]
    /// for a directory someone else can change.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::KeyringNotFound(dir.to_path_buf()));
        }
        check_file_trust(dir, "branch key store")?;
        Ok(Self {
            dir: dir.to_path_buf(),
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

    fn name_dir(&self, name: &KeyName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    fn record_path(&self, name: &KeyName, version: &KeyVersion) -> PathBuf {
        self.name_dir(name)
            .join(format!("{}{RECORD_SUFFIX}", version.as_str()))
    }

    /// Runs `f` holding the branch key's lock, so that read-compare-replace is one step.
    fn locked<T>(&self, name: &KeyName, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let name_dir = self.name_dir(name);
        create_private_dir(&name_dir)?;
        let path = name_dir.join(LOCK_FILE);
        let mut options = fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(FILE_MODE);
        }
        let lock = options.open(&path).map_err(|e| Error::io_at(&path, e))?;
        #[cfg(unix)]
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io_at(&path, e.into()))?;
        let result = f();
        // Closing the file releases the lock.
        drop(lock);
        result
    }

    fn read_current_file(&self, name: &KeyName) -> Result<Option<StoredCurrent>> {
        let path = self.name_dir(name).join(CURRENT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io_at(&path, e)),
        };
        let version = KeyVersion::new(text.trim()).map_err(|_| {
            Error::InvalidKey(format!(
                "{} does not hold a version (32 lowercase hex characters)",
                path.display()
            ))
        })?;
        // Versions are random and never reused, so the version itself tells whether
        // `current` moved since it was read.
        let tag = version.as_str().to_owned();
        Ok(Some(StoredCurrent { version, tag }))
    }
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
        self.dir.display().to_string()
    }

    async fn read_record(&self, name: &KeyName, version: &KeyVersion) -> Result<StoredRecord> {
        let path = self.record_path(name, version);
        match fs::read(&path) {
            Ok(bytes) => Ok(StoredRecord {
                tag: digest(&bytes),
                bytes,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::KeyNotFound {
                kid: format!("branch:{name}/{version}"),
                detail: format!("no record {}", path.display()),
            }),
            Err(e) => Err(Error::io_at(&path, e)),
        }
    }

    async fn create_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
    ) -> Result<()> {
        create_private_dir(&self.name_dir(name))?;
        let path = self.record_path(name, version);
        match create_file_durably(&path, record, FILE_MODE) {
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                Err(conflict(
                    path.display().to_string(),
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
        let path = self.record_path(name, version);
        self.locked(name, || {
            let now = fs::read(&path).map_err(|e| Error::io_at(&path, e))?;
            if digest(&now) != tag {
                return Err(conflict(
                    path.display().to_string(),
                    "the record changed since it was read",
                ));
            }
            write_file_atomically(&path, record, FILE_MODE)
        })
    }

    async fn read_current(&self, name: &KeyName) -> Result<StoredCurrent> {
        self.read_current_file(name)?
            .ok_or_else(|| Error::KeyNotFound {
                kid: format!("branch:{name}"),
                detail: format!("no branch key {name} in {}", self.dir.display()),
            })
    }

    async fn set_current(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        expected: Option<&StoredCurrent>,
    ) -> Result<()> {
        let path = self.name_dir(name).join(CURRENT_FILE);
        self.locked(name, || {
            let now = self.read_current_file(name)?;
            match (expected, &now) {
                (None, None) => {}
                (Some(expected), Some(now)) if expected.tag == now.tag => {}
                (None, Some(now)) => {
                    return Err(conflict(
                        path.display().to_string(),
                        format!("branch key {name} exists (current version {})", now.version),
                    ))
                }
                (_, now) => {
                    return Err(conflict(
                        path.display().to_string(),
                        format!(
                            "another rotation moved it first (now {})",
                            now.as_ref()
                                .map_or("missing".to_owned(), |c| c.version.to_string())
                        ),
                    ))
                }
            }
            write_file_atomically(&path, format!("{version}\n").as_bytes(), FILE_MODE)
        })
    }

    async fn names(&self) -> Result<Vec<KeyName>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| Error::io_at(&self.dir, e))?;
        let mut names: Vec<KeyName> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| KeyName::new(entry.file_name().to_str()?).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    async fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>> {
        let dir = self.name_dir(name);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io_at(&dir, e)),
        };
        let mut versions: Vec<KeyVersion> = entries
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name();
                KeyVersion::new(file.to_str()?.strip_suffix(RECORD_SUFFIX)?).ok()
            })
            .collect();
        versions.sort();
        Ok(versions)
    }
}
