//! Whether the data path runs on a FIPS 140-3 validated cryptographic module.
//!
//! With feature `fips`, the `aws-lc` provider is built on AWS-LC's FIPS module
//! (`aws-lc-fips-sys`) and the `rustcrypto` provider is left out of the build, so every
//! AES-GCM, HKDF, SHA-256, RSA-OAEP and random-number call of the data path is made inside
//! the module. What is validated is the module, not this crate.

/// What [`fips_status`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FipsStatus {
    /// A `fips` build, and the module reports FIPS mode (its power-on self-tests passed).
    Enabled,
    /// A `fips` build whose module does not report FIPS mode. Treat as fatal.
    NotInFipsMode,
    /// Not a `fips` build: the module in use is not the validated one.
    NotBuilt,
}

impl std::fmt::Display for FipsStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FipsStatus::Enabled => "enabled (AWS-LC FIPS 140-3 module)",
            FipsStatus::NotInFipsMode => "FAILED: a fips build whose module is not in FIPS mode",
            FipsStatus::NotBuilt => "not built (build with feature `fips`)",
        })
    }
}

/// Asks the module whether it is in FIPS mode (aws-lc-rs `try_fips_mode`).
///
/// ```
/// use cmk_envelope::crypto::{FipsStatus, fips_status};
/// match fips_status() {
///     FipsStatus::Enabled => println!("validated module"),
///     other => println!("FIPS: {other}"),
/// }
/// ```
#[must_use]
pub fn fips_status() -> FipsStatus {
    #[cfg(feature = "fips")]
    {
        match aws_lc_rs::try_fips_mode() {
            Ok(()) => FipsStatus::Enabled,
            Err(_) => FipsStatus::NotInFipsMode,
        }
    }
    #[cfg(not(feature = "fips"))]
    {
        FipsStatus::NotBuilt
    }
}

/// For services that must not run on anything but the validated module: call once at
/// start-up.
///
/// # Errors
/// [`Error::PolicyRefused`](crate::Error::PolicyRefused) unless [`fips_status`] is
/// [`FipsStatus::Enabled`].
pub fn require_fips() -> crate::Result<()> {
    match fips_status() {
        FipsStatus::Enabled => Ok(()),
        other => Err(crate::Error::PolicyRefused(format!(
            "FIPS mode required: {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_matches_the_build() {
        if cfg!(feature = "fips") {
            assert_eq!(fips_status(), FipsStatus::Enabled);
            assert!(require_fips().is_ok());
        } else {
            assert_eq!(fips_status(), FipsStatus::NotBuilt);
            assert!(matches!(
                require_fips(),
                Err(crate::Error::PolicyRefused(why)) if why.contains("feature `fips`")
            ));
        }
    }

    #[test]
    fn no_provider_outside_the_module_exists_in_a_fips_build() {
        let names: Vec<&str> = crate::crypto::Provider::all()
            .iter()
            .map(|p| p.name())
            .collect();
        if cfg!(feature = "fips") {
            assert_eq!(names, ["aws-lc"]);
        } else {
            assert!(!names.is_empty());
        }
    }
}
