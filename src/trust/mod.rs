//! Trusting a path: a file or directory that decides which keys, services or code are used
//! is used only when every part of its path is the operator's, checked on the open file.
//!
//! The model is ssh's and sudo's:
//! - every ancestor directory up to `/` belongs to root or to the user running this
//!   process and is not writable by group or others, except a root-owned sticky directory
//!   such as `/tmp` (where nobody can rename or remove another user's entries);
//! - a symlink on the way is followed only when the link itself is root's or the user's
//!   (it sits in a directory already checked), and its target is checked the same way;
//! - the file at the end is opened with `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK` (a FIFO
//!   cannot block the open), then checked on the open descriptor with `fstat`: owner, mode,
//!   file type, and one link for secrets and records;
//! - that descriptor is what gets read: nothing is opened by its name a second time.
//!
//! Whoever can write a keyring, a branch store or a configuration file chooses the keys of
//! future objects, so each refusal names the file, what is wrong and the command that
//! fixes it. See `docs/FORMAT.md` for the layouts these checks guard.

#[cfg(unix)]
mod checks;
#[cfg(unix)]
mod dir;
#[cfg(unix)]
mod walk;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[cfg(unix)]
pub(crate) use dir::{create_private_dir, TrustedDir};

/// What a trusted path is for; it decides the checks made on the open descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedKind {
    /// A directory whose entries choose keys: a keyring, a branch key store.
    Directory,
    /// A regular file that chooses keys or services but holds no secret (a configuration
    /// file): the user's or root's, writable by nobody else.
    Config,
    /// Code loaded into the process (a PKCS#11 module): as [`TrustedKind::Config`].
    Module,
    /// A secret (a private key, a PIN, a client secret): as [`TrustedKind::Config`], and
    /// also readable by nobody else (ssh's rule for private keys; a root-owned file may be
    /// readable by its group) and with exactly one link.
    Secret,
    /// A record or pointer inside a store or keyring: as [`TrustedKind::Config`], with
    /// exactly one link.
    Record,
}

/// A file or directory opened only after every part of its path was checked (see the
/// [module docs](self)). Read it through this value: the checks hold for this open
/// descriptor, not for whatever the path names later.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use cmk_envelope::trust::{TrustedFile, TrustedKind};
/// let dir = tempfile::tempdir()?;
/// let pin = dir.path().join("pin");
/// std::fs::write(&pin, "1234\n")?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644))?;
/// // Readable by others: refused, with the fix.
/// let refused = TrustedFile::open(&pin, TrustedKind::Secret, "PIN file").unwrap_err();
/// assert!(refused.to_string().contains("chmod go-rwx"));
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600))?;
/// # }
/// let text = TrustedFile::open(&pin, TrustedKind::Secret, "PIN file")?.read_bounded(64)?;
/// assert_eq!(&text[..], b"1234\n");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TrustedFile {
    file: File,
    path: PathBuf,
    what: String,
}

impl TrustedFile {
    /// Opens `path` as a `kind`, `what` naming it in messages ("PIN file", "keyring
    /// directory"). A relative path is taken from the working directory, whose ancestors
    /// are checked like any other.
    ///
    /// # Errors
    /// [`Error::UntrustedFile`] naming the file (or the ancestor) at fault, what is wrong
    /// and the command that fixes it; [`Error::Io`] when it cannot be examined (a missing
    /// file is [`std::io::ErrorKind::NotFound`]).
    pub fn open(path: &Path, kind: TrustedKind, what: &str) -> Result<Self> {
        #[cfg(unix)]
        let file = walk::open(path, kind, what)?;
        #[cfg(not(unix))]
        let file = {
            // No owner and mode bits to read here; Windows ACLs are the administrator's.
            let _ = kind;
            File::open(path).map_err(|e| Error::io_at(path, e))?
        };
        Ok(Self {
            file,
            path: path.to_path_buf(),
            what: what.to_owned(),
        })
    }

    /// The path it was opened by, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (a directory for [`TrustedKind::Directory`]).
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open file, for a caller that reads it itself.
    #[must_use]
    pub fn into_file(self) -> File {
        self.file
    }

    /// Reads the whole file, refusing one of more than `limit` bytes without reading past
    /// the limit (a file that grows, a device, a huge planted file cost at most `limit`).
    /// The buffer is wiped when dropped: a secret read this way leaves no copy behind.
    ///
    /// # Errors
    /// [`Error::UntrustedFile`] for a file over the limit; [`Error::Io`].
    pub fn read_bounded(self, limit: usize) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        (&self.file)
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io_at(&self.path, e))?;
        if bytes.len() > limit {
            return Err(too_large(&self.path, &self.what, limit));
        }
        Ok(bytes)
    }

    /// Reads the whole file as UTF-8 text, as [`TrustedFile::read_bounded`].
    ///
    /// # Errors
    /// As [`TrustedFile::read_bounded`]; [`Error::InvalidArgument`] for text that is not
    /// UTF-8.
    pub fn read_text(self, limit: usize) -> Result<zeroize::Zeroizing<String>> {
        let (path, what) = (self.path.clone(), self.what.clone());
        let mut bytes = self.read_bounded(limit)?;
        let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
            let mut wasted = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut wasted);
            Error::InvalidArgument(format!("{}: this {what} is not UTF-8 text", path.display()))
        })?;
        Ok(zeroize::Zeroizing::new(text))
    }

    /// A path that names this open descriptor (`/proc/self/fd/N`), for a loader that takes
    /// only a path (`dlopen`): it reaches the file that was checked, whatever the original
    /// path names by then. Keep `self` alive until the loader returns.
    ///
    /// # Errors
    /// [`Error::UntrustedFile`] where the system has no `/proc/self/fd`: loading by the
    /// original path again would reopen the race the check closed, so it is refused.
    pub fn descriptor_path(&self) -> Result<PathBuf> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd_dir = Path::new("/proc/self/fd");
            if fd_dir.is_dir() {
                return Ok(fd_dir.join(self.file.as_raw_fd().to_string()));
            }
        }
        Err(Error::UntrustedFile {
            path: self.path.clone(),
            reason: format!(
                "this {} can be loaded only from its checked descriptor (/proc/self/fd), \
                 which this system does not offer; loading it by its path again could load \
                 another file",
                self.what
            ),
        })
    }
}

pub(crate) fn too_large(path: &Path, what: &str, limit: usize) -> Error {
    Error::UntrustedFile {
        path: path.to_path_buf(),
        reason: format!(
            "this {what} is larger than {limit} bytes, which no genuine one is; it is not read"
        ),
    }
}

/// Checks that `path` is one the user can trust (see the [module docs](self)): a
/// directory or regular file whose every ancestor, and itself, belong to the user or root
/// and are not writable by group or others. `what` names it in messages.
///
/// This checks and closes; to read the file, open it with [`TrustedFile::open`] and read
/// that, so that what is read is what was checked.
///
/// # Errors
/// [`Error::UntrustedFile`] saying which file, what is wrong and the command that fixes
/// it; [`Error::Io`] when the file cannot be examined.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let pin = dir.path().join("pin");
/// std::fs::write(&pin, "1234")?;
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o666))?;
/// assert!(cmk_envelope::check_file_trust(&pin, "PIN file").is_err());
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600))?;
/// # }
/// cmk_envelope::check_file_trust(&pin, "PIN file")?;
/// # Ok(()) }
/// ```
pub fn check_file_trust(path: &Path, what: &str) -> Result<()> {
    let is_dir = std::fs::metadata(path)
        .map_err(|e| Error::io_at(path, e))?
        .is_dir();
    let kind = if is_dir {
        TrustedKind::Directory
    } else {
        TrustedKind::Config
    };
    TrustedFile::open(path, kind, what).map(drop)
}
