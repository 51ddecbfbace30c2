//! Random access: open bytes `[a, b)` of an envelope, reading and verifying only the
//! segments that hold them.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;

use super::header_io::read_header;
use crate::envelope::{Envelope, Opened};
use crate::error::{Error, Result};
use crate::format::{BodyLayout, TAG_LEN};

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
        let body_len = total.saturating_sub(header_len as u64);
        let segment_size = u64::from(header.preamble().segment_size());
        let layout = BodyLayout::for_ciphertext(header.preamble().segment_size(), body_len)?;
        if range.start > range.end || range.end > layout.plaintext_len() {
            return Err(Error::InvalidArgument(format!(
                "range {}..{} is outside the plaintext (0..{})",
                range.start,
                range.end,
                layout.plaintext_len()
            )));
        }
        let (engine, info) = self.start_stream_open(&header, header_len, aad).await?;
        // Verified plaintext gathered so far is wiped if a later segment fails.
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
            usize::try_from(range.end - range.start).unwrap_or(0),
        ));
        if range.is_empty() {
            return Ok(Opened::new(std::mem::take(&mut *out), info));
        }
        let first = range.start / segment_size;
        let last = (range.end - 1) / segment_size;
        let mut wire = Vec::new();
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        for index in first..=last {
            let wire_len = layout.segment_plain_len(index) + TAG_LEN as u64;
            source.seek(SeekFrom::Start(
                header_len as u64 + layout.segment_wire_offset(index),
            ))?;
            wire.resize(wire_len as usize, 0);
            source.read_exact(&mut wire)?;
            engine.open_to_vec(index, layout.is_last(index), &wire, &mut plain)?;
            let segment_start = index * segment_size;
            let from = range.start.saturating_sub(segment_start) as usize;
            let to = (range.end - segment_start).min(plain.len() as u64) as usize;
            out.extend_from_slice(&plain[from..to]);
        }
        Ok(Opened::new(std::mem::take(&mut *out), info))
    }
}
