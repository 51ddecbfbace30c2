//! Starting a stream: the header and the segment engine of one object.
//!
//! `write` and `read` on the stream adapters work segment by segment on the calling thread.
//! Whole-stream copies (`copy_from` / `copy_to`) use [`super::pipeline`], which overlaps
//! one thread's I/O with another's crypto. Both call the same [`SegmentEngine`] as the
//! in-memory data path.

use crate::engine::SegmentEngine;
use crate::envelope::{Envelope, OpenInfo};
use crate::error::Result;
use crate::format::Header;

impl Envelope {
    /// Starts a streamed object: its header bytes and the engine for its segments.
    pub(crate) async fn start_stream_seal(&self, aad: &[u8]) -> Result<(Vec<u8>, SegmentEngine)> {
        let (header, schedule) = self.new_object().await?;
        let engine = SegmentEngine::new(schedule, header.preamble(), &self.aad_hash(aad));
        Ok((header.to_bytes(), engine))
    }

    /// Unwraps a streamed object's data key: the engine for its segments and what opening
    /// tells about the object.
    pub(crate) async fn start_stream_open(
        &self,
        header: &Header,
        header_len: usize,
        aad: &[u8],
    ) -> Result<(SegmentEngine, OpenInfo)> {
        let (engine, recovered) = self.open_engine(header, aad).await?;
        let info = self.open_info(header, header_len, &recovered).await;
        Ok((engine, info))
    }
}
