//! Trusting a path: a file or directory that decides which keys, services or code are used
//! is used only when every part of its path is the operator's, checked on the open file.
//!
//! The model is ssh's and sudo's:
//! - every ancestor directory up to `/` belongs to root or to the user running this
//!   process and is not writable by group or others, except a root-owned sticky directory
//!   such as `/tmp` (where nobody can rename or remove another user's entries);
//! - a symlink on the way is followed only when the link itself is root's or the user's
//!   (it sits in a directory already checked), and its target is checked the same way;
//! - the file at the end is opened with `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK` (a FIFO
//!   cannot block the open), then checked on the open descriptor with `fstat`: owner, mode,
//!   file type, and one link for secrets and records;
//! - that descriptor is what gets read: nothing is opened by its name a second time.
//!
//! Whoever can write a keyring, a branch store or a configuration file chooses the keys of
//! future objects, so each refusal names the file, what is wrong and the command that
//! fixes it. See `docs/FORMAT.md` for the layouts these checks guard.

#[cfg(unix)]
mod atomic;
#[cfg(unix)]
mod checks;
#[cfg(unix)]
mod dir;
mod file;
mod kind;
#[cfg(unix)]
mod temp_names;
#[cfg(unix)]
mod walk;

#[cfg(unix)]
pub use atomic::AtomicFile;
#[cfg(unix)]
pub(crate) use dir::{create_private_dir, TrustedDir};
pub(crate) use file::too_large;
pub use file::{check_file_trust, TrustedFile};
pub use kind::TrustedKind;
#[cfg(unix)]
pub use temp_names::{parse_temp_name, temp_name, TEMP_MARKER};
