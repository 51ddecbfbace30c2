//! Opening: find a key, check the commitment, verify and decrypt every segment.

use super::rewrap::Rewrapped;

/// What opening told about an object: the kid that opened it, whether that is an old
/// version of its key, and then a header re-wrapped to the current version.
///
/// Every way of opening gives one: [`Opened::info`] (`open`, `open_detached`,
/// `open_range`), the return value of `open_into` / `open_in_place`, and
/// [`OpenReader::info`](crate::stream::OpenReader::info) once the reader exists (the header
/// is read and the key recovered when it is made).
///
/// The re-wrapped header depends only on the header and the data key, which the key
/// commitment has checked by then, never on the body: a reader offers it before the body
/// is read, and writing it back changes nothing about the body, which is still verified
/// when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInfo {
    pub(super) kid: String,
    pub(super) stale: bool,
    pub(super) rewrapped: Option<Rewrapped>,
}

impl OpenInfo {
    /// The kid (with version) of the slot that opened the object.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether the object is wrapped under an old version of its key. Known only with lazy
    /// re-wrap on (the default), which asks the key for its current version; `false` when
    /// that could not be asked.
    #[must_use]
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The header re-wrapped to the current version, when the object was stale (lazy
    /// re-wrap). Store it in place of the old header; the body does not change. `None`
    /// also when the key's current version could not be used to wrap (disabled, deleted,
    /// refused by policy): opening does not depend on it.
    #[must_use]
    pub fn rewrapped(&self) -> Option<&Rewrapped> {
        self.rewrapped.as_ref()
    }

    /// What opening an object of another format told: its kid, and whether that is stale
    /// (no re-wrapped header: the format has none of ours).
    #[cfg(feature = "azure-blob")]
    pub(crate) fn foreign(kid: String, stale: bool) -> Self {
        Self {
            kid,
            stale,
            rewrapped: None,
        }
    }
}

/// An opened object: the plaintext and the [`OpenInfo`].
pub struct Opened {
    pub(super) plaintext: Vec<u8>,
    pub(super) info: OpenInfo,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("info", &self.info)
            .finish()
    }
}

impl Opened {
    /// The plaintext.
    #[must_use]
    pub fn plaintext(&self) -> &[u8] {
        &self.plaintext
    }

    /// Takes the plaintext. From here it is the caller's data: wipe it (e.g. with
    /// `zeroize`) when done if the threat model needs that.
    #[must_use]
    pub fn into_plaintext(self) -> Vec<u8> {
        self.plaintext
    }

    /// What opening told about the object: the kid, staleness, the re-wrapped header.
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        &self.info
    }

    pub(crate) fn new(plaintext: Vec<u8>, info: OpenInfo) -> Self {
        Self { plaintext, info }
    }
}
