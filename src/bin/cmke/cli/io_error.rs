//! The crate's I/O error for a named file: a leaf, used by every module that touches files.

use std::path::Path;

use cmk_envelope::Error;

/// An I/O error on `path`.
pub fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: Some(path.to_path_buf()),
        source,
    }
}
