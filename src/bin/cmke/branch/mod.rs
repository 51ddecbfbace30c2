//! `cmke branch`, and re-wrapping a branch store's records.

pub mod command;
