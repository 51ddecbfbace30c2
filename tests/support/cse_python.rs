//! Runs `tests/support/cse_python.py`, the official Python azure-storage-blob SDK writing and
//! reading client-side encryption v2 blobs, from the test command's virtual environment
//! (`target/pyenv`, or `CMKE_TEST_PYTHON`): the tests fail, rather than skip, without it.

use std::path::PathBuf;
use std::process::Command;

/// The test pattern, the same as the script's.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 7 + i / 65536) % 251) as u8)
        .collect()
}

/// The Python of the test command's virtual environment (or `CMKE_TEST_PYTHON`).
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("CMKE_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python")
}

/// Runs the script with `args`; panics with its output when it fails.
pub fn run_python(args: &[&str]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/cse_python.py");
    let out = Command::new(python())
        .arg(&script)
        .args(args)
        .env("CMKE_TEST_TOKEN", super::azurite::token())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `bash .ci/test-all.sh`, which installs azure-storage-blob into \
                 target/pyenv",
                python().display()
            )
        });
    assert!(
        out.status.success(),
        "python {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
