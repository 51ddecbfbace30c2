//! The crate's one atomic writer: a file that appears under its name complete, or not at all.
//!
//! The new content goes to a temporary file beside the target, named so that a later run
//! can prove a leftover is ours ([`temp_name`], [`parse_temp_name`](super::parse_temp_name)).
//! Committing syncs it, renames it over the target (or links it to a new name) and syncs
//! the directory, so a crash leaves the old file or the new one. Every step goes through the
//! directory's descriptor, opened once: a directory renamed meanwhile cannot redirect it.
//! The key stores, the keyring and `cmke` all write through this type.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::temp_names::temp_name;
use crate::error::{Error, Result};

/// A new file being written beside its target; removed on drop unless committed.
///
/// ```
/// use std::io::Write;
/// use cmk_envelope::trust::AtomicFile;
///
/// let dir = tempfile::tempdir()?;
/// let target = dir.path().join("report.txt");
/// let mut file = AtomicFile::create(&target, 0o600)?;
/// file.write_all(b"all or nothing")?;
/// assert!(!target.exists()); // not under its name until committed
/// file.commit()?;
/// assert_eq!(std::fs::read(&target)?, b"all or nothing");
/// # Ok::<(), cmk_envelope::Error>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    dir: Arc<OwnedFd>,
    dir_path: PathBuf,
    target: OsString,
    temp: OsString,
    file: File,
    armed: bool,
}

fn io(path: &Path, errno: Errno) -> Error {
    Error::io_at(path, errno.into())
}

impl AtomicFile {
    /// Starts a file that will appear at `target` with permission bits `mode`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be opened or the temporary file created.
    pub fn create(target: &Path, mode: u32) -> Result<Self> {
        let (dir_path, name) = split(target)?;
        let dir = rustix::fs::open(
            &dir_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&dir_path, e))?;
        Self::in_dir(Arc::new(dir), dir_path, &name, mode)
    }

    /// Starts a file named `target` inside the directory held open as `dir` (shown as
    /// `dir_path` in errors).
    pub(crate) fn in_dir(
        dir: Arc<OwnedFd>,
        dir_path: PathBuf,
        target: &OsStr,
        mode: u32,
    ) -> Result<Self> {
        let shown_target = target.to_string_lossy();
        for attempt in 0u32..100 {
            let temp = OsString::from(temp_name(&shown_target, attempt));
            match rustix::fs::openat(
                &*dir,
                temp.as_os_str(),
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(fd) => {
                    return Ok(Self {
                        dir,
                        dir_path,
                        target: target.to_owned(),
                        temp,
                        file: File::from(fd),
                        armed: true,
                    })
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io(&dir_path.join(&temp), e)),
            }
        }
        Err(io(&dir_path.join(target), Errno::EXIST))
    }

    /// Gives the new file the owner, group and permission bits of `original` (the file it
    /// replaces), so that a replacement changes nothing but the content.
    ///
    /// # Errors
    /// [`Error::Io`] when the owner cannot be kept (run as the file's owner or as root).
    pub fn keep_owner_and_mode(&self, original: &Metadata) -> Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let shown = self.temp_path();
        let mine = self.file.metadata().map_err(|e| Error::io_at(&shown, e))?;
        if (mine.uid(), mine.gid()) != (original.uid(), original.gid()) {
            std::os::unix::fs::fchown(&self.file, Some(original.uid()), Some(original.gid()))
                .map_err(|e| {
                    Error::io_at(
                        &shown,
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "cannot keep its owner and group ({}:{}) in the replacement \
                                 ({e}); run as its owner or as root",
                                original.uid(),
                                original.gid()
                            ),
                        ),
                    )
                })?;
        }
        // After chown, which clears set-ID bits; those are not kept.
        self.file
            .set_permissions(std::fs::Permissions::from_mode(original.mode() & 0o1777))
            .map_err(|e| Error::io_at(&shown, e))
    }

    /// The open temporary file, for reading back what was written.
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the temporary file is now.
    #[must_use]
    pub fn temp_path(&self) -> PathBuf {
        self.dir_path.join(&self.temp)
    }

    /// The path the file appears at when committed.
    #[must_use]
    pub fn target_path(&self) -> PathBuf {
        self.dir_path.join(&self.target)
    }

    /// The caller moved the temporary file away itself (for example by exchanging it with
    /// the target): its name no longer holds this file, so it is not removed on drop.
    pub fn temporary_moved_away(&mut self) {
        self.armed = false;
    }

    fn sync_file(&self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io_at(self.temp_path(), e))
    }

    /// Syncs the directory, so that a rename in it survives a crash: for a caller that
    /// moved the file itself ([`AtomicFile::temporary_moved_away`]).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn sync_directory(&self) -> Result<()> {
        rustix::fs::fsync(&*self.dir).map_err(|e| io(&self.dir_path, e))
    }

    /// Puts the file at its target, replacing what is there: sync, rename, sync of the
    /// directory. A crash leaves the old file or the new one.
    ///
    /// # Errors
    /// [`Error::Io`]; the temporary file is removed and the target left as it was.
    pub fn commit(mut self) -> Result<()> {
        self.sync_file()?;
        rustix::fs::renameat(
            &*self.dir,
            self.temp.as_os_str(),
            &*self.dir,
            self.target.as_os_str(),
        )
        .map_err(|e| io(&self.target_path(), e))?;
        self.armed = false;
        self.sync_directory()
    }

    /// Puts the file at its target only if nothing is there (a hard link, which fails if the
    /// name exists; where a file system has none, the name is created exclusively and
    /// written in place).
    ///
    /// # Errors
    /// [`Error::Io`] of kind [`std::io::ErrorKind::AlreadyExists`] when the target exists.
    pub fn commit_new(self) -> Result<()> {
        self.sync_file()?;
        let linked = rustix::fs::linkat(
            &*self.dir,
            self.temp.as_os_str(),
            &*self.dir,
            self.target.as_os_str(),
            AtFlags::empty(),
        );
        match linked {
            Ok(()) => {}
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::NOSYS) => self.write_new_in_place()?,
            Err(e) => return Err(io(&self.target_path(), e)),
        }
        self.sync_directory()
    }

    /// No hard links here: copies the temporary file's content to the target, created
    /// exclusively; a failed copy removes the half-written target.
    fn write_new_in_place(&self) -> Result<()> {
        use std::io::{Read, Seek};
        let shown = self.target_path();
        let fd = rustix::fs::openat(
            &*self.dir,
            self.target.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(
                self.file
                    .metadata()
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
                    .unwrap_or(0o600),
            ),
        )
        .map_err(|e| io(&shown, e))?;
        let mut out = File::from(fd);
        let mut source = &self.file;
        let copied = source
            .rewind()
            .and_then(|()| {
                let mut buf = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
                loop {
                    let n = source.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(buf.get(..n).unwrap_or_default())?;
                }
                Ok(())
            })
            .and_then(|()| out.sync_all());
        if let Err(e) = copied {
            let _ = rustix::fs::unlinkat(&*self.dir, self.target.as_os_str(), AtFlags::empty());
            return Err(Error::io_at(shown, e));
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Still armed: the temporary name holds this file (never committed, or committed
        // by a hard link), so the name goes.
        if self.armed {
            let _ = rustix::fs::unlinkat(&*self.dir, self.temp.as_os_str(), AtFlags::empty());
        }
    }
}

/// The directory (`.` for a bare name) and the file name of `target`.
fn split(target: &Path) -> Result<(PathBuf, OsString)> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::InvalidArgument(format!("{} names no file", target.display())))?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    Ok((dir.to_path_buf(), name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn temporary_names_parse_exactly() {
        use crate::trust::parse_temp_name;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.cmke");
        let temp = AtomicFile::create(&target, 0o600).expect("temp");
        let path = temp.temp_path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_temp_name(name), Some(("a.cmke", std::process::id())));
        for other in [
            ".a.cmke.tmp-123-ab-0",
            ".a.cmke.cmke-tmp-123-ab",
            ".a.cmke.cmke-tmp-x-ab-0",
            ".a.cmke.cmke-tmp-123-AB-0",
            ".a.cmke.cmke-tmp-123-ab-0-extra",
            "a.cmke.cmke-tmp-123-ab-0",
            "..cmke-tmp-123-ab-0",
        ] {
            assert_eq!(parse_temp_name(other), None, "{other}");
        }
        drop(temp);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a");
        let mut file = AtomicFile::create(&target, 0o600).expect("create");
        file.write_all(b"half").expect("write");
        drop(file);
        assert!(names_in(dir.path()).is_empty());
    }

    #[test]
    fn commit_replaces_and_commit_new_refuses_an_existing_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a");
        std::fs::write(&target, b"old").expect("old");
        let mut file = AtomicFile::create(&target, 0o600).expect("create");
        file.write_all(b"new").expect("write");
        file.commit().expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"new");

        let mut again = AtomicFile::create(&target, 0o600).expect("create");
        again.write_all(b"other").expect("write");
        let refused = again.commit_new().expect_err("exists");
        assert!(
            matches!(&refused, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{refused}"
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        assert_eq!(names_in(dir.path()), ["a"]);
    }

    #[test]
    fn a_replacement_keeps_the_mode_of_the_original() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("shared");
        std::fs::write(&target, b"old").expect("old");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let original = std::fs::metadata(&target).expect("meta");
        let mut file = AtomicFile::create(&target, 0o600).expect("create");
        file.keep_owner_and_mode(&original).expect("keep");
        file.write_all(b"new").expect("write");
        file.commit().expect("commit");
        let mode = std::fs::metadata(&target)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    }
}
