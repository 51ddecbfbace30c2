//! The envelope and its streams: rotation, policies, the kid allowlist, streaming (std and
//! tokio), stream errors, the data-key cache, and secret hygiene.
//!
//! One test binary per area (each binary links the crate once); each module was a test
//! file of its own and keeps its tests and their names.

#[path = "../support/mod.rs"]
mod support;

mod allowlist;
mod async_streams;
mod data_key_cache;
mod failover;
mod policy;
mod rotation;
mod secret_hygiene;
mod stream_errors;
mod streaming;
