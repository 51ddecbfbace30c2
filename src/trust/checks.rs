//! The checks made on an open descriptor's `fstat`: owner, mode, type and links.

use std::path::Path;

use rustix::fs::{FileType, Stat};

use super::TrustedKind;
use crate::error::{Error, Result};

pub(super) fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn untrusted(path: &Path, reason: String) -> Error {
    Error::UntrustedFile {
        path: path.to_path_buf(),
        reason,
    }
}

fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

fn type_name(kind: FileType) -> &'static str {
    match kind {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "of an unknown type",
    }
}

/// Root's or the user's: nobody else can change its mode or contents.
fn check_owner(path: &Path, stat: &Stat, what: &str) -> Result<()> {
    let (owner, me) = (stat.st_uid, me());
    if owner == me || owner == 0 {
        return Ok(());
    }
    Err(untrusted(
        path,
        format!(
            "this {what} is owned by uid {owner}, not by you (uid {me}) or root, so its owner \
             can change it; use your own copy, or `chown {me} {}`",
            path.display()
        ),
    ))
}

fn writers(mode: u32) -> &'static str {
    match mode & 0o022 {
        0o020 => "its group",
        0o002 => "everyone",
        _ => "its group and everyone",
    }
}

/// A directory on the way to a trusted file: the user's or root's, not writable by others
/// unless it is root's and sticky (as `/tmp`: nobody can rename another user's entries).
pub(super) fn check_ancestor(path: &Path, stat: &Stat) -> Result<()> {
    check_owner(path, stat, "directory on the path")?;
    let mode = stat.st_mode & 0o7777;
    let sticky_root = mode & 0o1000 != 0 && stat.st_uid == 0;
    if mode & 0o022 != 0 && !sticky_root {
        return Err(untrusted(
            path,
            format!(
                "this directory on the path is writable by {} (mode {mode:04o}), so they can \
                 replace what lies below it; fix it with `chmod go-w {}`",
                writers(mode),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A directory inside a keyring or store: the user's or root's and writable by nobody else
/// (no sticky exception: nothing inside a store is anyone else's).
pub(super) fn check_inner_dir(path: &Path, stat: &Stat, what: &str) -> Result<()> {
    if file_type(stat) != FileType::Directory {
        return Err(untrusted(
            path,
            format!(
                "this {what} is {}, not a directory",
                type_name(file_type(stat))
            ),
        ));
    }
    check_owner(path, stat, what)?;
    check_not_writable(path, stat, what)
}

fn check_not_writable(path: &Path, stat: &Stat, what: &str) -> Result<()> {
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "this {what} is writable by {} (mode {mode:04o}), so they can change it; fix \
                 it with `chmod go-w {}`",
                writers(mode),
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The file at the end of a trusted path, as its `kind` requires.
pub(super) fn check_final(path: &Path, stat: &Stat, kind: TrustedKind, what: &str) -> Result<()> {
    let found = file_type(stat);
    let wanted = if kind == TrustedKind::Directory {
        FileType::Directory
    } else {
        FileType::RegularFile
    };
    if found != wanted {
        return Err(untrusted(
            path,
            format!(
                "this {what} is {}, not {}; only that is read",
                type_name(found),
                type_name(wanted)
            ),
        ));
    }
    check_owner(path, stat, what)?;
    check_not_writable(path, stat, what)?;
    if kind == TrustedKind::Secret {
        check_private(path, stat, what)?;
    }
    if matches!(kind, TrustedKind::Secret | TrustedKind::Record) && stat.st_nlink != 1 {
        let (links, shown) = (stat.st_nlink, path.display());
        return Err(untrusted(
            path,
            format!(
                "this {what} has {links} hard links, so it can be changed under another \
                 name, perhaps by someone else; keep one copy: \
                 `cp -p {shown} {shown}.new && mv {shown}.new {shown}`"
            ),
        ));
    }
    Ok(())
}

/// ssh's rule for private keys: nobody else may read a secret. A root-owned secret may be
/// readable by its group (how a service account is given a root-managed secret).
fn check_private(path: &Path, stat: &Stat, what: &str) -> Result<()> {
    let mode = stat.st_mode & 0o777;
    let allowed = if stat.st_uid == 0 && me() != 0 {
        0o740
    } else {
        0o700
    };
    if mode & !allowed != 0 {
        return Err(untrusted(
            path,
            format!(
                "this {what} is readable by other users (mode {mode:04o}), so its secret is \
                 not yours alone; fix it with `chmod go-rwx {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}
