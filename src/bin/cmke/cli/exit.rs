//! Exit codes, as documented in `--help`, and which error gives which.

use cmk_envelope::Error;

use super::failure::Failure;

/// I/O failures and usage errors (a bad command line or configuration).
pub const EXIT_USAGE_OR_IO: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
const EXIT_KEY_PROBLEM: u8 = 3;
/// The key service throttled, timed out, could not be reached or kept failing: the same
/// command may succeed later. Scripts retry exactly this code.
pub const EXIT_TRANSIENT: u8 = 4;

/// The exit code of a run that stopped with `error`.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Malformed(_) | Error::DecryptionFailed => EXIT_BAD_INPUT,
        e if e.is_key_problem() => EXIT_KEY_PROBLEM,
        e if e.is_transient() => EXIT_TRANSIENT,
        _ => EXIT_USAGE_OR_IO,
    }
}

/// The exit code of a command that failed: 1 for a usage error, else as [`exit_code`].
pub fn failure_exit_code(failure: &Failure) -> u8 {
    match failure {
        Failure::Usage(_) => EXIT_USAGE_OR_IO,
        Failure::Envelope(error) => exit_code(error),
    }
}
