//! Names, versions and kids of the software keyring, validated on construction.

use std::fmt;

use crate::error::{Error, Result};

/// The prefix of every software keyring kid.
pub const LOCAL_KID_PREFIX: &str = "local:";

/// A key name: 1 to 127 of `[A-Za-z0-9-]`, so it is always a safe file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(String);

impl KeyName {
    /// Validates a key name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless the name is 1 to 127 of `[A-Za-z0-9-]`.
    pub fn new(name: &str) -> Result<Self> {
        let ok = (1..=127).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidArgument(format!(
                "key name {name:?}: use 1 to 127 letters, digits or '-'"
            )))
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key version: 32 lowercase hex characters, random, as Key Vault makes them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyVersion(String);

impl KeyVersion {
    /// Validates a version string.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless it is 32 lowercase hex characters.
    pub fn new(version: &str) -> Result<Self> {
        if Self::is_valid(version) {
            Ok(Self(version.to_owned()))
        } else {
            Err(Error::InvalidArgument(format!(
                "key version {version:?}: expected 32 lowercase hex characters"
            )))
        }
    }

    fn is_valid(version: &str) -> bool {
        version.len() == 32
            && version
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// A version from 16 random bytes.
    #[must_use]
    pub fn from_random(bytes: [u8; 16]) -> Self {
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The version.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A software keyring kid: `local:{name}/{version}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalKid {
    /// The key name.
    pub name: KeyName,
    /// The key version.
    pub version: KeyVersion,
}

impl LocalKid {
    /// Parses a `local:` kid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the kid is not `local:{name}/{version}` with a valid
    /// name and version.
    pub fn parse(kid: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "kid {kid:?}: expected local:{{name}}/{{32 hex version}}"
            ))
        };
        let rest = kid.strip_prefix(LOCAL_KID_PREFIX).ok_or_else(bad)?;
        let (name, version) = rest.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            name: KeyName::new(name).map_err(|_| bad())?,
            version: KeyVersion::new(version).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for LocalKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LOCAL_KID_PREFIX}{}/{}", self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(KeyName::new("orders-2").is_ok());
        assert!(KeyName::new(&"a".repeat(127)).is_ok());
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(128)] {
            assert!(KeyName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kids_round_trip_and_reject_junk() {
        let kid = "local:orders/0123456789abcdef0123456789abcdef";
        assert_eq!(
            LocalKid::parse(kid).map(|k| k.to_string()).ok().as_deref(),
            Some(kid)
        );
        for bad in [
            "local:orders",
            "local:orders/0123456789ABCDEF0123456789abcdef",
            "local:/0123456789abcdef0123456789abcdef",
            "https://v.vault.azure.net/keys/orders/0123456789abcdef0123456789abcdef",
            "local:../x/0123456789abcdef0123456789abcdef",
        ] {
            assert!(LocalKid::parse(bad).is_err(), "{bad}");
        }
    }
}
