//! The branch slot (wrap algorithm 3): a data key wrapped locally under a branch key.
//!
//! ```text
//! K_w     = HKDF-SHA256(salt = message id, IKM = branch key, "CMKE v1 branch wrap", 32)
//! wrapped = nonce (12, random) ‖ AES-256-GCM(K_w, nonce, AAD = branch kid, DEK) ‖ tag (16)
//! ```
//! Deriving `K_w` from the message id binds the slot to its object; the kid as associated
//! data binds it to its branch version, so a slot relabelled to another version fails.

use zeroize::Zeroizing;

use super::nonce_pool::NONCE_LEN;
use super::BranchKey;
use crate::crypto::{CryptoFailure, Provider};
use crate::data_key::{DataKey, DATA_KEY_LEN};
use crate::error::{Error, Result};
use crate::format::BRANCH_WRAPPED_LEN;

const BRANCH_WRAP_INFO: &[u8] = b"CMKE v1 branch wrap";
const TAG_LEN: usize = 16;

/// The slot key of one object under one branch key.
fn slot_key(
    provider: Provider,
    branch_key: &BranchKey,
    message_id: &[u8; 32],
) -> std::result::Result<Zeroizing<[u8; 32]>, CryptoFailure> {
    let mut key = Zeroizing::new([0u8; 32]);
    provider.ops().hkdf_sha256(
        message_id,
        branch_key.expose_secret(),
        &mut [(BRANCH_WRAP_INFO, key.as_mut_slice())],
    )?;
    Ok(key)
}

/// Wraps `data_key` for the object of `message_id` under `branch_key` (version `kid`), with
/// a `nonce` never used before (from a [`NoncePool`](super::nonce_pool::NoncePool)).
pub(crate) fn wrap_data_key(
    provider: Provider,
    branch_key: &BranchKey,
    kid: &str,
    message_id: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    data_key: &DataKey,
) -> Result<Vec<u8>> {
    let failed = |_| Error::Backend {
        backend: provider.name(),
        message: "branch wrap failed".to_owned(),
    };
    let key = slot_key(provider, branch_key, message_id).map_err(failed)?;
    let cipher = provider.ops().aes256_gcm(&key).map_err(failed)?;
    let mut wrapped = vec![0u8; usize::from(BRANCH_WRAPPED_LEN)];
    let (nonce_out, rest) = wrapped.split_at_mut(NONCE_LEN);
    let (ciphertext, tag_out) = rest.split_at_mut(DATA_KEY_LEN);
    nonce_out.copy_from_slice(nonce);
    let tag = cipher
        .seal_to(nonce, kid.as_bytes(), data_key.expose_secret(), ciphertext)
        .map_err(failed)?;
    tag_out.copy_from_slice(&tag);
    Ok(wrapped)
}

/// Recovers the data key of a branch slot. Every failure (wrong length, tampering, the
/// wrong branch key or object) is the opaque [`Error::DecryptionFailed`].
pub(crate) fn unwrap_data_key(
    provider: Provider,
    branch_key: &BranchKey,
    kid: &str,
    message_id: &[u8; 32],
    wrapped: &[u8],
) -> Result<DataKey> {
    fn failed<E>(_: E) -> Error {
        Error::DecryptionFailed
    }
    if wrapped.len() != usize::from(BRANCH_WRAPPED_LEN) {
        return Err(Error::DecryptionFailed);
    }
    let (nonce, rest) = wrapped.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(DATA_KEY_LEN);
    let nonce: &[u8; NONCE_LEN] = nonce.try_into().map_err(failed)?;
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(failed)?;
    let key = slot_key(provider, branch_key, message_id).map_err(failed)?;
    let cipher = provider.ops().aes256_gcm(&key).map_err(failed)?;
    let mut plain = Zeroizing::new([0u8; DATA_KEY_LEN]);
    cipher
        .open_to(nonce, kid.as_bytes(), ciphertext, tag, plain.as_mut_slice())
        .map_err(failed)?;
    DataKey::from_slice(plain.as_slice()).ok_or(Error::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str = "branch:orders/0123456789abcdef0123456789abcdef";

    fn branch_key(byte: u8) -> BranchKey {
        BranchKey::from_slice(&[byte; 32]).expect("32 bytes")
    }

    #[test]
    fn a_branch_slot_opens_with_its_key_object_and_kid_only() {
        for provider in Provider::all() {
            let key = branch_key(1);
            let dek = DataKey::from_bytes([7; 32]);
            let wrapped =
                wrap_data_key(provider, &key, KID, &[3; 32], &[1; 12], &dek).expect("wrap");
            assert_eq!(wrapped.len(), 60);
            let back = unwrap_data_key(provider, &key, KID, &[3; 32], &wrapped).expect("open");
            assert!(back.same_as(&dek));

            let other_kid = "branch:orders/ffffffffffffffffffffffffffffffff";
            for (key, kid, id) in [
                (branch_key(2), KID, [3; 32]),
                (branch_key(1), other_kid, [3; 32]),
                (branch_key(1), KID, [4; 32]),
            ] {
                assert!(matches!(
                    unwrap_data_key(provider, &key, kid, &id, &wrapped),
                    Err(Error::DecryptionFailed)
                ));
            }
            for at in 0..wrapped.len() {
                let mut bad = wrapped.clone();
                bad[at] ^= 0x01;
                assert!(
                    matches!(
                        unwrap_data_key(provider, &key, KID, &[3; 32], &bad),
                        Err(Error::DecryptionFailed)
                    ),
                    "byte {at}"
                );
            }
            assert!(matches!(
                unwrap_data_key(provider, &key, KID, &[3; 32], &wrapped[..59]),
                Err(Error::DecryptionFailed)
            ));
        }
    }

    #[test]
    fn two_wraps_of_one_key_differ() {
        let key = branch_key(1);
        let dek = DataKey::from_bytes([7; 32]);
        let pool = super::super::nonce_pool::NoncePool::new();
        let wrap = || {
            let nonce = pool.take(Provider::default()).expect("nonce");
            wrap_data_key(Provider::default(), &key, KID, &[3; 32], &nonce, &dek).expect("wrap")
        };
        let (a, b) = (wrap(), wrap());
        assert_ne!(a, b, "a fresh nonce each time");
    }
}
