//! A key slot: one data key wrapped under one key version, and how it was wrapped.

use super::limits::{MAX_KID_LEN, MAX_WRAPPED_LEN};
use super::reader::Reader;
use super::Malformed;

/// How a data key is wrapped in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum WrapAlgorithm {
    /// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label (Key Vault's `RSA-OAEP-256`).
    /// Used for all new data.
    #[serde(rename = "RSA-OAEP-256")]
    RsaOaepSha256,
    /// RSA-OAEP with SHA-1 and MGF1-SHA-1, empty label (Key Vault's `RSA-OAEP`). Read for
    /// compatibility with keys that only support it.
    #[serde(rename = "RSA-OAEP")]
    RsaOaepSha1,
    /// AES-256-GCM under a branch key (docs/FORMAT.md, "Branch keys"): the data key wrapped
    /// locally, with a key derived from the branch key and the object's message id. The
    /// wrapped bytes are exactly [`BRANCH_WRAPPED_LEN`].
    #[serde(rename = "AES-256-GCM-BRANCH")]
    BranchAes256Gcm,
}

/// Wrapped bytes of a branch slot: nonce (12) ‖ encrypted data key (32) ‖ tag (16).
pub const BRANCH_WRAPPED_LEN: u16 = 60;

impl WrapAlgorithm {
    /// The byte that names this algorithm on the wire.
    #[must_use]
    pub fn wire_id(self) -> u8 {
        match self {
            WrapAlgorithm::RsaOaepSha256 => 1,
            WrapAlgorithm::RsaOaepSha1 => 2,
            WrapAlgorithm::BranchAes256Gcm => 3,
        }
    }

    /// The algorithm named by a wire byte.
    ///
    /// # Errors
    /// [`Malformed::UnknownWrapAlgorithm`] for any byte but 1, 2 and 3.
    pub fn from_wire_id(id: u8) -> Result<Self, Malformed> {
        match id {
            1 => Ok(WrapAlgorithm::RsaOaepSha256),
            2 => Ok(WrapAlgorithm::RsaOaepSha1),
            3 => Ok(WrapAlgorithm::BranchAes256Gcm),
            other => Err(Malformed::UnknownWrapAlgorithm(other)),
        }
    }

    /// The algorithm's name: Key Vault's for the RSA ones.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WrapAlgorithm::RsaOaepSha256 => "RSA-OAEP-256",
            WrapAlgorithm::RsaOaepSha1 => "RSA-OAEP",
            WrapAlgorithm::BranchAes256Gcm => "AES-256-GCM-BRANCH",
        }
    }

    /// Whether a key-encryption key (a CMK) wraps with it, as opposed to a branch key.
    #[must_use]
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            WrapAlgorithm::RsaOaepSha256 | WrapAlgorithm::RsaOaepSha1
        )
    }

    /// Checks a wrapped length against the algorithm: 1 ..= 1024 for RSA, exactly
    /// [`BRANCH_WRAPPED_LEN`] for a branch slot.
    pub(super) fn check_wrapped_len(self, wrapped_len: u16) -> Result<(), Malformed> {
        match self {
            WrapAlgorithm::BranchAes256Gcm if wrapped_len != BRANCH_WRAPPED_LEN => {
                Err(Malformed::BranchWrappedLength(wrapped_len))
            }
            _ if wrapped_len == 0 || wrapped_len > MAX_WRAPPED_LEN => {
                Err(Malformed::WrappedLengthOutOfRange(wrapped_len))
            }
            _ => Ok(()),
        }
    }
}

/// One key slot: a data key wrapped under one key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySlot {
    kid: String,
    algorithm: WrapAlgorithm,
    wrapped: Vec<u8>,
}

impl KeySlot {
    /// A slot for a freshly wrapped data key.
    ///
    /// # Errors
    /// [`Malformed::KidLengthOutOfRange`] or [`Malformed::WrappedLengthOutOfRange`] when a
    /// length is outside the limits of the format.
    pub fn new(kid: String, algorithm: WrapAlgorithm, wrapped: Vec<u8>) -> Result<Self, Malformed> {
        let kid_len = u16::try_from(kid.len()).unwrap_or(u16::MAX);
        if kid.is_empty() || kid_len > MAX_KID_LEN {
            return Err(Malformed::KidLengthOutOfRange(kid_len));
        }
        let wrapped_len = u16::try_from(wrapped.len()).unwrap_or(u16::MAX);
        algorithm.check_wrapped_len(wrapped_len)?;
        Ok(Self {
            kid,
            algorithm,
            wrapped,
        })
    }

    pub(super) fn parse(r: &mut Reader<'_>) -> Result<Self, Malformed> {
        let kid_len = r.u16("kid length")?;
        if kid_len == 0 || kid_len > MAX_KID_LEN {
            return Err(Malformed::KidLengthOutOfRange(kid_len));
        }
        let kid = r.take(usize::from(kid_len), "kid")?;
        let kid = std::str::from_utf8(kid).map_err(|_| Malformed::KidNotUtf8)?;
        let algorithm = WrapAlgorithm::from_wire_id(r.u8("wrap algorithm")?)?;
        let wrapped_len = r.u16("wrapped key length")?;
        algorithm.check_wrapped_len(wrapped_len)?;
        let wrapped = r.take(usize::from(wrapped_len), "wrapped key")?;
        Ok(Self {
            kid: kid.to_owned(),
            algorithm,
            wrapped: wrapped.to_vec(),
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        // Lengths were checked against the limits (<= 1024) when the slot was made.
        out.extend_from_slice(&(self.kid.len() as u16).to_be_bytes());
        out.extend_from_slice(self.kid.as_bytes());
        out.push(self.algorithm.wire_id());
        out.extend_from_slice(&(self.wrapped.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.wrapped);
    }

    pub(super) fn encoded_len(&self) -> usize {
        // At most 2 + 1024 + 1 + 2 + 1024: cannot overflow.
        self.kid
            .len()
            .saturating_add(self.wrapped.len())
            .saturating_add(5)
    }

    /// The key identifier, with version, of the key that wrapped this slot.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// How the data key was wrapped.
    #[must_use]
    pub fn algorithm(&self) -> WrapAlgorithm {
        self.algorithm
    }

    /// The wrapped data key (an RSA-OAEP ciphertext, or a branch slot's nonce, ciphertext
    /// and tag).
    #[must_use]
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }
}
