//! What a trusted path is for.

/// What a trusted path is for; it decides the checks made on the open descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustedKind {
    /// A directory whose entries choose keys: a keyring, a branch key store.
    Directory,
    /// A regular file that chooses keys or services but holds no secret (a configuration
    /// file): the user's or root's, writable by nobody else.
    Config,
    /// Code loaded into the process (a PKCS#11 module): as [`TrustedKind::Config`].
    Module,
    /// A secret (a private key, a PIN, a client secret): as [`TrustedKind::Config`], and
    /// also readable by nobody else (ssh's rule for private keys; a root-owned file may be
    /// readable by its group) and with exactly one link.
    Secret,
    /// A record or pointer inside a store or keyring: as [`TrustedKind::Config`], with
    /// exactly one link.
    Record,
}
