//! CMKE v1 wire format: parse and write headers, lay out segments.
//!
//! This module does no cryptography and no I/O. Every length read from input is checked
//! against a limit of [`limits`] before it is used, and nothing here can panic on any input.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::panic
)]

mod body;
mod header;
pub mod limits;
mod malformed;
mod reader;
mod slot;

pub use body::{segment_nonce, BodyLayout, SEGMENT_AAD_LEN, TAG_LEN};
pub use header::{
    header_len, Header, HeaderLen, Preamble, MAGIC, SUITE_AES256GCM_HKDF_COMMIT, VERSION,
};
pub use malformed::Malformed;
pub use slot::{KeySlot, WrapAlgorithm, BRANCH_WRAPPED_LEN};
