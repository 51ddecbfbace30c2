//! The wire format from outside: the shared vectors (RSA and branch slots), tampering,
//! slot limits, round trips, and envelopes exchanged with the FIPS build.
//!
//! One test binary per area (each binary links the crate once); each module was a test
//! file of its own and keeps its tests and their names.

#[path = "../support/mod.rs"]
mod support;

mod branch_vectors;
mod fips_interop;
mod roundtrip_props;
mod slot_limits;
mod tamper;
mod vectors;
