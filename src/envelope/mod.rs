//! The data path: seal, open, re-wrap.
//!
//! `config.rs` holds [`Envelope`] and its builder; `methods.rs` every method of `Envelope`
//! but the streaming ones, which are in `src/stream/start.rs`.

mod config;
#[cfg(test)]
mod linear_cost_tests;
mod methods;
mod open;
mod rewrap;
mod seal;

pub use config::{Envelope, EnvelopeBuilder};
pub use open::{OpenInfo, Opened};
pub use rewrap::{RewrapTarget, Rewrapped};
pub use seal::Sealed;
