//! Temporary files beside their targets, named so that `cmke` can later prove a leftover
//! is its own (`.{name}.cmke-tmp-{pid}-{nanos}-{n}`), and output files that appear
//! complete or not at all.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use cmk_envelope::Result;

use crate::io_error::io_error;

/// A temporary file beside `target`, removed on drop unless it was renamed away.
pub struct TempFile {
    pub path: PathBuf,
    pub file: File,
    armed: bool,
}

impl TempFile {
    /// Creates `.{name}.cmke-tmp-{pid}-{nanos}-{n}` beside `target`, with mode `mode`.
    ///
    /// # Errors
    /// [`Error::Io`](cmk_envelope::Error::Io) when it cannot be created.
    pub fn create_beside(target: &Path, mode: u32) -> Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".to_owned());
        for attempt in 0u32..100 {
            let path = target.with_file_name(cmk_envelope::trust::temp_name(&name, attempt));
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
            #[cfg(not(unix))]
            let _ = mode;
            match options.open(&path) {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file,
                        armed: true,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        Err(io_error(
            target,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"),
        ))
    }

    /// The file is no longer at `path` (renamed or exchanged away): do not remove it.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Syncs the directory holding `path`, so that a rename in it survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// An output file that appears at its path complete (temporary file, fsync, rename, fsync
/// of the directory) or not at all.
pub struct AtomicOutput {
    target: PathBuf,
    temp: TempFile,
}

impl AtomicOutput {
    pub fn create(target: &Path, mode: u32) -> Result<Self> {
        Ok(Self {
            target: target.to_path_buf(),
            temp: TempFile::create_beside(target, mode)?,
        })
    }

    pub fn commit(mut self) -> Result<()> {
        self.temp
            .file
            .sync_all()
            .and_then(|()| std::fs::rename(&self.temp.path, &self.target))
            .map_err(|e| io_error(&self.target, e))?;
        self.temp.disarm();
        sync_parent(&self.target)
    }
}

impl Write for AtomicOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.file.flush()
    }
}

pub use cmk_envelope::trust::parse_temp_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_parse_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("a.cmke");
        let temp = TempFile::create_beside(&target, 0o600).expect("temp");
        let name = temp
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
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
}
