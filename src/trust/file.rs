//! One trusted file, opened by descriptor after every part of its path was checked.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::TrustedKind;
use crate::error::{Error, Result};

/// A file or directory opened only after every part of its path was checked (see the
/// [module docs](crate::trust)). Read it through this value: the checks hold for this open
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
        let file = super::walk::open(path, kind, what)?;
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
            "this {what} is larger than {limit} bytes, which no genuine one is, so it is not \
             read; move it aside (`mv {0} {0}.suspect`) and restore the genuine one",
            path.display()
        ),
    }
}

/// Checks that `path` is one the user can trust (see the [module docs](crate::trust)): a
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
/// assert!(cmk_envelope::trust::check_file_trust(&pin, "PIN file").is_err());
/// std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600))?;
/// # }
/// cmk_envelope::trust::check_file_trust(&pin, "PIN file")?;
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn with_mode(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        chmod(&path, mode);
        (dir, path)
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn group_or_world_writable_files_are_refused_with_the_fix() {
        for (mode, who) in [
            (0o620, "its group"),
            (0o602, "everyone"),
            (0o666, "its group and everyone"),
        ] {
            let (_dir, path) = with_mode(mode);
            let error = check_file_trust(&path, "PIN file").expect_err("refused");
            let text = error.to_string();
            assert!(
                text.contains(who) && text.contains("chmod go-w") && text.contains("PIN file"),
                "{text}"
            );
        }
        for mode in [0o600, 0o644, 0o755, 0o400] {
            let (_dir, path) = with_mode(mode);
            check_file_trust(&path, "PIN file").expect("accepted");
        }
    }

    #[test]
    fn files_of_another_user_are_refused_unless_root_owns_them() {
        let (_dir, path) = with_mode(0o600);
        if !is_root() {
            // Only root can give a file away; as a normal user our own file must pass.
            check_file_trust(&path, "key file").expect("own file");
            return;
        }
        std::os::unix::fs::chown(&path, Some(4242), None).expect("chown");
        let text = check_file_trust(&path, "key file")
            .expect_err("refused")
            .to_string();
        assert!(
            text.contains("uid 4242") && text.contains("chown"),
            "{text}"
        );
        std::os::unix::fs::chown(&path, Some(0), None).expect("chown back");
        check_file_trust(&path, "key file").expect("root-owned");
    }

    #[test]
    fn an_ancestor_others_can_write_is_refused_unless_it_is_roots_and_sticky() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::write(open.join("cmke.toml"), "").expect("write");
        chmod(&open, 0o777);
        let refused = TrustedFile::open(&open.join("cmke.toml"), TrustedKind::Config, "config")
            .expect_err("refused");
        assert!(
            matches!(&refused, Error::UntrustedFile { path, .. } if path == &open),
            "{refused}"
        );
        chmod(&open, 0o1777);
        let sticky = TrustedFile::open(&open.join("cmke.toml"), TrustedKind::Config, "config");
        // Like /tmp: a sticky directory is safe only when root owns it.
        assert_eq!(sticky.is_ok(), is_root(), "{sticky:?}");
    }

    #[test]
    fn a_symlink_on_the_way_is_followed_only_when_root_or_the_user_made_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        std::fs::write(real.join("pin"), "1234").expect("write");
        chmod(&real.join("pin"), 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("real", &link).expect("symlink");
        let text = TrustedFile::open(&link.join("pin"), TrustedKind::Secret, "PIN file")
            .expect("followed")
            .read_text(64)
            .expect("read");
        assert_eq!(text.as_str(), "1234");
        // `..` after a symlink is the parent of where the link leads.
        std::fs::create_dir(real.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("real/sub", dir.path().join("deep")).expect("symlink");
        TrustedFile::open(
            &dir.path().join("deep/../pin"),
            TrustedKind::Secret,
            "PIN file",
        )
        .expect("physical parent");
        if is_root() {
            std::os::unix::fs::lchown(&link, Some(4242), None).expect("lchown");
            let refused = TrustedFile::open(&link.join("pin"), TrustedKind::Secret, "PIN file")
                .expect_err("another user's symlink");
            assert!(refused.to_string().contains("uid 4242"), "{refused}");
        }
    }

    #[test]
    fn secrets_others_can_read_or_with_two_links_are_refused() {
        let (dir, path) = with_mode(0o644);
        let refused = TrustedFile::open(&path, TrustedKind::Secret, "key file")
            .expect_err("readable by others");
        assert!(refused.to_string().contains("chmod go-rwx"), "{refused}");
        chmod(&path, 0o600);
        std::fs::hard_link(&path, dir.path().join("twin")).expect("link");
        let refused =
            TrustedFile::open(&path, TrustedKind::Secret, "key file").expect_err("two links");
        assert!(refused.to_string().contains("2 hard links"), "{refused}");
        // A configuration file may have links: it holds no secret.
        TrustedFile::open(&path, TrustedKind::Config, "config").expect("config");
    }

    #[test]
    fn a_module_is_loaded_from_the_descriptor_that_was_checked() {
        let (dir, path) = with_mode(0o755);
        let checked = TrustedFile::open(&path, TrustedKind::Module, "module").expect("open");
        let by_descriptor = checked.descriptor_path().expect("/proc/self/fd");
        // Swapped after the check: the descriptor still reaches the file that was checked.
        std::fs::write(dir.path().join("evil"), b"evil").expect("write");
        std::fs::rename(dir.path().join("evil"), &path).expect("swap");
        assert_eq!(std::fs::read(&by_descriptor).expect("read"), b"x");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo.as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let refused = TrustedFile::open(&fifo, TrustedKind::Config, "config").expect_err("a FIFO");
        assert!(refused.to_string().contains("FIFO"), "{refused}");
    }
}
