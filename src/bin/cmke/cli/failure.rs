//! Why a `cmke` run failed: the operator's command line or configuration, or the library.

use std::fmt;

/// A command line, environment or configuration file the operator must fix before running
/// again. Not the library's [`cmk_envelope::Error`]: nothing was tried yet.
#[derive(Debug)]
pub struct UsageError(String);

impl UsageError {
    /// A usage error saying what is wrong and how to fix it.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usage: {}", self.0)
    }
}

impl std::error::Error for UsageError {}

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// The command line, the environment or cmke.toml: fix it and run again (exit code 1).
    Usage(UsageError),
    /// What the library reported (its exit code follows its kind).
    Envelope(cmk_envelope::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(usage) => usage.fmt(f),
            Failure::Envelope(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Usage(usage) => Some(usage),
            Failure::Envelope(error) => Some(error),
        }
    }
}

impl From<UsageError> for Failure {
    fn from(usage: UsageError) -> Self {
        Failure::Usage(usage)
    }
}

impl From<cmk_envelope::Error> for Failure {
    fn from(error: cmk_envelope::Error) -> Self {
        Failure::Envelope(error)
    }
}

/// The result of a `cmke` step.
pub type Result<T> = std::result::Result<T, Failure>;

/// Where a step runs under the library (a key pool, a key wrapper), a usage error found
/// there travels as the library's [`cmk_envelope::Error::InvalidArgument`]; the exit code
/// is the same (1).
impl From<Failure> for cmk_envelope::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Usage(UsageError(message)) => cmk_envelope::Error::InvalidArgument(message),
            Failure::Envelope(error) => error,
        }
    }
}

impl From<UsageError> for cmk_envelope::Error {
    fn from(usage: UsageError) -> Self {
        Failure::Usage(usage).into()
    }
}

impl From<cmk_envelope::format::Malformed> for Failure {
    fn from(malformed: cmk_envelope::format::Malformed) -> Self {
        Failure::Envelope(malformed.into())
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::Envelope(error.into())
    }
}
