//! Proving, once per key version, that the public key read from the vault belongs to the
//! vault's private key: a random canary wrapped locally must come back from `unwrapKey`.

use std::sync::{Arc, PoisonError};

use super::backend::BACKEND;
use super::{Current, KeyVaultWrapper};
use crate::error::{Error, Result};
use crate::format::{KeySlot, WrapAlgorithm};
use crate::wrap::{KeyWrapper, SlotContext, Unwrapped};

impl KeyVaultWrapper {
    /// Proves that `current.public` belongs to the vault's private key of that version: a
    /// random canary wrapped here must come back from the vault's `unwrapKey`. Done once per
    /// version (and public key); concurrent callers wait for the one proof.
    pub(super) async fn prove_public_key(&self, current: &Current) -> Result<()> {
        let cell = Arc::clone(
            self.proven
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(current.version.clone())
                .or_default(),
        );
        let proven_modulus = cell
            .get_or_try_init(|| async {
                let canary = self.random_canary(&current.kid)?;
                let wrapped = current
                    .public
                    .encrypt_oaep(WrapAlgorithm::RsaOaepSha256, canary.expose_secret())
                    .map_err(|_| Error::Backend {
                        backend: BACKEND,
                        message: format!("local RSA-OAEP-256 wrap under {} failed", current.kid),
                    })?;
                let slot =
                    KeySlot::new(current.kid.clone(), WrapAlgorithm::RsaOaepSha256, wrapped)?;
                let refuted = || Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "the public key read for {} is not the vault's: a canary wrapped with it \
                         does not come back from unwrapKey",
                        current.kid
                    ),
                };
                // An RSA slot is not bound to an object: any context will do.
                match self.unwrap_key(&slot, SlotContext::new(&[0; 32])).await {
                    Ok(Unwrapped::Key(back)) if back.same_as(&canary) => {
                        Ok(current.modulus.clone())
                    }
                    Ok(_) | Err(Error::DecryptionFailed) => Err(refuted()),
                    Err(other) => Err(other),
                }
            })
            .await?;
        if *proven_modulus == current.modulus {
            Ok(())
        } else {
            Err(Error::Backend {
                backend: BACKEND,
                message: format!(
                    "the vault answered two different public keys for {}",
                    current.kid
                ),
            })
        }
    }
}
