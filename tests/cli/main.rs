//! `cmke` as operators run it: every command, attacks on its inputs, branch keys, Key
//! Vault (and logins), PKCS#11, trust of paths, and files changing during a re-wrap.
//!
//! One test binary per area (each binary links the crate once); each module was a test
//! file of its own and keeps its tests and their names.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod cli_attacks;
mod cli_blob;
mod cli_branch;
mod cli_branch_blob;
mod cli_keyvault;
mod cli_keyvault_login;
mod cli_operators;
mod cli_pkcs11;
mod cli_rewrap_race;
mod cli_trust;
mod cli_vault_trust;
