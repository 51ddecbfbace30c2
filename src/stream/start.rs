//! Every streaming method of [`Envelope`]: the `std::io` and tokio adapters, whole-stream
//! copies, ranges (the other methods are in `src/envelope/methods.rs`), and starting a
//! stream: the header and the segment engine of one object.
//!
//! `write` and `read` on the stream adapters work segment by segment on the calling thread.
//! Whole-stream copies (`copy_from` / `copy_to`) use [`super::pipeline`], which overlaps
//! one thread's I/O with another's crypto. Both call the same [`SegmentEngine`] as the
//! in-memory data path.

use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;

#[cfg(feature = "tokio")]
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use super::blocking::block_on;
use super::header_io::read_header;
#[cfg(feature = "tokio")]
use super::header_io::read_header_async;
use super::open_reader::State;
use super::range::{RangePlan, RangeRead};
use super::source::PeekableReader;
#[cfg(feature = "tokio")]
use super::{AsyncOpenReader, AsyncSealWriter};
use super::{OpenReader, SealWriter};
use crate::engine::{workers, SegmentEngine};
use crate::envelope::{Envelope, OpenInfo, Opened};
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

    /// [`Envelope::seal_writer`] for a thread that is not async.
    ///
    /// The key step runs on this thread. Key Vault's client needs a tokio runtime's context:
    /// call this from `spawn_blocking` (not from async code, which it would block), or use
    /// the async constructor. The software keyring and PKCS#11 need none.
    ///
    /// # Errors
    /// As [`Envelope::seal_writer`].
    ///
    /// ```
    /// # fn main() -> Result<(), cmk_envelope::Error> {
    /// use std::io::Write;
    /// use std::sync::Arc;
    /// use cmk_envelope::{software::Keyring, Envelope};
    /// # let dir = tempfile::tempdir()?;
    /// let keyring = Keyring::create(dir.path())?;
    /// keyring.create_key("logs")?;
    /// let envelope = Envelope::builder().seal_with(Arc::new(keyring.key("logs")?)).build()?;
    /// let mut writer = envelope.seal_writer_blocking(Vec::new(), b"day=1")?;
    /// writer.write_all(b"a line\n")?;
    /// let sealed = writer.finish()?;
    ///
    /// let mut reader = envelope.open_reader_blocking(sealed.as_slice(), b"day=1")?;
    /// let mut plaintext = Vec::new();
    /// std::io::Read::read_to_end(&mut reader, &mut plaintext)?;
    /// assert_eq!(plaintext, b"a line\n");
    /// # Ok(()) }
    /// ```
    pub fn seal_writer_blocking<W: Write>(&self, inner: W, aad: &[u8]) -> Result<SealWriter<W>> {
        block_on(self.seal_writer(inner, aad))
    }

    /// [`Envelope::open_reader`] for a thread that is not async (see
    /// [`Envelope::seal_writer_blocking`]).
    ///
    /// # Errors
    /// As [`Envelope::open_reader`].
    pub fn open_reader_blocking<R: Read>(&self, inner: R, aad: &[u8]) -> Result<OpenReader<R>> {
        block_on(self.open_reader(inner, aad))
    }

    /// [`Envelope::open_range`] for a thread that is not async (see
    /// [`Envelope::seal_writer_blocking`]).
    ///
    /// # Errors
    /// As [`Envelope::open_range`].
    pub fn open_range_blocking<R: Read + Seek>(
        &self,
        source: R,
        aad: &[u8],
        range: Range<u64>,
    ) -> Result<Opened> {
        block_on(self.open_range(source, aad, range))
    }

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
    /// As [`Envelope::open`]; [`Error::InvalidArgument`](crate::Error::InvalidArgument) when the range is reversed or ends
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

    /// [`Envelope::open_range`] for a source that fetches bytes by range (a blob): `fetch`
    /// is called once, for the span of the envelope that holds the range's segments, after
    /// the range is checked and the data key unwrapped.
    #[cfg(feature = "azure-blob")]
    pub(crate) async fn open_range_fetched<F, Fut>(
        &self,
        header: &Header,
        header_len: usize,
        total_len: u64,
        aad: &[u8],
        range: Range<u64>,
        fetch: F,
    ) -> Result<Opened>
    where
        F: FnOnce(Range<u64>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>>>,
    {
        let plan = RangePlan::new(header, header_len, total_len, range)?;
        let (engine, info) = self.start_stream_open(header, header_len, aad).await?;
        let mut reading = RangeRead::new(&plan, engine, info);
        if let Some(span) = plan.wire_span() {
            let bytes = fetch(span.clone()).await?;
            for segment in plan.segments() {
                reading.fill_from_span(&segment, &bytes, span.start)?;
                reading.open(&segment)?;
            }
        }
        Ok(reading.finish())
    }

    /// A reader that opens the envelope `inner` yields: the header is read and the data key
    /// unwrapped now; segments are verified and decrypted as they are read.
    ///
    /// A stream that ends early (cut short, or a seal that never finished) fails with
    /// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed) when the reader reaches
    /// the end without a segment marked last; what was read before is unverified as a
    /// whole until then. The reader's errors are `io::Error`s carrying the crate's error:
    /// `?` into [`Error`](crate::Error) gives it back (tampering stays `DecryptionFailed`).
    ///
    /// # Errors
    /// As [`Envelope::open`] for the header and the key; [`Error::Io`](crate::Error::Io) for the source.
    pub async fn open_reader<R: Read>(&self, mut inner: R, aad: &[u8]) -> Result<OpenReader<R>> {
        let (header, header_len) = read_header(&mut inner)?;
        let (engine, info) = self.start_stream_open(&header, header_len, aad).await?;
        let wire_segment = engine.wire_segment();
        Ok(OpenReader {
            inner: PeekableReader::new(inner),
            engine,
            wire_segment,
            wire: Vec::new(),
            plain: Zeroizing::new(Vec::new()),
            plain_pos: 0,
            next_index: 0,
            state: State::Reading,
            info,
            threads: workers(self.max_threads),
        })
    }

    /// A writer that seals into `inner`: the header is written now, segments as data
    /// arrives, the last one by [`SealWriter::finish`].
    ///
    /// # Errors
    /// As [`Envelope::seal`]; [`Error::Io`](crate::Error::Io) when the header cannot be written.
    pub async fn seal_writer<W: Write>(&self, mut inner: W, aad: &[u8]) -> Result<SealWriter<W>> {
        let (header, engine) = self.start_stream_seal(aad).await?;
        inner.write_all(&header)?;
        let segment_size = engine.segment_size();
        Ok(SealWriter {
            inner,
            engine,
            segment_size,
            pending: Zeroizing::new(Vec::with_capacity(segment_size)),
            sealed: Vec::new(),
            next_index: 0,
            broken: false,
            threads: workers(self.max_threads),
        })
    }
}

#[cfg(feature = "tokio")]
impl Envelope {
    /// An `AsyncWrite` that seals into `inner`; see [`AsyncSealWriter`].
    ///
    /// # Errors
    /// As [`Envelope::seal`]; [`Error::Io`](crate::Error::Io) when the header cannot be written.
    pub async fn seal_async_writer<W: AsyncWrite + Unpin>(
        &self,
        mut inner: W,
        aad: &[u8],
    ) -> Result<AsyncSealWriter<W>> {
        let (header, engine) = self.start_stream_seal(aad).await?;
        inner.write_all(&header).await?;
        let segment_size = engine.segment_size();
        Ok(AsyncSealWriter {
            inner,
            engine,
            segment_size,
            pending: Zeroizing::new(Vec::with_capacity(segment_size)),
            out: Vec::new(),
            out_pos: 0,
            next_index: 0,
            finished: false,
        })
    }

    /// An `AsyncRead` that opens the envelope `inner` yields; see [`AsyncOpenReader`].
    ///
    /// # Errors
    /// As [`Envelope::open`] for the header and the key; [`Error::Io`](crate::Error::Io) for the source.
    pub async fn open_async_reader<R: AsyncRead + Unpin>(
        &self,
        mut inner: R,
        aad: &[u8],
    ) -> Result<AsyncOpenReader<R>> {
        let (header, header_len) = read_header_async(&mut inner).await?;
        let (engine, info) = self.start_stream_open(&header, header_len, aad).await?;
        let wire_segment = engine.wire_segment();
        Ok(AsyncOpenReader {
            inner,
            engine,
            wire_segment,
            wire: Vec::new(),
            filled: 0,
            eof: false,
            plain: Zeroizing::new(Vec::new()),
            plain_pos: 0,
            next_index: 0,
            done: false,
            failed: false,
            info,
        })
    }
}
