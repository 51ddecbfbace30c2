//! `cmke encrypt`, `decrypt` and `inspect`: one object, from a file or stdin.

pub mod commands;
