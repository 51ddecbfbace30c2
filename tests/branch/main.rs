//! Branch keys: the wrapper and its stores (directory, Azurite blob container), over the
//! keyring and the Key Vault double.
//!
//! One test binary per area (each binary links the crate once); each module was a test
//! file of its own and keeps its tests and their names.

#[path = "../support/mod.rs"]
mod support;

mod branch_blob;
mod branch_keys;
mod branch_keyvault;
mod branch_two_cmks;
