//! Random access: open bytes `[a, b)` of an envelope, reading and verifying only the
//! segments that hold them, from a `Read + Seek` or (feature `tokio`) an
//! `AsyncRead + AsyncSeek`.

use std::ops::Range;

use zeroize::Zeroizing;

use crate::engine::SegmentEngine;
use crate::envelope::{OpenInfo, Opened};
use crate::error::{Error, Result};
use crate::format::{BodyLayout, Header, TAG_LEN};

/// Which segments hold a range, and where: computed from lengths alone, before any key is
/// asked for.
pub(super) struct RangePlan {
    header_len: u64,
    layout: BodyLayout,
    segment_size: u64,
    range: Range<u64>,
}

/// One segment to read.
pub(super) struct SegmentAt {
    index: u64,
    /// Where its wire bytes start in the source.
    pub(super) offset: u64,
    wire_len: usize,
}

impl RangePlan {
    pub(super) fn new(
        header: &Header,
        header_len: usize,
        total_len: u64,
        range: Range<u64>,
    ) -> Result<Self> {
        let header_len = header_len as u64;
        let body_len = total_len.saturating_sub(header_len);
        let layout = BodyLayout::for_ciphertext(header.preamble().segment_size(), body_len)?;
        if range.start > range.end || range.end > layout.plaintext_len() {
            return Err(Error::InvalidArgument(format!(
                "range {}..{} is outside the plaintext (0..{})",
                range.start,
                range.end,
                layout.plaintext_len()
            )));
        }
        Ok(Self {
            header_len,
            layout,
            segment_size: u64::from(header.preamble().segment_size()),
            range,
        })
    }

    /// The bytes of the envelope that hold every segment of the range, in one span (for a
    /// source that fetches by range); `None` for an empty range.
    #[cfg(feature = "azure-blob")]
    pub(super) fn wire_span(&self) -> Option<Range<u64>> {
        let first = self.segments().next()?;
        let last = self.segments().last()?;
        Some(first.offset..last.offset + last.wire_len as u64)
    }

    pub(super) fn segments(&self) -> impl Iterator<Item = SegmentAt> + '_ {
        // An empty range reads no segment.
        let indices = if self.range.is_empty() {
            0..0
        } else {
            self.range.start / self.segment_size..(self.range.end - 1) / self.segment_size + 1
        };
        indices.map(|index| SegmentAt {
            index,
            offset: self.header_len + self.layout.segment_wire_offset(index),
            // At most a segment and a tag: fits.
            wire_len: (self.layout.segment_plain_len(index) + TAG_LEN as u64) as usize,
        })
    }
}

/// A range being opened: the engine, the buffers, and the plaintext gathered so far (wiped
/// if a later segment fails).
pub(super) struct RangeRead<'a> {
    plan: &'a RangePlan,
    engine: SegmentEngine,
    info: OpenInfo,
    wire: Vec<u8>,
    plain: Zeroizing<Vec<u8>>,
    out: Zeroizing<Vec<u8>>,
}

impl<'a> RangeRead<'a> {
    pub(super) fn new(plan: &'a RangePlan, engine: SegmentEngine, info: OpenInfo) -> Self {
        let capacity = usize::try_from(plan.range.end - plan.range.start).unwrap_or(0);
        Self {
            plan,
            engine,
            info,
            wire: Vec::new(),
            plain: Zeroizing::new(Vec::new()),
            out: Zeroizing::new(Vec::with_capacity(capacity)),
        }
    }

    /// Takes `segment`'s wire bytes from `span`, fetched from `span_start`; a span too
    /// short to hold them is a truncated envelope.
    #[cfg(feature = "azure-blob")]
    pub(super) fn fill_from_span(
        &mut self,
        segment: &SegmentAt,
        span: &[u8],
        span_start: u64,
    ) -> Result<()> {
        let bytes = usize::try_from(segment.offset - span_start)
            .ok()
            .and_then(|from| span.get(from..from.checked_add(segment.wire_len)?))
            .ok_or(crate::format::Malformed::Truncated("body"))?;
        self.wire_buffer(segment).copy_from_slice(bytes);
        Ok(())
    }

    /// The buffer to read `segment`'s wire bytes into.
    pub(super) fn wire_buffer(&mut self, segment: &SegmentAt) -> &mut [u8] {
        self.wire.resize(segment.wire_len, 0);
        &mut self.wire
    }

    /// Verifies and decrypts `segment` (read into the wire buffer) and keeps the part of
    /// the range it holds.
    pub(super) fn open(&mut self, segment: &SegmentAt) -> Result<()> {
        let last = self.plan.layout.is_last(segment.index);
        self.engine
            .open_to_vec(segment.index, last, &self.wire, &mut self.plain)?;
        let segment_start = segment.index * self.plan.segment_size;
        let from = self.plan.range.start.saturating_sub(segment_start) as usize;
        let to = (self.plan.range.end - segment_start).min(self.plain.len() as u64) as usize;
        self.out.extend_from_slice(&self.plain[from..to]);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Opened {
        crate::observe::object("open", "range", self.out.len() as u64);
        Opened::new(std::mem::take(&mut *self.out), self.info)
    }
}
