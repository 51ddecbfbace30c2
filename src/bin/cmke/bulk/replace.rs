//! Re-wrapping a file in place without ever mixing two objects: everything (header, body,
//! metadata) comes from one open file; the replacement is built from those bytes only; and
//! it takes the path's place only if the path still names that same, unchanged file.
//!
//! On Linux the last step is `renameat2(RENAME_EXCHANGE)`: the new file and the old swap
//! names atomically, and what was swapped out is checked to be the file that was read. If
//! an application replaced the object in the microseconds between the last check and the
//! swap, the swap is undone and the file reported as changed: nothing is lost. Elsewhere
//! (or on a file system without the exchange) a plain rename follows the check, and that
//! window stays open (README, "What cmke trusts").

use std::fs::{File, Metadata};
use std::io::Write;
use std::path::{Path, PathBuf};

use cmk_envelope::format::Header;
use cmk_envelope::Error;
use cmk_envelope::Result;

use crate::bulk::walk::Kind;
use crate::cli::io::io_error;
use cmk_envelope::trust::AtomicFile;

/// Bytes copied and compared per read.
const CHUNK: usize = 1 << 20;

/// What [`replace_header`] holds in memory at once: the headers and two copy buffers.
pub const REPLACE_MEMORY: u64 = 2 * CHUNK as u64 + (64 << 10);

/// What identifies a file and its content: device and inode, size, and the modification
/// and status-change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    pub fn of(meta: &Metadata) -> Self {
        let nanos = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| {
                    (
                        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        i64::from(d.subsec_nanos()),
                    )
                })
        };
        Self {
            dev: 0,
            ino: 0,
            len: meta.len(),
            mtime: nanos(meta.modified()),
            ctime: nanos(meta.created()),
        }
    }

    /// The same inode with the same content as far as size and mtime tell (a rename
    /// changes ctime, so it is left out here).
    fn same_content(&self, other: &Stamp) -> bool {
        (self.dev, self.ino, self.len, self.mtime) == (other.dev, other.ino, other.len, other.mtime)
    }
}

/// A CMKE file opened for re-wrapping: the open file, its header, and its metadata at the
/// moment it was opened.
pub struct OpenObject {
    pub path: PathBuf,
    file: File,
    meta: Metadata,
    stamp: Stamp,
    pub header: Header,
    pub header_bytes: Vec<u8>,
    /// A header file alone (its body kept elsewhere).
    pub detached: bool,
}

/// What a path turned out to hold.
pub enum Opened {
    Object(Box<OpenObject>),
    /// Not a CMKE file (no magic): left alone.
    Foreign,
    /// Starts like a CMKE file but its header does not parse.
    Corrupt(Error),
}

/// Opens `path` (never through a symlink) and reads its header from that open file.
///
/// # Errors
/// [`Error::Io`] when it cannot be opened or read, or is not a regular file.
pub fn open(path: &Path) -> Result<Opened> {
    let file = open_no_follow(path)?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let kind = crate::bulk::walk::read_kind(&file, meta.len()).map_err(|e| match e {
        Error::Io { path: None, source } => io_error(path, source),
        other => other,
    })?;
    match kind {
        Kind::Foreign { .. } => Ok(Opened::Foreign),
        Kind::Corrupt { error } => Ok(Opened::Corrupt(error)),
        Kind::Envelope {
            header,
            header_bytes,
            detached,
            ..
        } => Ok(Opened::Object(Box::new(OpenObject {
            path: path.to_path_buf(),
            stamp: Stamp::of(&meta),
            file,
            meta,
            header,
            header_bytes,
            detached,
        }))),
    }
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(|e| {
        let e = std::io::Error::from(e);
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            io_error(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "a symlink: re-wrap its target by its own path",
                ),
            )
        } else {
            io_error(path, e)
        }
    })
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| io_error(path, e))
}

/// Why a file is not re-wrapped even though it could be.
pub fn refusal(object: &OpenObject, break_hard_links: bool) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = object.meta.mode();
        if mode & 0o6000 != 0 {
            return Some(format!(
                "a set-user-ID or set-group-ID file (mode {:04o}): not re-wrapped; a CMKE \
                 object has no business being one, so look at it",
                mode & 0o7777
            ));
        }
        if object.meta.nlink() > 1 && !break_hard_links {
            return Some(format!(
                "has {} hard links: re-wrapping would give this name a new file and leave \
                 the other links under the old key; re-wrap with --break-hard-links to do so",
                object.meta.nlink()
            ));
        }
    }
    let _ = (object, break_hard_links);
    None
}

/// How a replacement ended, when it did not.
pub enum NotReplaced {
    /// The file changed (or was replaced or removed) while it was being re-wrapped: it was
    /// left as the application made it.
    Changed,
    /// The replacement would not keep what the file is (its owner): left alone.
    Refused(String),
    Failed(Error),
}

impl From<Error> for NotReplaced {
    fn from(e: Error) -> Self {
        NotReplaced::Failed(e)
    }
}

/// Replaces the object's file with `new_header` followed by its body, as read from the open
/// file, keeping owner, group and mode.
pub fn replace_header(
    object: &OpenObject,
    new_header: &[u8],
) -> std::result::Result<(), NotReplaced> {
    let path = &object.path;
    let mut temp = AtomicFile::create(path, 0o600)?;
    temp.keep_owner_and_mode(&object.meta)
        .map_err(|why| NotReplaced::Refused(why.to_string()))?;
    temp.write_all(new_header)
        .map_err(|e| io_error(&temp.temp_path(), e))?;
    let old_header_len = u64::try_from(object.header_bytes.len()).unwrap_or(u64::MAX);
    let new_header_len = u64::try_from(new_header.len()).unwrap_or(u64::MAX);
    if !object.detached {
        // Buffers no larger than the file: most objects are small.
        let chunk = usize::try_from(object.stamp.len)
            .unwrap_or(CHUNK)
            .clamp(1, CHUNK);
        copy_from(&object.file, old_header_len, &mut temp, chunk).map_err(|e| io_error(path, e))?;
        // Read back: the copy on disk must be the body that was read.
        if !same_tail(
            temp.file(),
            new_header_len,
            &object.file,
            old_header_len,
            chunk,
        )
        .map_err(|e| io_error(path, e))?
        {
            return Err(NotReplaced::Failed(Error::Backend {
                backend: "cmke",
                message: format!(
                    "{}: the copied body differs from the original; the file is left as it was",
                    crate::cli::escape::path(path)
                ),
            }));
        }
    }
    temp.file()
        .sync_all()
        .map_err(|e| io_error(&temp.temp_path(), e))?;
    // Written in place while we read? The open file's own metadata says so.
    let now = object.file.metadata().map_err(|e| io_error(path, e))?;
    if Stamp::of(&now) != object.stamp {
        return Err(NotReplaced::Changed);
    }
    // Replaced (renamed over) or removed meanwhile? The path says so.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if Stamp::of(&meta) == object.stamp => {}
        Ok(_) => return Err(NotReplaced::Changed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NotReplaced::Changed),
        Err(e) => return Err(io_error(path, e).into()),
    }
    swap_in(object, &mut temp)?;
    temp.sync_directory()?;
    Ok(())
}

/// Puts the temporary file at the object's path, if the path still holds the object.
#[cfg(target_os = "linux")]
fn swap_in(object: &OpenObject, temp: &mut AtomicFile) -> std::result::Result<(), NotReplaced> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;

    let path = &object.path;
    match renameat_with(CWD, temp.temp_path(), CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => {}
        // Removed since the check: the application deleted it; do not bring it back.
        Err(Errno::NOENT) => return Err(NotReplaced::Changed),
        // No exchange on this kernel or file system: the plain rename, after the check.
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => return rename_in(object, temp),
        Err(e) => return Err(io_error(path, e.into()).into()),
    }
    // The temporary name now holds what was at the path. The file that was read?
    let swapped_out = std::fs::symlink_metadata(temp.temp_path()).map(|m| Stamp::of(&m));
    if swapped_out.is_ok_and(|s| s.same_content(&object.stamp)) {
        // Yes: the old file goes. (Killed before this, the leftover is a CMKE file under a
        // temporary name beside its re-wrapped object, which the next run removes.)
        std::fs::remove_file(temp.temp_path()).map_err(|e| io_error(&temp.temp_path(), e))?;
        temp.temporary_moved_away();
        return Ok(());
    }
    // No: an application put a new version there in the last microseconds. Swap back.
    let ours = temp.file().metadata().map(|m| Stamp::of(&m));
    match renameat_with(CWD, temp.temp_path(), CWD, path, RenameFlags::EXCHANGE) {
        Ok(()) => {
            let back = std::fs::symlink_metadata(temp.temp_path()).map(|m| Stamp::of(&m));
            match (back, ours) {
                (Ok(back), Ok(ours)) if back.same_content(&ours) => Err(NotReplaced::Changed),
                _ => Err(kept_aside(path, temp)),
            }
        }
        Err(_) => Err(kept_aside(path, temp)),
    }
}

/// The swap back found yet another file: keep whatever the temporary name holds under a
/// name no run deletes, and say where.
#[cfg(target_os = "linux")]
fn kept_aside(path: &Path, temp: &mut AtomicFile) -> NotReplaced {
    let aside = temp.temp_path().with_file_name(format!(
        "{}.cmke-kept-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    temp.temporary_moved_away();
    let temp_path = temp.temp_path();
    let moved = std::fs::rename(&temp_path, &aside);
    NotReplaced::Failed(Error::Backend {
        backend: "cmke",
        message: format!(
            "{} changed twice while it was being re-wrapped; nothing was deleted: the file \
             that was displaced is at {}{}",
            crate::cli::escape::path(path),
            crate::cli::escape::path(if moved.is_ok() { &aside } else { &temp_path }),
            if moved.is_ok() {
                ""
            } else {
                " (could not be renamed)"
            }
        ),
    })
}

#[cfg(not(target_os = "linux"))]
fn swap_in(object: &OpenObject, temp: &mut AtomicFile) -> std::result::Result<(), NotReplaced> {
    rename_in(object, temp)
}

fn rename_in(object: &OpenObject, temp: &mut AtomicFile) -> std::result::Result<(), NotReplaced> {
    std::fs::rename(temp.temp_path(), &object.path).map_err(|e| io_error(&object.path, e))?;
    temp.temporary_moved_away();
    Ok(())
}

/// Reads `file` from `offset` on, without moving any shared position.
fn read_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            let at = offset.saturating_add(u64::try_from(filled).unwrap_or(u64::MAX));
            match file.read_at(rest, at) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file;
        f.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
            match f.read(rest)? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }
}

fn copy_from(source: &File, from: u64, to: &mut impl Write, chunk: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; chunk];
    let mut at = from;
    loop {
        let n = read_at(source, at, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(buf.get(..n).unwrap_or_default())?;
        at = at.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// Whether `a` from `a_from` on and `b` from `b_from` on hold the same bytes.
fn same_tail(a: &File, a_from: u64, b: &File, b_from: u64, chunk: usize) -> std::io::Result<bool> {
    let (mut abuf, mut bbuf) = (vec![0u8; chunk], vec![0u8; chunk]);
    let (mut a_at, mut b_at) = (a_from, b_from);
    loop {
        let n = read_at(a, a_at, &mut abuf)?;
        let m = read_at(b, b_at, &mut bbuf)?;
        if n != m || abuf.get(..n) != bbuf.get(..m) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
        let step = u64::try_from(n).unwrap_or(u64::MAX);
        a_at = a_at.saturating_add(step);
        b_at = b_at.saturating_add(step);
    }
}
