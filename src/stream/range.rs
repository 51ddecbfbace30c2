//! Random access: open bytes `[a, b)` of an envelope, reading and verifying only the
//! segments that hold them, from a `Read + Seek` or (feature `tokio`) an
//! `AsyncRead + AsyncSeek`.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use zeroize::Zeroizing;

use super::header_io::read_header;
use crate::engine::SegmentEngine;
use crate::envelope::{Envelope, OpenInfo, Opened};
use crate::error::{Error, Result};
use crate::format::{BodyLayout, Header, TAG_LEN};

impl Envelope {
    /// Opens plaintext bytes `range` of the attached envelope in `source` (a file, or a
    /// `std::io::Cursor` over bytes). Only the segments holding the range are read and
    /// verified; each is checked with its index and last flag, so a segment moved from
    /// elsewhere fails. A truncated object fails when the range reaches its end (the
    /// segment found there is not marked last); a range that lies wholly within segments
    /// that are still intact opens, since the segments after it are never read. To prove a
    /// whole object, open all of it ([`Envelope::open`], [`Envelope::open_reader`]).
    ///
    /// Returns the range's plaintext with the [`OpenInfo`](crate::OpenInfo) every open gives.
    /// The reads block: in an async service, use `open_async_range` (feature `tokio`) or
    /// call this from `spawn_blocking`.
    ///
    /// # Errors
    /// As [`Envelope::open`]; [`Error::InvalidArgument`] when the range is reversed or ends
    /// past the plaintext.
    pub async fn open_range<R: Read + Seek>(
        &self,
        mut source: R,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Opened> {
        source.seek(SeekFrom::Start(0))?;
        let (header, header_len) = read_header(&mut source)?;
        let total = source.seek(SeekFrom::End(0))?;
        let plan = RangePlan::new(&header, header_len, total, range)?;
        let (engine, info) = self.start_stream_open(&header, header_len, aad).await?;
        let mut reading = RangeRead::new(&plan, engine, info);
        for segment in plan.segments() {
            source.seek(SeekFrom::Start(segment.offset))?;
            source.read_exact(reading.wire_buffer(&segment))?;
            reading.open(&segment)?;
        }
        Ok(reading.finish())
    }

    /// [`Envelope::open_range`] over a tokio `AsyncRead + AsyncSeek` (feature `tokio`): the
    /// same checks, without blocking the executor on the reads.
    ///
    /// # Errors
    /// As [`Envelope::open_range`].
    #[cfg(feature = "tokio")]
    pub async fn open_async_range<R>(
        &self,
        mut source: R,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Opened>
    where
        R: tokio::io::AsyncRead + tokio::io::AsyncSeek + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        source.seek(SeekFrom::Start(0)).await?;
        let (header, header_len) = super::header_io::read_header_async(&mut source).await?;
        let total = source.seek(SeekFrom::End(0)).await?;
        let plan = RangePlan::new(&header, header_len, total, range)?;
        let (engine, info) = self.start_stream_open(&header, header_len, aad).await?;
        let mut reading = RangeRead::new(&plan, engine, info);
        for segment in plan.segments() {
            source.seek(SeekFrom::Start(segment.offset)).await?;
            source.read_exact(reading.wire_buffer(&segment)).await?;
            reading.open(&segment)?;
        }
        Ok(reading.finish())
    }
}

/// Which segments hold a range, and where: computed from lengths alone, before any key is
/// asked for.
struct RangePlan {
    header_len: u64,
    layout: BodyLayout,
    segment_size: u64,
    range: Range<u64>,
}

/// One segment to read.
struct SegmentAt {
    index: u64,
    /// Where its wire bytes start in the source.
    offset: u64,
    wire_len: usize,
}

impl RangePlan {
    fn new(header: &Header, header_len: usize, total_len: u64, range: Range<u64>) -> Result<Self> {
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

    fn segments(&self) -> impl Iterator<Item = SegmentAt> + '_ {
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
struct RangeRead<'a> {
    plan: &'a RangePlan,
    engine: SegmentEngine,
    info: OpenInfo,
    wire: Vec<u8>,
    plain: Zeroizing<Vec<u8>>,
    out: Zeroizing<Vec<u8>>,
}

impl<'a> RangeRead<'a> {
    fn new(plan: &'a RangePlan, engine: SegmentEngine, info: OpenInfo) -> Self {
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

    /// The buffer to read `segment`'s wire bytes into.
    fn wire_buffer(&mut self, segment: &SegmentAt) -> &mut [u8] {
        self.wire.resize(segment.wire_len, 0);
        &mut self.wire
    }

    /// Verifies and decrypts `segment` (read into the wire buffer) and keeps the part of
    /// the range it holds.
    fn open(&mut self, segment: &SegmentAt) -> Result<()> {
        let last = self.plan.layout.is_last(segment.index);
        self.engine
            .open_to_vec(segment.index, last, &self.wire, &mut self.plain)?;
        let segment_start = segment.index * self.plan.segment_size;
        let from = self.plan.range.start.saturating_sub(segment_start) as usize;
        let to = (self.plan.range.end - segment_start).min(self.plain.len() as u64) as usize;
        self.out.extend_from_slice(&self.plain[from..to]);
        Ok(())
    }

    fn finish(mut self) -> Opened {
        Opened::new(std::mem::take(&mut *self.out), self.info)
    }
}
