//! Every key service: the behaviour suite on the software keyring, SoftHSM2 and the Key
//! Vault double, the keyring on disk, and the calls made to Key Vault.
//!
//! One test binary per area (each binary links the crate once); each module was a test
//! file of its own and keeps its tests and their names.

#[path = "../support/mod.rs"]
mod support;

mod azure_keyvault;
mod behaviour_software;
mod blob_cse_python;
mod blob_envelopes;
mod keyring;
mod keyvault_calls;
mod pkcs11_hsm;
