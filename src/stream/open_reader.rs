//! A `Read` that opens as data arrives, releasing each segment only after its tag verifies.

use std::io::{self, BufRead, Read, Write};

use zeroize::{Zeroize, Zeroizing};

use super::pipeline::{self, Direction};
use super::source::PeekableReader;
use super::to_io;
use crate::engine::SegmentEngine;
use crate::envelope::OpenInfo;
use crate::error::Result;
use crate::format::Malformed;

/// Opens an envelope from an underlying reader one segment at a time, in memory of about
/// two segments whatever the object's size.
///
/// Each segment's plaintext is released only after its tag verifies; truncation, extension
/// and reordering fail. Plaintext already read from earlier segments was authentic, but the
/// object as a whole is only known complete when `read` returns `Ok(0)`: treat what you
/// read as provisional until then (or use [`Envelope::open`](crate::Envelope::open) for all-or-nothing).
pub struct OpenReader<R: Read> {
    pub(super) inner: PeekableReader<R>,
    pub(super) engine: SegmentEngine,
    /// Wire bytes of a full segment.
    pub(super) wire_segment: usize,
    /// One wire segment plus one byte of look-ahead, which tells whether it is the last.
    pub(super) wire: Vec<u8>,
    /// Verified plaintext of the current segment; wiped when dropped.
    pub(super) plain: Zeroizing<Vec<u8>>,
    pub(super) plain_pos: usize,
    pub(super) next_index: u64,
    pub(super) state: State,
    pub(super) info: OpenInfo,
    /// Threads [`OpenReader::copy_to`] may use.
    pub(super) threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Reading,
    Done,
    Failed,
}

impl<R: Read> std::fmt::Debug for OpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenReader")
            .field("kid", &self.info.kid())
            .field("segments_read", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<R: Read> OpenReader<R> {
    /// What opening tells about the object ([`OpenInfo`]): the kid, whether it is stale,
    /// and the re-wrapped header, known as soon as the reader exists.
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        &self.info
    }

    /// Writes the rest of the plaintext to `sink` on up to
    /// [`EnvelopeBuilder::max_threads`](crate::EnvelopeBuilder::max_threads) threads (all
    /// cores by default): while one thread reads or writes a batch of segments, another
    /// verifies and decrypts, each batch in place in its own buffer. A batch is written only
    /// after all its segments verify, and batches are written in order; as with `read`, the
    /// object is known complete only when this returns `Ok`.
    ///
    /// Returns the number of plaintext bytes written.
    ///
    /// # Errors
    /// As `read`: tampering, truncation, extension and reordering fail, and so do errors of
    /// the source or of `sink`; afterwards the reader releases nothing more.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cmk_envelope::Error> {
    /// # use std::sync::Arc;
    /// # use cmk_envelope::{software::Keyring, Envelope};
    /// # let dir = tempfile::tempdir()?;
    /// # let keyring = Keyring::create(dir.path())?;
    /// # keyring.create_key("logs")?;
    /// # let envelope = Envelope::builder().seal_with(Arc::new(keyring.key("logs")?)).build()?;
    /// let sealed = envelope.seal(&[7; 300_000], b"").await?;
    /// let mut reader = envelope.open_reader(sealed.as_slice(), b"").await?;
    /// let mut plaintext = Vec::new();
    /// reader.copy_to(&mut plaintext)?;
    /// assert_eq!(plaintext, [7; 300_000]);
    /// # Ok(()) }
    /// ```
    pub fn copy_to<W: Write + Send>(&mut self, mut sink: W) -> io::Result<u64>
    where
        R: Send,
    {
        // Plaintext already verified and not yet read goes first.
        let available = self.fill_buf()?;
        let mut written = available.len() as u64;
        sink.write_all(available)?;
        self.plain_pos = self.plain.len();
        if self.state == State::Done {
            return Ok(written);
        }
        let buffered = std::mem::take(&mut self.wire);
        // Every segment before this point was full: it was not the last.
        let opened_before = self.next_index * self.segment_plain_len();
        let source = io::Cursor::new(buffered).chain(self.inner.get_mut());
        match pipeline::run(
            Direction::Open,
            &self.engine,
            self.next_index,
            self.threads,
            source,
            &mut sink,
        ) {
            Ok(finished) => {
                self.next_index = finished.next_index;
                self.state = State::Done;
                written += finished.written;
                crate::observe::object("open", "stream", opened_before + finished.written);
                Ok(written)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(to_io(e))
            }
        }
    }

    /// Reads until the buffer holds a wire segment and one more byte, or the source ends;
    /// returns whether it holds them. The buffer grows with what arrives, not to the size
    /// the header claims.
    fn fill(&mut self) -> io::Result<bool> {
        let want = self.wire_segment + 1;
        let buffered = self.wire.len();
        let filled = self.inner.fill_growing(&mut self.wire, buffered, want);
        let filled = filled.inspect_err(|_| self.wire.clear())?;
        self.wire.truncate(filled);
        Ok(filled == want)
    }

    /// Plaintext bytes in a full segment.
    fn segment_plain_len(&self) -> u64 {
        self.wire_segment.saturating_sub(crate::format::TAG_LEN) as u64
    }

    /// Opens the next segment into `plain`.
    fn next_segment(&mut self) -> Result<()> {
        let more = self.fill()?;
        let index = self.next_index;
        let Some((len, last)) = self.engine.next_segment(index, self.wire.len(), !more)? else {
            // `fill` stops only at a segment and a byte, or at the end.
            return Err(Malformed::BodyLength.into());
        };
        self.engine
            .open_to_vec(index, last, &self.wire[..len], &mut self.plain)?;
        self.wire.drain(..len);
        if last {
            self.state = State::Done;
            let total = index * self.segment_plain_len() + self.plain.len() as u64;
            crate::observe::object("open", "stream", total);
        }
        self.plain_pos = 0;
        self.next_index += 1;
        Ok(())
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let available = self.fill_buf()?;
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// `fill_buf` hands out the verified plaintext of the current segment without a copy.
impl<R: Read> BufRead for OpenReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        loop {
            if self.state == State::Failed {
                return Err(io::Error::other(
                    "this stream failed earlier; no further plaintext is released",
                ));
            }
            if self.plain_pos < self.plain.len() || self.state == State::Done {
                return Ok(&self.plain[self.plain_pos..]);
            }
            if let Err(e) = self.next_segment() {
                self.plain.zeroize();
                self.state = State::Failed;
                return Err(to_io(e));
            }
        }
    }

    fn consume(&mut self, amount: usize) {
        self.plain_pos = (self.plain_pos + amount).min(self.plain.len());
    }
}
