//! The command line, the configuration file, exit codes, and the helpers every command
//! family shares.

pub mod args;
pub mod config;
pub mod escape;
pub mod exit;
pub mod failure;
pub mod io;
pub mod io_error;
pub mod shard;
pub mod size;
pub mod stats;
pub mod trace;
