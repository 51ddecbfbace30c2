//! The optional `cmke.toml`: defaults for the global flags, so that an operator's
//! invocations stay short. A flag (or its environment variable) always wins over the file.
//!
//! ```toml
//! keyring = "/var/lib/cmke/keyring"
//! provider = "aws-lc"              # default | aws-lc | rustcrypto
//! azure_credential = "managed"     # dev | managed | workload
//! pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"
//! pkcs11_pin_file = "/run/secrets/hsm-pin"   # the PIN itself never goes in this file
//! jobs = 8                         # files at once for rewrap and verify
//! ```

use std::path::{Path, PathBuf};

use cmk_envelope::{Error, Result};
use serde::Deserialize;

use crate::args::{AzureCredential, ProviderChoice};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "cmke.toml";

/// What `cmke.toml` may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub keyring: Option<PathBuf>,
    pub provider: Option<ProviderChoice>,
    pub azure_credential: Option<AzureCredential>,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub jobs: Option<usize>,
}

impl FileConfig {
    /// `path` when given (it must exist), else `./cmke.toml` when present, else nothing.
    ///
    /// # Errors
    /// [`Error::Io`] for a named file that cannot be read; [`Error::InvalidArgument`] for one
    /// that is not valid TOML or sets an unknown key.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(e) => return Err(crate::io::io_error(&path, e)),
        };
        Self::parse(&text)
            .map_err(|why| Error::InvalidArgument(format!("{}: {why}", path.display())))
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        if text.lines().any(|l| {
            let key = l.split('=').next().unwrap_or_default().trim();
            key == "pin" || key == "pkcs11_pin"
        }) {
            return Err(
                "a PIN is never read from cmke.toml (the file is easily shared); name a file \
                 with pkcs11_pin_file, or set CMKE_PKCS11_PIN"
                    .to_owned(),
            );
        }
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_keys_are_refused() {
        let config = FileConfig::parse(
            "keyring = \"k\"\nprovider = \"rustcrypto\"\nazure_credential = \"managed\"\n\
             pkcs11_module = \"m.so\"\npkcs11_pin_file = \"pin\"\njobs = 3\n",
        )
        .expect("parse");
        assert_eq!(config.keyring, Some(PathBuf::from("k")));
        assert_eq!(config.jobs, Some(3));
        assert!(FileConfig::parse("keyrnig = \"typo\"").is_err());
        assert!(FileConfig::parse("pkcs11_pin = \"1234\"")
            .expect_err("refused")
            .contains("never"));
    }
}
