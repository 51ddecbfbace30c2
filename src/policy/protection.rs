//! How a key-encryption key is protected: what the re-wrap rules and the CMK rules ask.

/// How a wrapper's key-encryption key is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProtectionLevel {
    /// A key in a file on disk (the software keyring): not customer-managed.
    Software,
    /// A key inside a hardware security module (PKCS#11).
    Hsm,
    /// A key in Azure Key Vault or Managed HSM.
    KeyVault,
}

impl ProtectionLevel {
    /// HSM and Key Vault keys are customer-managed; a software key is not.
    #[must_use]
    pub fn is_customer_managed(self) -> bool {
        !matches!(self, ProtectionLevel::Software)
    }
}

impl std::fmt::Display for ProtectionLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProtectionLevel::Software => "software",
            ProtectionLevel::Hsm => "hsm",
            ProtectionLevel::KeyVault => "key-vault",
        })
    }
}
