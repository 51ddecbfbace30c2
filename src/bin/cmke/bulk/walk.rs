//! Finding the objects under the paths an operator names, and telling envelopes, leftover
//! temporary files and everything else apart by their names and first bytes only.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use cmk_envelope::format::{Header, MAGIC};
use cmk_envelope::stream::read_header_bytes;
use cmk_envelope::Error;
use cmk_envelope::Result;

use crate::cli::io::io_error;
use cmk_envelope::trust::parse_temp_name;

/// One entry found under the paths.
pub enum Found {
    /// A regular file to look at.
    File(PathBuf),
    /// A symbolic link met inside a tree: not followed, so that a walk never leaves the
    /// tree; listed.
    Symlink(PathBuf),
    /// A path or directory that could not be walked (unreadable, too deep for its path to
    /// be used, gone): one failure in the report; everything else is still processed.
    Unreadable(PathBuf, Error),
}

/// Paths this long cannot be handed to the system (PATH_MAX, counting the final NUL).
const PATH_MAX: usize = 4095;

/// Every regular file under `paths`, sorted, each once. A path named on the command line
/// is followed if it is a symlink (as `find -H` does: the operator named it) and walked by
/// its real path, so that a file is replaced beside its target, not over the link;
/// symlinks met inside a tree are reported, not followed.
///
/// Trees are walked by directory descriptors (`openat` with `O_NOFOLLOW` from the parent),
/// so no path length limits the walk and no directory swapped for a symlink mid-walk leads
/// it outside. A directory that cannot be read, or whose entries' paths would be too long
/// to use, is [`Found::Unreadable`]: one failure, and the walk goes on.
pub fn files_under(paths: &[PathBuf]) -> Vec<Found> {
    raise_open_file_limit();
    let mut found = Vec::new();
    for path in paths {
        let path = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(path) {
                Ok(real) => real,
                Err(e) => {
                    found.push(Found::Unreadable(path.clone(), io_error(path, e)));
                    continue;
                }
            },
            Ok(_) => path.clone(),
            Err(e) => {
                found.push(Found::Unreadable(path.clone(), io_error(path, e)));
                continue;
            }
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                match rustix::fs::open(
                    &path,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => walk_dir(&fd, &path, &mut found),
                    Err(e) => {
                        found.push(Found::Unreadable(path.clone(), io_error(&path, e.into())))
                    }
                }
            }
            Ok(meta) if meta.is_file() => found.push(Found::File(path)),
            Ok(_) => {}
            Err(e) => found.push(Found::Unreadable(path.clone(), io_error(&path, e))),
        }
    }
    found.sort_by(|a, b| a.path().cmp(b.path()));
    found.dedup_by(|a, b| a.path() == b.path());
    found
}

/// The entries of the open directory `dir` (at `path`), and the trees below it.
fn walk_dir(dir: &OwnedFd, path: &Path, found: &mut Vec<Found>) {
    let entries = match rustix::fs::Dir::read_from(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found.push(Found::Unreadable(
                path.to_path_buf(),
                io_error(path, e.into()),
            ));
            return;
        }
    };
    let mut subdirs = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                found.push(Found::Unreadable(
                    path.to_path_buf(),
                    io_error(path, e.into()),
                ));
                return;
            }
        };
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
        if name == "." || name == ".." {
            continue;
        }
        let child = path.join(&name);
        let mut kind = entry.file_type();
        if kind == FileType::Unknown {
            // Some file systems do not say in the listing.
            match rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => kind = FileType::from_raw_mode(stat.st_mode),
                Err(e) => {
                    found.push(Found::Unreadable(child.clone(), io_error(&child, e.into())));
                    continue;
                }
            }
        }
        let too_deep = child.as_os_str().len() >= PATH_MAX;
        match kind {
            FileType::Directory | FileType::RegularFile if too_deep => {
                found.push(Found::Unreadable(
                    child.clone(),
                    io_error(
                        &child,
                        std::io::Error::other(
                            "too deep: its path is longer than the system accepts (PATH_MAX), \
                             so nothing below it can be processed; move it higher",
                        ),
                    ),
                ));
            }
            FileType::Directory => subdirs.push((name, child)),
            FileType::RegularFile => found.push(Found::File(child)),
            FileType::Symlink => found.push(Found::Symlink(child)),
            _ => {}
        }
    }
    for (name, child) in subdirs {
        match rustix::fs::openat(
            dir,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => walk_dir(&fd, &child, found),
            Err(e) => found.push(Found::Unreadable(child.clone(), io_error(&child, e.into()))),
        }
    }
}

/// A deep tree holds one descriptor per level while it is walked: allow as many as the
/// system lets this process have.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

impl Found {
    pub fn path(&self) -> &Path {
        match self {
            Found::File(p) | Found::Symlink(p) | Found::Unreadable(p, _) => p,
        }
    }
}

/// What a file named like a temporary file is.
pub enum Temp {
    /// Not named like one.
    No,
    /// Provably a leftover of a `cmke` that is no longer running: the exact name `cmke`
    /// gives, its process gone, its target beside it, and nothing or the CMKE magic
    /// inside. Safe to remove.
    OursStale,
    /// Named like a temporary file, but not provably a leftover of ours: listed, never
    /// removed.
    LeftAlone(&'static str),
}

/// Looks at `path`'s name (and, for names `cmke` gives, its first bytes).
pub fn temp_status(path: &Path) -> Temp {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Temp::No;
    };
    let Some((target, pid)) = parse_temp_name(name) else {
        return if looks_like_old_temp(name) {
            Temp::LeftAlone("named like a temporary file of an older cmke, which may not be ours")
        } else {
            Temp::No
        };
    };
    if pid == std::process::id() || !process_is_gone(pid) {
        return Temp::LeftAlone("a temporary file of a cmke that is still running");
    }
    if !path.with_file_name(target).is_file() {
        return Temp::LeftAlone("a temporary name whose target is not beside it");
    }
    if !empty_or_cmke(path) {
        return Temp::LeftAlone("a temporary name, but not a CMKE envelope inside");
    }
    Temp::OursStale
}

/// `.{name}.tmp-{digits}-…`: what cmke called its temporary files before it marked them.
fn looks_like_old_temp(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.rsplit_once(".tmp-"))
        .is_some_and(|(target, rest)| {
            !target.is_empty()
                && rest
                    .split('-')
                    .next()
                    .is_some_and(|p| p.parse::<u32>().is_ok())
        })
}

/// Only where `/proc` can tell; elsewhere no process is known to be gone.
fn process_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// Empty (killed before its first write), or starting with the CMKE magic (killed while
/// writing a re-wrapped envelope): what a temporary file of `cmke rewrap` holds.
fn empty_or_cmke(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut start = [0u8; MAGIC.len()];
    match read_prefix(file, &mut start) {
        Ok(0) => true,
        Ok(n) => n == MAGIC.len() && start == MAGIC,
        Err(_) => false,
    }
}

/// Fills `buf` from `source` as far as it goes; the count read.
fn read_prefix(mut source: impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut have = 0;
    while let Some(rest) = buf.get_mut(have..).filter(|r| !r.is_empty()) {
        match source.read(rest) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

/// What a file holds, from its first bytes.
pub enum Kind {
    /// A CMKE envelope (`detached`: the file is a header alone, its body kept elsewhere).
    Envelope {
        header: Header,
        header_bytes: Vec<u8>,
        detached: bool,
        len: u64,
    },
    /// Not a CMKE file (no magic).
    Foreign { len: u64 },
    /// Starts like a CMKE file but its header does not parse.
    Corrupt { error: Error },
}

/// Reads as much of `path` as it takes to say what it is.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened or read.
pub fn classify(path: &Path) -> Result<Kind> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    read_kind(file, len).map_err(|e| match e {
        Error::Io { path: None, source } => io_error(path, source),
        other => other,
    })
}

/// Reads the start of a file of `len` bytes from `source`: its magic, then its header.
///
/// # Errors
/// [`Error::Io`] when it cannot be read.
pub fn read_kind(mut source: impl Read, len: u64) -> Result<Kind> {
    let mut magic = [0u8; MAGIC.len()];
    let have = read_prefix(&mut source, &mut magic)?;
    if have < magic.len() || magic != MAGIC {
        return Ok(Kind::Foreign { len });
    }
    let mut source = std::io::Cursor::new(magic).chain(source);
    let header_bytes = match read_header_bytes(&mut source) {
        Ok(bytes) => bytes,
        Err(error @ Error::Malformed(_)) => return Ok(Kind::Corrupt { error }),
        Err(e) => return Err(e),
    };
    match Header::parse_detached(&header_bytes) {
        Ok(header) => Ok(Kind::Envelope {
            detached: u64::try_from(header_bytes.len()).is_ok_and(|n| n == len),
            header,
            header_bytes,
            len,
        }),
        Err(e) => Ok(Kind::Corrupt {
            error: Error::Malformed(e),
        }),
    }
}
