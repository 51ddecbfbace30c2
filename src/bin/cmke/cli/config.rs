//! The optional configuration file: defaults for the global flags, so that an operator's
//! invocations stay short. A flag (or its environment variable) always wins over the file.
//!
//! It is read from `--config FILE`, else `CMKE_CONFIG`, else the user's configuration
//! directory (`$XDG_CONFIG_HOME/cmke/cmke.toml`, else `~/.config/cmke/cmke.toml`): never
//! from the working directory, where anyone who can write there could plant one. The file
//! must be the user's own and not writable by group or others. Relative paths in it are
//! relative to its own directory.
//!
//! ```toml
//! keyring = "/var/lib/cmke/keyring"
//! provider = "aws-lc"              # default | aws-lc | rustcrypto
//! azure_credential = "managed"     # dev | managed | workload | client-secret |
//!                                  # client-certificate | azure-pipelines (secrets: env or file)
//! pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so"
//! pkcs11_pin_file = "/run/secrets/hsm-pin"   # the PIN itself never goes in this file
//! jobs = 8                         # files at once for rewrap and verify
//! max_memory = "256MiB"            # memory for all those files together
//! vaults = ["https://contoso.vault.azure.net"]   # key services cmke may contact
//! pkcs11_tokens = ["prod-hsm"]
//! branch_store = "/var/lib/cmke/branches"    # branch key records (cmke branch …)
//! ```

use std::path::{Path, PathBuf};

use cmk_envelope::Error;
use serde::Deserialize;

use crate::cli::args::{AzureCredential, ProviderChoice};
use crate::cli::failure::{Result, UsageError};

/// A configuration file is a few lines; a larger one is not read.
const CONFIG_FILE_LIMIT: usize = 1024 * 1024;

/// What the configuration file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub keyring: Option<PathBuf>,
    pub provider: Option<ProviderChoice>,
    pub azure_credential: Option<AzureCredential>,
    pub pkcs11_module: Option<PathBuf>,
    pub pkcs11_pin_file: Option<PathBuf>,
    pub jobs: Option<usize>,
    /// Memory for all jobs of a bulk run together, e.g. "512MiB" (`--max-memory`).
    pub max_memory: Option<String>,
    /// Key-service operations per second for a whole run (`--max-key-ops`).
    pub max_key_ops: Option<std::num::NonZeroU32>,
    /// Vaults (`https://{name}.vault.azure.net`) whose keys envelopes may name.
    #[serde(default)]
    pub vaults: Vec<String>,
    /// PKCS#11 token labels whose keys envelopes may name.
    #[serde(default)]
    pub pkcs11_tokens: Vec<String>,
    /// The branch key store (a directory, relative to this file; or a blob container URL).
    pub branch_store: Option<String>,
}

/// `$XDG_CONFIG_HOME/cmke/cmke.toml`, else `~/.config/cmke/cmke.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    user_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("cmke").join("cmke.toml"))
}

/// `$XDG_DATA_HOME/cmke/keyring`, else `~/.local/share/cmke/keyring`.
pub fn user_keyring_path() -> Option<PathBuf> {
    user_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join("cmke").join("keyring"))
}

/// An XDG base directory: the variable when it holds an absolute path (relative ones are
/// invalid by the specification, and would make the working directory decide), else
/// `$HOME/{fallback}`.
fn user_dir(variable: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(fallback))
        })
}

impl FileConfig {
    /// `path` when given (`--config` or `CMKE_CONFIG`; it must exist), else the user's
    /// configuration file when present, else nothing.
    ///
    /// # Errors
    /// [`Error::Io`] for a named file that cannot be read; [`Error::UntrustedFile`] for one
    /// someone else can change; [`UsageError`] for one that is not valid TOML
    /// or sets an unknown key.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match user_config_path() {
                Some(p) => (p, false),
                None => return Ok(Self::default()),
            },
        };
        use cmk_envelope::trust::{TrustedFile, TrustedKind};
        if !required && !path.exists() {
            return Ok(Self::default());
        }
        let file = match TrustedFile::open(&path, TrustedKind::Config, "configuration file") {
            Ok(file) => file,
            Err(Error::Io { source, .. })
                if !required && source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Self::default())
            }
            Err(e) => return Err(e.into()),
        };
        // What is read is the descriptor that was checked, not the path again.
        let text = file.read_text(CONFIG_FILE_LIMIT)?;
        let config = Self::parse(&text)
            .map_err(|why| UsageError::new(format!("{}: {why}", path.display())))?;
        Ok(config.relative_to(path.parent().unwrap_or_else(|| Path::new("/"))))
    }

    /// Relative paths in the file are relative to the file's own directory, never to
    /// wherever cmke happens to be started.
    fn relative_to(mut self, dir: &Path) -> Self {
        let anchor = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut().filter(|p| p.is_relative()) {
                *path = dir.join(&*path);
            }
        };
        anchor(&mut self.keyring);
        anchor(&mut self.pkcs11_module);
        anchor(&mut self.pkcs11_pin_file);
        if let Some(store) = self.branch_store.as_mut() {
            if !store.contains("://") && Path::new(store.as_str()).is_relative() {
                *store = dir.join(&*store).display().to_string();
            }
        }
        self
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
             pkcs11_module = \"m.so\"\npkcs11_pin_file = \"pin\"\njobs = 3\n\
             vaults = [\"https://contoso.vault.azure.net\"]\npkcs11_tokens = [\"prod\"]\n",
        )
        .expect("parse");
        assert_eq!(config.keyring, Some(PathBuf::from("k")));
        assert_eq!(config.jobs, Some(3));
        assert_eq!(config.vaults, ["https://contoso.vault.azure.net"]);
        assert_eq!(config.pkcs11_tokens, ["prod"]);
        assert!(FileConfig::parse("keyrnig = \"typo\"").is_err());
        assert!(FileConfig::parse("pkcs11_pin = \"1234\"")
            .expect_err("refused")
            .contains("never"));
    }
}
