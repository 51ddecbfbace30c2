//! Crash-safe file replacement: temp file, fsync, rename, fsync the directory. The
//! keyring's own (cmke has its own, which also keeps an object's owner and mode).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file that appears at its path complete or not at all: written to a temporary file
/// beside the path, made durable and renamed over it by [`AtomicFile::commit`]. Dropped
/// without commit, the temporary file is removed and the path is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp_path: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts a file that will replace `path`, created with permission bits `mode` on Unix.
    ///
    /// # Errors
    /// [`Error::Io`] when the temporary file cannot be created.
    pub fn create(path: &Path, mode: u32) -> Result<Self> {
        let (tmp_path, file) = create_temp_beside(path, mode)?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp_path,
            file: Some(file),
        })
    }

    /// Flushes to disk, renames over the path and syncs the directory.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path; the temporary file is then removed.
    pub fn commit(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let done = file
            .sync_all()
            .and_then(|()| fs::rename(&self.tmp_path, &self.path));
        if let Err(e) = done {
            let _ = fs::remove_file(&self.tmp_path);
            return Err(Error::io_at(&self.path, e));
        }
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        sync_dir(dir)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never
/// a half-written file (see [`AtomicFile`]).
///
/// # Errors
/// [`Error::Io`] naming the file when any step fails; the temporary file is removed.
pub fn write_file_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes).map_err(|e| Error::io_at(path, e))?;
    file.commit()
}

/// Creates `path` with `bytes`, failing if it exists; durable like
/// [`write_file_atomically`], and like it never half-written under its name: the bytes go
/// to a temporary file beside `path`, made durable, then hard-linked to `path` (a link
/// fails if `path` exists), so a crash or a kill leaves no partial key or record that a
/// later listing would find. A file system without hard links gets the bytes written to
/// `path` directly, created exclusively.
pub(crate) fn create_file_durably(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let (tmp, mut file) = create_temp_beside(path, mode)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported | ErrorKind::PermissionDenied
            ) =>
        {
            create_in_place(path, bytes, mode)?;
        }
        Err(e) => return Err(Error::io_at(path, e)),
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Creates `path` exclusively and writes `bytes` to it; removes it if the write fails.
fn create_in_place(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    set_mode(&mut options, mode);
    let mut file = options.open(path).map_err(|e| Error::io_at(path, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(Error::io_at(path, e));
    }
    Ok(())
}

fn create_temp_beside(path: &Path, mode: u32) -> Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let pid = std::process::id();
    for attempt in 0u32..100 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = path.with_file_name(format!(".{name}.tmp-{pid}-{nanos:x}-{attempt}"));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        set_mode(&mut options, mode);
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io_at(tmp, e)),
        }
    }
    Err(Error::io_at(
        path,
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"),
    ))
}

#[cfg(unix)]
fn set_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_: &mut OpenOptions, _: u32) {}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_at(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `dir` and its missing parents, mode 0700: only the user may list or change it.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io_at(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        write_file_atomically(&path, b"one", 0o600).unwrap_or_else(|e| panic!("{e}"));
        write_file_atomically(&path, b"two", 0o600).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
    }

    fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect()
    }

    #[test]
    fn creates_once_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("v1.cmke");
        create_file_durably(&path, b"first", 0o600).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"first"[..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        // A second create of the same name fails as "exists" and changes nothing.
        match create_file_durably(&path, b"second", 0o600) {
            Err(Error::Io { source, .. }) => assert_eq!(source.kind(), ErrorKind::AlreadyExists),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"first"[..]));
        assert_eq!(
            names_in(dir.path()),
            vec![std::ffi::OsString::from("v1.cmke")]
        );
    }
}
