//! Finding the objects under the paths an operator names, and telling envelopes from
//! everything else by their first bytes only.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use cmk_envelope::format::{Header, MAGIC};
use cmk_envelope::stream::read_header_bytes;
use cmk_envelope::{Error, Result};

use crate::io::io_error;

/// What a file turned out to be.
pub enum Kind {
    /// A CMKE envelope (`detached`: the file is a header alone, its body kept elsewhere).
    Envelope {
        header: Header,
        header_bytes: Vec<u8>,
        detached: bool,
        len: u64,
    },
    /// Not a CMKE file (no magic): left alone.
    Foreign { len: u64 },
    /// Starts like a CMKE file but its header does not parse.
    Corrupt { error: Error },
    /// A temporary file that an interrupted `cmke` left beside its target.
    StaleTemp,
}

/// Every regular file under `paths` (files as given, directories recursively), sorted, each
/// once. Symbolic links are not followed, so a tree is never left through a link.
///
/// # Errors
/// [`Error::Io`] for a path that cannot be read.
pub fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| io_error(&path, e))? {
                let entry = entry.map_err(|e| io_error(&path, e))?;
                let kind = entry.file_type().map_err(|e| io_error(&path, e))?;
                if kind.is_dir() || kind.is_file() {
                    pending.push(entry.path());
                }
            }
        } else if meta.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Reads as much of `path` as it takes to say what it is.
///
/// # Errors
/// [`Error::Io`] when the file cannot be opened or read.
pub fn classify(path: &Path) -> Result<Kind> {
    if is_stale_temp(path) {
        return Ok(Kind::StaleTemp);
    }
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut magic = [0u8; MAGIC.len()];
    let mut have = 0;
    while have < magic.len() {
        match file.read(&mut magic[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    if have < magic.len() || magic != MAGIC {
        return Ok(Kind::Foreign { len });
    }
    let mut source = std::io::Cursor::new(magic).chain(file);
    let header_bytes = match read_header_bytes(&mut source) {
        Ok(bytes) => bytes,
        Err(error @ Error::Malformed(_)) => return Ok(Kind::Corrupt { error }),
        Err(e) => return Err(e),
    };
    let header = match Header::parse_detached(&header_bytes) {
        Ok(header) => header,
        Err(e) => {
            return Ok(Kind::Corrupt {
                error: Error::Malformed(e),
            })
        }
    };
    Ok(Kind::Envelope {
        detached: u64::try_from(header_bytes.len()).is_ok_and(|n| n == len),
        header,
        header_bytes,
        len,
    })
}

/// `.{name}.tmp-{pid}-…` beside `{name}`, written by a `cmke` process that is no longer
/// running (on systems with `/proc`; elsewhere nothing is called stale).
pub fn is_stale_temp(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some((target, rest)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")) else {
        return false;
    };
    let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    let proc = Path::new("/proc");
    !target.is_empty()
        && pid != std::process::id()
        && proc.is_dir()
        && !proc.join(pid.to_string()).exists()
}
