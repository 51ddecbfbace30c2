//! The crate's one error type, typed by what the caller must do about it.
//!
//! No variant carries secret bytes: messages name kids, sizes and reasons, never key material
//! or plaintext.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::Malformed;

/// Everything that can go wrong in `cmk-envelope`.
///
/// Match on the variant to decide what to do:
///
/// | variant | what the caller should do |
/// |---|---|
/// | [`Error::Malformed`] | the bytes are not a CMKE envelope (or are cut short): do not retry |
/// | [`Error::DecryptionFailed`] | tampered data, wrong associated data or wrong key: do not retry |
/// | [`Error::NoKeyForKid`] | configure a wrapper for one of the kids named |
/// | [`Error::AccessDenied`], [`Error::KeyDisabled`], [`Error::KeyNotFound`] | fix the key or its permissions (revocation looks like this); a key of the right name that lacks the slot's version is `KeyNotFound` |
/// | [`Error::KeyringNotFound`] | name an existing keyring directory (or create one) |
/// | [`Error::Throttled`], [`Error::Unavailable`] | transient ([`Error::is_transient`]): back off and retry |
/// | [`Error::PolicyRefused`] | the operation breaks a CMK rule; change the request or, knowingly, the [`KeyRules`](crate::policy::KeyRules) or [`RewrapPolicy`](crate::policy::RewrapPolicy) |
/// | [`Error::InvalidKey`] | the key material is unusable (bad PEM, not RSA) |
/// | [`Error::InvalidArgument`] | a caller-supplied parameter is out of range |
/// | [`Error::UntrustedFile`] | fix the file's owner or mode as the message says |
/// | [`Error::NotFound`] | name an existing object (a blob, its container) |
/// | [`Error::Conflict`] | someone else changed a shared record first (a concurrent rotation): re-read, then decide again |
/// | [`Error::Backend`], [`Error::Io`] | infrastructure failure: retry or escalate |
///
/// Tampering and a wrong key deliberately give the same [`Error::DecryptionFailed`], so an
/// attacker learns nothing from which one happened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a well-formed CMKE v1 envelope or header.
    #[error("malformed envelope: {0}")]
    Malformed(#[from] Malformed),

    /// Authentication failed: the data was modified, the associated data differs, or the
    /// data key could not be recovered with the key that claimed the slot.
    #[error("decryption failed")]
    DecryptionFailed,

    /// No configured key wrapper holds any of the keys that wrapped this envelope.
    #[error("no key for this envelope: it names {}", .kids.join(", "))]
    NoKeyForKid {
        /// The kids named by the envelope's key slots.
        kids: Vec<String>,
    },

    /// The key exists but the caller may not use it for this operation.
    #[error("access denied to key {kid}: {detail}")]
    AccessDenied {
        /// The key identifier.
        kid: String,
        /// What is missing (for example the permission).
        detail: String,
    },

    /// The key exists but is disabled, or outside its validity window.
    #[error("key {kid} is disabled: {detail}")]
    KeyDisabled {
        /// The key identifier.
        kid: String,
        /// Why the key is unusable.
        detail: String,
    },

    /// The key, or this version of it, does not exist (never did, deleted or purged).
    #[error("key not found: {kid}{}", in_parentheses(.detail))]
    KeyNotFound {
        /// The key identifier (or key name) that was looked up.
        kid: String,
        /// Which operation looked, and what the service said (may be empty).
        detail: String,
    },

    /// The key service kept asking us to slow down, after the retries: transient, retry
    /// later (more slowly).
    #[error("throttled by the key service on {kid}: {detail}{}", .retry_after.map(|d| format!("; retry after {} s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The key (with version when known) the call was for.
        kid: String,
        /// The operation and what the service said.
        detail: String,
        /// How long the service asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The key service could not be reached, or kept failing, after the retries: timeouts,
    /// refused connections, 5xx answers. Transient: retry later.
    #[error("key service unavailable for {kid}: {detail}")]
    Unavailable {
        /// The key (with version when known) the call was for.
        kid: String,
        /// The operation and what went wrong.
        detail: String,
    },

    /// The operation breaks a rule of the [`KeyRules`](crate::policy::KeyRules) or the [`RewrapPolicy`](crate::policy::RewrapPolicy) (key size, rotation
    /// across vaults, no way back from a customer-managed key, ...).
    #[error("refused by key policy: {0}")]
    PolicyRefused(String),

    /// Key material that cannot be used: not PEM, not PKCS#8, not RSA, inconsistent.
    #[error("invalid key: {0}")]
    InvalidKey(String),

    /// A caller-supplied argument is out of range (segment size, key name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The key store itself is missing or unusable.
    #[error("keyring not found at {}", .0.display())]
    KeyringNotFound(PathBuf),

    /// A backend (crypto provider, key service) failed for a reason outside the caller's
    /// control.
    #[error("{backend} failed: {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it said (never secret bytes).
        message: String,
    },

    /// A file that decides which keys are used (keyring, key file, PIN file, configuration,
    /// PKCS#11 module) can be changed by someone other than its user: refused.
    #[error("refusing {}: {reason}", .path.display())]
    UntrustedFile {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// A conditional write lost: someone else changed the record first (two machines
    /// rotating one branch key at once). Nothing was overwritten; re-read and decide again.
    #[error("conflict on {what}: {detail}")]
    Conflict {
        /// What was being written (a branch key's `current`, a record).
        what: String,
        /// What the store said.
        detail: String,
    },

    /// The object (a blob) does not exist, or its container does not.
    #[error("not found: {what}{}", in_parentheses(.detail))]
    NotFound {
        /// What was looked for (a blob's URL).
        what: String,
        /// Which operation looked, and what the service said.
        detail: String,
    },

    /// Reading or writing a file or stream failed.
    #[error("I/O error{}: {source}", .path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default())]
    Io {
        /// The file involved, when there is one.
        path: Option<PathBuf>,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// An I/O error, unless it carries this crate's error: the `std::io` adapters
/// ([`stream`](crate::stream)) report tampering, wrong keys and key problems inside an
/// `io::Error`, and `?` must give those back as themselves (a tampered stream is
/// [`Error::DecryptionFailed`], not a retryable I/O error).
/// The crate's error inside an `io::Error`. `io::Error::source` skips its payload and gives
/// the payload's own source, so the payload is this wrapper, whose source is the crate's
/// error; it reads exactly as the crate's error.
struct InIoError(Error);

impl std::fmt::Display for InIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for InIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InIoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        if source
            .get_ref()
            .is_some_and(|inner| inner.is::<InIoError>())
        {
            if let Some(Ok(inner)) = source.into_inner().map(|e| e.downcast::<InIoError>()) {
                return inner.0;
            }
            // Unreachable: the inner error was checked to be ours just above.
            return Error::Backend {
                backend: "stream",
                message: "lost an inner error".to_owned(),
            };
        }
        Error::Io { path: None, source }
    }
}

/// For callers in `std::io` code: `?` in a function returning `io::Result` works on this
/// crate's results. The kind says what to do (tampering and wrong keys are `InvalidData`,
/// as the [`stream`](crate::stream) readers give them; a key the caller may not use is
/// `PermissionDenied`; a missing key `NotFound`; a throttled service `ResourceBusy`, an
/// unreachable one `TimedOut`; bad arguments `InvalidInput`), and the crate's error stays
/// inside: the `io::Error`'s `source()` is the crate's error (so an error-chain walker or
/// `anyhow` finds it), its message is the crate's, and converting back with `Error::from`
/// returns it unchanged. An I/O error with no path comes back as itself.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use cmk_envelope::{software::Keyring, Envelope};
///
/// let dir = tempfile::tempdir()?;
/// let keyring = Keyring::create(dir.path())?;
/// keyring.create_key("orders")?;
/// let envelope = Envelope::builder().seal_with(Arc::new(keyring.key("orders")?)).build()?;
/// let mut sealed = envelope.seal(b"row", b"").await?;
/// *sealed.last_mut().unwrap() ^= 1;
/// let tampered = envelope.open(&sealed, b"").await.map_err(std::io::Error::from);
/// assert_eq!(tampered.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
/// # Ok(()) }
/// ```
impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        use std::io::ErrorKind;
        let kind = match &error {
            Error::Io { path: None, .. } => {
                if let Error::Io { source, .. } = error {
                    return source;
                }
                ErrorKind::Other
            }
            Error::Io { source, .. } => source.kind(),
            Error::Malformed(_) | Error::DecryptionFailed => ErrorKind::InvalidData,
            Error::AccessDenied { .. }
            | Error::KeyDisabled { .. }
            | Error::PolicyRefused(_)
            | Error::UntrustedFile { .. } => ErrorKind::PermissionDenied,
            Error::NoKeyForKid { .. }
            | Error::KeyNotFound { .. }
            | Error::KeyringNotFound(_)
            | Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Throttled { .. } => ErrorKind::ResourceBusy,
            Error::Unavailable { .. } => ErrorKind::TimedOut,
            Error::InvalidKey(_) | Error::InvalidArgument(_) => ErrorKind::InvalidInput,
            Error::Conflict { .. } | Error::Backend { .. } => ErrorKind::Other,
        };
        std::io::Error::new(kind, InIoError(error))
    }
}

impl Error {
    /// An I/O error on a named file.
    pub(crate) fn io_at(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: Some(path.into()),
            source,
        }
    }

    /// True for failures that may go away by themselves: the key service throttled or could
    /// not be reached after the retries. Retrying later (more slowly) may succeed; for every
    /// other error a retry gives the same answer.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Throttled { .. } | Error::Unavailable { .. })
    }

    /// A copy of this error for one more caller (the same failure reported for each of
    /// several objects): the same variant and the same words; an I/O error keeps its kind
    /// and message.
    #[must_use]
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Malformed(m) => Error::Malformed(*m),
            Error::DecryptionFailed => Error::DecryptionFailed,
            Error::NoKeyForKid { kids } => Error::NoKeyForKid { kids: kids.clone() },
            Error::AccessDenied { kid, detail } => Error::AccessDenied {
                kid: kid.clone(),
                detail: detail.clone(),
            },
            Error::KeyDisabled { kid, detail } => Error::KeyDisabled {
                kid: kid.clone(),
                detail: detail.clone(),
            },
            Error::KeyNotFound { kid, detail } => Error::KeyNotFound {
                kid: kid.clone(),
                detail: detail.clone(),
            },
            Error::NotFound { what, detail } => Error::NotFound {
                what: what.clone(),
                detail: detail.clone(),
            },
            Error::Throttled {
                kid,
                detail,
                retry_after,
            } => Error::Throttled {
                kid: kid.clone(),
                detail: detail.clone(),
                retry_after: *retry_after,
            },
            Error::Unavailable { kid, detail } => Error::Unavailable {
                kid: kid.clone(),
                detail: detail.clone(),
            },
            Error::PolicyRefused(why) => Error::PolicyRefused(why.clone()),
            Error::InvalidKey(why) => Error::InvalidKey(why.clone()),
            Error::InvalidArgument(why) => Error::InvalidArgument(why.clone()),
            Error::KeyringNotFound(dir) => Error::KeyringNotFound(dir.clone()),
            Error::UntrustedFile { path, reason } => Error::UntrustedFile {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Backend { backend, message } => Error::Backend {
                backend,
                message: message.clone(),
            },
            Error::Conflict { what, detail } => Error::Conflict {
                what: what.clone(),
                detail: detail.clone(),
            },
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
        }
    }

    /// True for errors that mean "the key cannot be used by this caller": access denied,
    /// disabled, not found, no key configured for the kid. Revocation surfaces as one of
    /// these, never as [`Error::DecryptionFailed`].
    #[must_use]
    pub fn is_key_problem(&self) -> bool {
        matches!(
            self,
            Error::NoKeyForKid { .. }
                | Error::AccessDenied { .. }
                | Error::KeyDisabled { .. }
                | Error::KeyNotFound { .. }
                | Error::KeyringNotFound(_)
                | Error::PolicyRefused(_)
                | Error::InvalidKey(_)
        )
    }
}

fn in_parentheses(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
