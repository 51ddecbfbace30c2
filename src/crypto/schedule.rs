//! The CMKE v1 key schedule: content key and key commitment from the data key.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{CryptoFailure, Provider, SegmentCipher};
use crate::data_key::DataKey;

const CONTENT_KEY_INFO: &[u8] = b"CMKE v1 content key";
const COMMITMENT_INFO: &[u8] = b"CMKE v1 key commitment";

/// What a data key and a message id derive: the segment cipher and the commitment.
pub(crate) struct KeySchedule {
    pub(crate) cipher: Box<dyn SegmentCipher>,
    pub(crate) commitment: [u8; 32],
}

impl KeySchedule {
    /// PRK = HKDF-Extract(salt = message id, IKM = DEK); content key and commitment are
    /// expanded from it with their own labels.
    pub(crate) fn derive(
        provider: Provider,
        data_key: &DataKey,
        message_id: &[u8; 32],
    ) -> Result<Self, CryptoFailure> {
        let ops = provider.ops();
        let mut content_key = Zeroizing::new([0u8; 32]);
        let mut commitment = [0u8; 32];
        ops.hkdf_sha256(
            message_id,
            data_key.expose_secret(),
            &mut [
                (CONTENT_KEY_INFO, content_key.as_mut_slice()),
                (COMMITMENT_INFO, commitment.as_mut_slice()),
            ],
        )?;
        Ok(Self {
            cipher: ops.aes256_gcm(&content_key)?,
            commitment,
        })
    }

    /// Constant-time comparison with the commitment stored in a header.
    pub(crate) fn commits_to(&self, stored: &[u8; 32]) -> bool {
        self.commitment.ct_eq(stored).into()
    }
}
