//! `cmke key`, and the key services a run may use: the keyring, Key Vault (and its
//! credentials), PKCS#11 tokens, and the pool that keeps one connection per key.

#[cfg(feature = "azure")]
pub mod azure_login;
pub mod command;
pub mod hsm;
pub mod names;
pub mod pool;
pub mod report;
pub mod run_target;
pub mod sources;
pub mod vault;
