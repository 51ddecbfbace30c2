//! Branch kids: `branch:{name}/{version}`.

use std::fmt;

use super::names::{KeyName, KeyVersion};
use crate::error::{Error, Result};

/// The prefix of every branch kid.
pub const BRANCH_KID_PREFIX: &str = "branch:";

/// A branch key version's kid: `branch:{name}/{version}`, the name 1 to 127 of
/// `[A-Za-z0-9-]`, the version 32 lowercase hex characters.
///
/// ```
/// use cmk_envelope::kid::BranchKid;
/// let kid = BranchKid::parse("branch:orders/0123456789abcdef0123456789abcdef")?;
/// assert_eq!(kid.name.as_str(), "orders");
/// # Ok::<(), cmk_envelope::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchKid {
    /// The branch key's name.
    pub name: KeyName,
    /// The version.
    pub version: KeyVersion,
}

impl BranchKid {
    /// Parses a `branch:` kid.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] unless the kid is `branch:{name}/{version}` with a valid
    /// name and version.
    pub fn parse(kid: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "kid {kid:?}: expected branch:{{name}}/{{32 hex version}}"
            ))
        };
        let rest = kid.strip_prefix(BRANCH_KID_PREFIX).ok_or_else(bad)?;
        let (name, version) = rest.split_once('/').ok_or_else(bad)?;
        Ok(Self {
            name: KeyName::new(name).map_err(|_| bad())?,
            version: KeyVersion::new(version).map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for BranchKid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{BRANCH_KID_PREFIX}{}/{}", self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::BranchKid;

    #[test]
    fn branch_kids_round_trip_and_reject_junk() {
        let kid = "branch:orders-1/0123456789abcdef0123456789abcdef";
        assert_eq!(
            BranchKid::parse(kid).map(|k| k.to_string()).ok().as_deref(),
            Some(kid)
        );
        for bad in [
            "branch:orders",
            "branch:orders/0123456789ABCDEF0123456789abcdef",
            "branch:/0123456789abcdef0123456789abcdef",
            "branch:a/b/0123456789abcdef0123456789abcdef",
            "local:orders/0123456789abcdef0123456789abcdef",
        ] {
            assert!(BranchKid::parse(bad).is_err(), "{bad}");
        }
    }
}
