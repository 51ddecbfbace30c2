//! The behaviour every backend must show: the crate's published suite
//! (`cmk_envelope::test_support`, feature `test-support`), run by each backend's tests.
#![allow(unused_imports)]

pub use cmk_envelope::test_support::{run, with_slots, Backend};
