//! PKCS#11 keys in `cmke`: `pkcs11:` URIs wherever a key is named, the HSM keys an
//! envelope's slots name when opening it, and `key create|rotate` in the token.
//!
//! The module comes from `--pkcs11-module` / `CMKE_PKCS11_MODULE` / `pkcs11_module` in
//! cmke.toml; the user PIN from the file named by `CMKE_PKCS11_PIN_FILE` (or
//! `pkcs11_pin_file`), else from `CMKE_PKCS11_PIN`. Never from an argument: other users can
//! read a process's arguments.

use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::format::Header;
use cmk_envelope::kid::Kid;
use cmk_envelope::KeyWrapper;

use crate::cli::failure::{Result, UsageError};

/// Whether a key argument names a PKCS#11 key.
pub fn is_pkcs11_uri(key: &str) -> bool {
    key.starts_with("pkcs11:")
}

/// The keys (token and object, without the version id) of the PKCS#11 slots of `header`,
/// each once.
pub fn key_uris_in(header: &Header) -> Vec<String> {
    let mut uris: Vec<String> = header
        .slots()
        .iter()
        .map(|s| Kid::parse(s.kid()))
        .filter(|kid| matches!(kid, Kid::Pkcs11 { .. }))
        .map(|kid| kid.key())
        .collect();
    uris.sort();
    uris.dedup();
    uris
}

/// Where the PKCS#11 module and PIN come from, as the flags, environment and cmke.toml say.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "pkcs11"), allow(dead_code))]
pub struct HsmSettings {
    pub module: Option<PathBuf>,
    pub pin_file: Option<PathBuf>,
}

#[cfg(feature = "pkcs11")]
impl HsmSettings {
    fn config(&self, uri: &str) -> Result<cmk_envelope::pkcs11::Pkcs11Config> {
        use cmk_envelope::pkcs11::{PinSource, Pkcs11Config};

        let module = self.module.clone().ok_or_else(|| {
            UsageError::new(format!(
                "{uri} is a PKCS#11 key: give the token's PKCS#11 module with --pkcs11-module, \
                 CMKE_PKCS11_MODULE or pkcs11_module in cmke.toml (for SoftHSM2, \
                 /usr/lib/softhsm/libsofthsm2.so)"
            ))
        })?;
        // The module is code that runs inside cmke with the PIN: the backend loads it only
        // from a descriptor whose every path component is the user's or root's.
        let pin = match &self.pin_file {
            Some(file) => PinSource::File(file.clone()),
            None => PinSource::Env("CMKE_PKCS11_PIN".to_owned()),
        };
        Ok(Pkcs11Config::from_uri(module, uri)?.pin(pin))
    }
}

/// Connects to the PKCS#11 key `uri` (a pinned version when it has `id=`).
#[cfg(feature = "pkcs11")]
pub async fn connect(
    settings: &HsmSettings,
    uri: &str,
    limit: Option<cmk_envelope::wrap::KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    let mut config = settings.config(uri)?;
    if let Some(limit) = limit {
        config = config.max_key_ops(limit);
    }
    let wrapper = cmk_envelope::pkcs11::Pkcs11Wrapper::connect(config).await?;
    Ok(Arc::new(wrapper))
}

/// `cmke key create pkcs11:…`: the key's first version, in the token.
#[cfg(feature = "pkcs11")]
pub async fn create(
    settings: &HsmSettings,
    uri: &str,
    bits: usize,
) -> Result<cmk_envelope::kid::Kid> {
    let policy = cmk_envelope::policy::KeyRules::default()
        .allow_rsa_sizes(&cmk_envelope::policy::RSA_SIZES)?;
    let policy = if bits == 2048 {
        cmk_envelope::policy::KeyRules::default()
    } else {
        policy
    };
    cmk_envelope::pkcs11::Pkcs11Wrapper::create_key(&settings.config(uri)?.key_rules(policy), bits)
        .await
        .map_err(Into::into)
}

/// `cmke key rotate pkcs11:…`: the next version, which becomes current.
#[cfg(feature = "pkcs11")]
pub async fn rotate(settings: &HsmSettings, uri: &str) -> Result<cmk_envelope::kid::Kid> {
    cmk_envelope::pkcs11::Pkcs11Wrapper::rotate_key(&settings.config(uri)?)
        .await
        .map_err(Into::into)
}

#[cfg(not(feature = "pkcs11"))]
fn not_built(uri: &str) -> crate::cli::failure::Failure {
    UsageError::new(format!(
        "{uri} is a PKCS#11 key, and this cmke was built without feature `pkcs11`"
    ))
    .into()
}

#[cfg(not(feature = "pkcs11"))]
pub async fn connect(
    _: &HsmSettings,
    uri: &str,
    _: Option<cmk_envelope::wrap::KeyOpsLimit>,
) -> Result<Arc<dyn KeyWrapper>> {
    Err(not_built(uri))
}

#[cfg(not(feature = "pkcs11"))]
pub async fn create(_: &HsmSettings, uri: &str, _: usize) -> Result<cmk_envelope::kid::Kid> {
    Err(not_built(uri))
}

#[cfg(not(feature = "pkcs11"))]
pub async fn rotate(_: &HsmSettings, uri: &str) -> Result<cmk_envelope::kid::Kid> {
    Err(not_built(uri))
}
