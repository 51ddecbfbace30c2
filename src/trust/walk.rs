//! Walking a path from `/`, one component at a time, by directory descriptors.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use super::checks::{check_ancestor, check_final, me};
use super::TrustedKind;
use crate::error::{Error, Result};

/// As many symlinks as the kernel follows in one path.
const MAX_SYMLINKS: usize = 40;

/// How directories on the way are opened: for their descriptor only, so that a directory
/// the user may enter but not list (mode 0711) is no obstacle.
#[cfg(any(target_os = "linux", target_os = "android"))]
const WALK: OFlags = OFlags::PATH;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const WALK: OFlags = OFlags::RDONLY;

fn io(path: &Path, errno: Errno) -> Error {
    Error::io_at(path, errno.into())
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Opens the file at the end of `path` after checking every directory on the way (see the
/// module docs of `trust`).
pub(super) fn open(path: &Path, kind: TrustedKind, what: &str) -> Result<File> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io_at(path, e))?
            .join(path)
    };
    let root = rustix::fs::openat(
        CWD,
        "/",
        WALK | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(Path::new("/"), e))?;
    check_ancestor(
        Path::new("/"),
        &rustix::fs::fstat(&root).map_err(|e| io(Path::new("/"), e))?,
    )?;
    let mut queue = components(&absolute);
    if queue.is_empty() {
        // `/` itself.
        return open_last(&root, OsStr::new("."), Path::new("/"), kind, what);
    }
    // Directories from `/` to the one being looked in, and the path they spell.
    let mut stack: Vec<OwnedFd> = vec![root];
    let mut walked = PathBuf::from("/");
    let mut links = 0_usize;
    while let Some(name) = queue.pop_front() {
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
                walked.pop();
            }
            continue;
        }
        let Some(here) = stack.last() else {
            return Err(io(&walked, Errno::NOENT));
        };
        let shown = walked.join(&name);
        let last = queue.is_empty();
        let stat = match rustix::fs::statat(here, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(e) => return Err(io(&shown, e)),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
            // The link sits in a directory already checked; it must be root's or the
            // user's too (in a sticky directory anyone may make one).
            let owner = stat.st_uid;
            if owner != 0 && owner != me() {
                return Err(Error::UntrustedFile {
                    path: shown,
                    reason: format!(
                        "this symlink on the path is owned by uid {owner}, not by you or \
                         root, so its owner chooses where it leads; name the real path"
                    ),
                });
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(io(&shown, Errno::LOOP));
            }
            let target = rustix::fs::readlinkat(here, name.as_os_str(), Vec::new())
                .map_err(|e| io(&shown, e))?;
            let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.truncate(1);
                walked = PathBuf::from("/");
            }
            for part in components(&target).into_iter().rev() {
                queue.push_front(part);
            }
            continue;
        }
        if last {
            return open_last(here, &name, &shown, kind, what);
        }
        let dir = rustix::fs::openat(
            here,
            name.as_os_str(),
            WALK | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&shown, e))?;
        check_ancestor(&shown, &rustix::fs::fstat(&dir).map_err(|e| io(&shown, e))?)?;
        stack.push(dir);
        walked = shown;
    }
    // The path ended in `..`: what it names is the directory reached.
    let Some(here) = stack.last() else {
        return Err(io(&walked, Errno::NOENT));
    };
    open_last(here, OsStr::new("."), &walked, kind, what)
}

/// Opens `name` in `dir` without following a symlink, and checks what was opened.
fn open_last(
    dir: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    kind: TrustedKind,
    what: &str,
) -> Result<File> {
    let fd = open_no_follow(dir, name, shown, kind, what)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| io(shown, e))?;
    check_final(shown, &stat, kind, what)?;
    Ok(File::from(fd))
}

/// `openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)`; a symlink is
/// refused with what to do instead.
pub(super) fn open_no_follow(
    dir: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    kind: TrustedKind,
    what: &str,
) -> Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    if kind == TrustedKind::Directory {
        flags |= OFlags::DIRECTORY;
    }
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP => symlink_refused(shown, what),
        Errno::NOTDIR if kind == TrustedKind::Directory => {
            match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                    symlink_refused(shown, what)
                }
                _ => io(shown, e),
            }
        }
        other => io(shown, other),
    })
}

pub(super) fn symlink_refused(path: &Path, what: &str) -> Error {
    Error::UntrustedFile {
        path: path.to_path_buf(),
        reason: format!(
            "this {what} is a symlink, and only real files are trusted here, so that nothing \
             outside decides what is read; name the file itself (`readlink -f {}`)",
            path.display()
        ),
    }
}
