//! Reading inputs and writing outputs: `-` is stdin/stdout; files are written atomically.

use std::io::{Read, Write};
use std::path::Path;

use cmk_envelope::{write_file_atomically, Error, Result};

pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| io_error(path, e))
    }
}

/// Writes the whole output at once: to stdout, or atomically to a new or replaced file.
pub fn write_output(path: Option<&Path>, bytes: &[u8], mode: u32) -> Result<()> {
    match path {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
        }
        Some(p) if p == Path::new("-") => write_output(None, bytes, mode),
        Some(p) => write_file_atomically(p, bytes, mode),
    }
}

/// The permission bits of an existing file, to keep them when it is replaced.
pub fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return meta.permissions().mode() & 0o7777;
        }
    }
    let _ = path;
    0o644
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: Some(path.to_path_buf()),
        source,
    }
}
