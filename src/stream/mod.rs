//! Streaming: `std::io` adapters that seal and open in memory bounded by the segment size,
//! and random access to a range of an envelope.
//!
//! The adapters are built by async constructors on [`Envelope`](crate::Envelope) (the data
//! key is wrapped or unwrapped there, which may call a key service); after that, reading and
//! writing are plain blocking `std::io`.
//!
//! Errors surface as `std::io::Error`. Those that come from this crate have kind
//! `InvalidData` (or `Other`) and carry the crate's [`Error`](crate::Error) as their inner
//! error: get it back with [`into_cmk_error`].

#[cfg(feature = "tokio")]
mod async_io;
mod blocking;
mod growth;
mod header_io;
mod io_error;
mod open_reader;
mod pipeline;
mod range;
mod seal_writer;
mod source;
mod start;

#[cfg(feature = "tokio")]
pub use async_io::{AsyncOpenReader, AsyncSealWriter};
pub(crate) use header_io::read_header;
pub use header_io::read_header_bytes;
pub use io_error::into_cmk_error;
pub(crate) use io_error::to_io;
pub use open_reader::OpenReader;
pub use seal_writer::SealWriter;
