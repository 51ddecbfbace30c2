//! A trusted directory held open: everything inside it is reached from its descriptor,
//! never by a path again, and nothing inside may be a symlink or a hard link.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use super::atomic::AtomicFile;
use super::checks::{check_final, check_inner_dir, me};
use super::temp_names::parse_temp_name;
use super::walk::open_no_follow;
use super::{too_large, TrustedFile, TrustedKind};
use crate::error::{Error, Result};

/// A directory checked once, then used through its descriptor (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct TrustedDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

fn io(path: &Path, errno: Errno) -> Error {
    Error::io_at(path, errno.into())
}

impl TrustedDir {
    /// Opens the directory the operator named at `path`, every part of it checked.
    pub(crate) fn open(path: &Path, what: &'static str) -> Result<Self> {
        let file = TrustedFile::open(path, TrustedKind::Directory, what)?.into_file();
        Ok(Self {
            fd: Arc::new(OwnedFd::from(file)),
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn shown(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The directory `name` inside, checked (a real directory only its user can change);
    /// `None` when there is none, unless `create` makes it (mode 0700).
    pub(crate) fn subdir(
        &self,
        name: &str,
        what: &'static str,
        create: bool,
    ) -> Result<Option<TrustedDir>> {
        let shown = self.shown(OsStr::new(name));
        if create {
            match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io(&shown, e)),
            }
        }
        let fd = match open_no_follow(
            &self.fd,
            OsStr::new(name),
            &shown,
            TrustedKind::Directory,
            what,
        ) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(&shown, e))?;
        check_inner_dir(&shown, &stat, what)?;
        Ok(Some(TrustedDir {
            fd: Arc::new(fd),
            path: shown,
        }))
    }

    /// Reads the file `name` inside as a `kind` of at most `limit` bytes; `None` when there
    /// is none. A symlink, a hard link, a FIFO or a device is refused without being read.
    pub(crate) fn read(
        &self,
        name: &str,
        kind: TrustedKind,
        what: &str,
        limit: usize,
    ) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let shown = self.shown(OsStr::new(name));
        let fd = match open_no_follow(&self.fd, OsStr::new(name), &shown, kind, what) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(&shown, e))?;
        check_final(&shown, &stat, kind, what)?;
        if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > limit as u64 {
            return Err(too_large(&shown, what, limit));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        File::from(fd)
            .take(cap)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io_at(&shown, e))?;
        if bytes.len() > limit {
            return Err(too_large(&shown, what, limit));
        }
        Ok(Some(bytes))
    }

    fn atomic_file(&self, name: &str, mode: u32) -> Result<AtomicFile> {
        AtomicFile::in_dir(
            Arc::clone(&self.fd),
            self.path.clone(),
            OsStr::new(name),
            mode,
        )
    }

    /// Creates `name` with `bytes`, failing with [`std::io::ErrorKind::AlreadyExists`] if
    /// it exists; never half-written under its name ([`AtomicFile::commit_new`]).
    pub(crate) fn create_file(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let mut file = self.atomic_file(name, mode)?;
        file.write_all(bytes)
            .map_err(|e| Error::io_at(file.temp_path(), e))?;
        file.commit_new()
    }

    /// Replaces `name` with `bytes` atomically ([`AtomicFile::commit`]): a crash leaves the
    /// old file or the new one.
    pub(crate) fn replace_file(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let mut file = self.atomic_file(name, mode)?;
        file.write_all(bytes)
            .map_err(|e| Error::io_at(file.temp_path(), e))?;
        file.commit()
    }

    /// Holds an exclusive lock on the file `name` (created if missing) until the returned
    /// file is dropped. A symlink (even a dangling one) is refused, never created through.
    pub(crate) fn lock(&self, name: &str) -> Result<File> {
        let shown = self.shown(OsStr::new(name));
        let fd = rustix::fs::openat(
            &*self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| match e {
            Errno::LOOP => super::walk::symlink_refused(&shown, "lock file"),
            other => io(&shown, other),
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| io(&shown, e))?;
        check_final(&shown, &stat, TrustedKind::Record, "lock file")?;
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&shown, e))?;
        Ok(File::from(fd))
    }

    /// The entries inside (not `.` and `..`), with their types as the directory says
    /// (a symlink is a symlink: nothing is followed).
    pub(crate) fn entries(&self) -> Result<Vec<(String, FileType)>> {
        let dir = rustix::fs::Dir::read_from(self.fd.as_fd()).map_err(|e| io(&self.path, e))?;
        let mut found = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io(&self.path, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            // Names that are not UTF-8 are no key's, version's or record's names.
            if let Ok(name) = std::str::from_utf8(name) {
                found.push((name.to_owned(), entry.file_type()));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Removes the temporary files left here by a write of ours that was killed: only
    /// those provably ours (our exact name pattern, a process that is gone, a regular file
    /// of this user, not a link to anything but its own target). Returns their names.
    pub(crate) fn sweep_temps(&self) -> Vec<String> {
        let Ok(entries) = self.entries() else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for (name, _) in entries {
            let Some((target, pid)) = parse_temp_name(&name) else {
                continue;
            };
            if pid == std::process::id() || !process_is_gone(pid) {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(&*self.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let regular = FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile;
            // A kill between the link and the unlink leaves the temporary name as a second
            // link of the target itself: removing that name loses nothing.
            let own_link = stat.st_nlink == 1
                || rustix::fs::statat(&*self.fd, target, AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|t| t.st_ino == stat.st_ino && t.st_dev == stat.st_dev);
            if regular
                && stat.st_uid == me()
                && own_link
                && rustix::fs::unlinkat(&*self.fd, name.as_str(), AtFlags::empty()).is_ok()
            {
                removed.push(name);
            }
        }
        removed
    }
}

/// Only where `/proc` can tell; elsewhere no process is known to be gone.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Creates `dir` and its missing parents, mode 0700: only the user may list or change it.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io_at(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    }

    fn mode_of(path: &Path) -> Option<u32> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok()
    }

    fn trusted(dir: &tempfile::TempDir) -> TrustedDir {
        TrustedDir::open(dir.path(), "test directory").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let trusted = trusted(&dir);
        trusted
            .replace_file("f", b"one", 0o600)
            .unwrap_or_else(|e| panic!("{e}"));
        trusted
            .replace_file("f", b"two", 0o600)
            .unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"two"[..]));
        assert_eq!(names_in(dir.path()), vec![OsString::from("f")]);
        assert_eq!(mode_of(&path), Some(0o600));
    }

    #[test]
    fn creates_once_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let trusted = trusted(&dir);
        let path = dir.path().join("v1.cmke");
        trusted
            .create_file("v1.cmke", b"first", 0o600)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"first"[..]));
        assert_eq!(mode_of(&path), Some(0o600));
        // A second create of the same name fails as "exists" and changes nothing.
        match trusted.create_file("v1.cmke", b"second", 0o600) {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"first"[..]));
        assert_eq!(names_in(dir.path()), vec![OsString::from("v1.cmke")]);
    }

    #[test]
    fn a_dangling_lock_symlink_is_refused_and_its_target_never_created() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = dir.path().join("created-by-attacker");
        std::os::unix::fs::symlink(&target, dir.path().join(".lock"))
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = trusted(&dir).lock(".lock").expect_err("refused");
        assert!(refused.to_string().contains("symlink"), "{refused}");
        assert!(!target.exists());
    }

    #[test]
    fn temporary_files_of_a_dead_writer_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let trusted = trusted(&dir);
        // pid 4194304 is above the kernel's largest pid: never a live process.
        let dead = ".current.cmke-tmp-4194304-1f-0";
        let live = format!(".current.cmke-tmp-{}-1f-0", std::process::id());
        let foreign = ".current.cmke-tmp-x";
        for name in [dead, live.as_str(), foreign] {
            std::fs::write(dir.path().join(name), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(trusted.sweep_temps(), vec![dead.to_owned()]);
        assert!(!dir.path().join(dead).exists());
        assert!(dir.path().join(&live).exists() && dir.path().join(foreign).exists());
    }

    #[test]
    fn reads_are_bounded_and_refuse_fifos_links_and_devices() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let trusted = trusted(&dir);
        std::fs::write(dir.path().join("big"), vec![0u8; 100]).unwrap_or_else(|e| panic!("{e}"));
        let too_big = trusted
            .read("big", TrustedKind::Record, "record", 99)
            .expect_err("over the limit");
        assert!(too_big.to_string().contains("larger than 99"), "{too_big}");
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(trusted
            .read("zero", TrustedKind::Record, "record", 99)
            .is_err());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("fifo").as_path(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let fifo = trusted
            .read("fifo", TrustedKind::Record, "record", 99)
            .expect_err("a FIFO is no record");
        assert!(fifo.to_string().contains("FIFO"), "{fifo}");
        std::fs::hard_link(dir.path().join("big"), dir.path().join("twin"))
            .unwrap_or_else(|e| panic!("{e}"));
        let linked = trusted
            .read("twin", TrustedKind::Record, "record", 1000)
            .expect_err("two links");
        assert!(linked.to_string().contains("hard links"), "{linked}");
        assert!(trusted
            .read("missing", TrustedKind::Record, "record", 9)
            .is_ok_and(|r| r.is_none()));
    }
}
