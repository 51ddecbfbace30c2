//! Creating a key and adding versions to it in the token (`cmke key create|rotate pkcs11:…`).

use super::backend::BACKEND;
use super::session_pool::run_blocking;
use super::token::{self, Token};
use super::{Pkcs11Config, Pkcs11Wrapper};
use crate::error::{Error, Result};
use crate::kid::Kid;

impl Pkcs11Wrapper {
    /// Creates the key: its first version (id `00000001`), RSA of `bits` bits, in the token.
    /// Returns the new kid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the key already has versions; [`Error::PolicyRefused`]
    /// for a size the key rules refuse; otherwise as [`Pkcs11Wrapper::connect`].
    pub async fn create_key(config: &Pkcs11Config, bits: usize) -> Result<Kid> {
        config.key_rules.check_rsa_size(bits)?;
        let kid = Self::add_version(config, bits, true).await?;
        Ok(Kid::parse(&kid))
    }

    /// Adds the next version (the greatest id + 1) of an existing key, RSA-2048, which then
    /// becomes current. Old versions stay in the token. Returns the new kid.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the key has no versions yet; [`Error::InvalidArgument`]
    /// when its newest id is not a four-byte version number; otherwise as
    /// [`Pkcs11Wrapper::connect`].
    pub async fn rotate_key(config: &Pkcs11Config) -> Result<Kid> {
        let kid = Self::add_version(config, 2048, false).await?;
        Ok(Kid::parse(&kid))
    }

    async fn add_version(config: &Pkcs11Config, bits: usize, first: bool) -> Result<String> {
        let pin = config.pin.read()?;
        let config = config.clone();
        run_blocking(move || {
            let token_uri = config.token_uri();
            let key_uri = config.key_uri().to_uri();
            let token = Token::open(&config.module, &config.token, &token_uri)?;
            let sessions = token.sessions(1, true, &pin, &token_uri)?;
            let session = sessions.first().ok_or_else(|| Error::Backend {
                backend: BACKEND,
                message: "no session".to_owned(),
            })?;
            let versions = token::list_versions(session, &config.key, &key_uri)?;
            let next: u32 = match (versions.last(), first) {
                (None, true) => 1,
                (Some(_), true) => {
                    return Err(Error::InvalidArgument(format!(
                        "{key_uri} already exists; rotate it instead"
                    )))
                }
                (None, false) => {
                    return Err(Error::KeyNotFound {
                        kid: key_uri,
                        detail: String::new(),
                    })
                }
                (Some((newest, _)), false) => <[u8; 4]>::try_from(newest.as_slice())
                    .ok()
                    .and_then(|n| u32::from_be_bytes(n).checked_add(1))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "{}: the newest id is not a four-byte version number, so the next \
                             one is not obvious; generate it with your HSM's tools",
                            config.kid(newest)
                        ))
                    })?,
            };
            let id = next.to_be_bytes();
            let kid = config.kid(&id);
            token::generate_version(session, &config.key, &id, bits, &kid)?;
            Ok(kid)
        })
        .await?
    }
}
