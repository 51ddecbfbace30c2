//! Helpers shared by the integration tests: each test file says `mod support;` and takes
//! what it needs. Backend-specific helpers compile only with their backend's feature.
#![allow(dead_code, unused_imports)]

#[cfg(feature = "azure-blob")]
pub mod azurite;
pub mod behaviour;
pub mod branch_site;
#[cfg(feature = "azure-blob")]
pub mod cse_python;
pub mod down_service;
pub mod keyring;
#[cfg(feature = "insecure-loopback-vault")]
pub mod keyvault_double;
pub mod race_store;
pub mod recording;
pub mod slow_key;
#[cfg(feature = "pkcs11")]
pub mod softhsm;

use std::path::Path;

use assert_cmd::Command;
use cmk_envelope::format::Header;

pub use keyring::*;

/// `cmke` with an environment of its own: `HOME` in `home`, no configuration, keyring or
/// backend variables inherited from the machine, `--keyring` at `keyring`, and a timeout
/// that turns a hang into a failure. Every CLI test starts from this and adds its backend.
pub fn cmke(home: &Path, keyring: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cmke").expect("binary");
    for variable in [
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "CMKE_KEYRING",
        "CMKE_CONFIG",
        "CMKE_MAX_KEY_OPS",
        "CMKE_BRANCH_STORE",
        "CMKE_PKCS11_PIN_FILE",
        "CMKE_INSECURE_LOOPBACK_VAULT",
        "CMKE_INSECURE_LOOPBACK_TOKEN",
        "CMKE_FAILOVER_COOLDOWN",
        "CMKE_LOG",
    ] {
        cmd.env_remove(variable);
    }
    cmd.env("HOME", home)
        .arg("--keyring")
        .arg(keyring)
        .timeout(std::time::Duration::from_secs(600));
    cmd
}

/// `n` bytes of test data that are not all alike (a pattern shift shows up as a mismatch).
pub fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

/// The kid of an envelope's first slot.
pub fn slot_kid(envelope: &[u8]) -> String {
    Header::parse_prefix(envelope).expect("header").0.slots()[0]
        .kid()
        .to_owned()
}
