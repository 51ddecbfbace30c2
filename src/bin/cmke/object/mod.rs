//! `cmke encrypt`, `decrypt` and `inspect`: one object, from a file or stdin.

#[cfg(feature = "azure-blob")]
mod blob;
pub mod commands;
