//! tokio `AsyncWrite` / `AsyncRead` adapters (feature `tokio`): the same segment logic as the
//! `std::io` ones, driven by polling.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use zeroize::{Zeroize, Zeroizing};

use super::growth::{grow_wiping, next_wire_len};
use super::to_io;
use crate::engine::SegmentEngine;
use crate::envelope::OpenInfo;
use crate::error::Result;
use crate::format::Malformed;

/// Seals what is written into an `AsyncWrite`, one segment at a time.
///
/// **`shutdown().await` finishes the object** (writes the last segment, then shuts the
/// inner writer down). An object that is never shut down has no last segment and never
/// opens.
pub struct AsyncSealWriter<W> {
    pub(super) inner: W,
    pub(super) engine: SegmentEngine,
    pub(super) segment_size: usize,
    pub(super) pending: Zeroizing<Vec<u8>>,
    /// Sealed bytes not yet accepted by `inner`.
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) next_index: u64,
    pub(super) finished: bool,
}

impl<W> std::fmt::Debug for AsyncSealWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSealWriter")
            .field("segments_sealed", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncSealWriter<W> {
    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Takes back the underlying writer (after `shutdown`, the complete object).
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn seal_pending(&mut self, last: bool) -> Result<()> {
        self.engine
            .seal_to_vec(self.next_index, last, &self.pending, &mut self.out)?;
        self.pending.zeroize();
        self.out_pos = 0;
        self.next_index += 1;
        Ok(())
    }

    /// Hands sealed bytes to the inner writer until none are left.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncSealWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Err(io::Error::other("write after shutdown")));
        }
        ready!(this.poll_drain(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A full segment is sealed only once more data shows it is not the last.
        if this.pending.len() == this.segment_size {
            this.seal_pending(false).map_err(to_io)?;
            // Accept the data now; the sealed segment drains on the next call.
        }
        let n = (this.segment_size - this.pending.len()).min(data.len());
        this.pending.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.finished {
            ready!(this.poll_drain(cx))?;
            let total = this.next_index * this.segment_size as u64 + this.pending.len() as u64;
            this.seal_pending(true).map_err(to_io)?;
            this.finished = true;
            crate::observe::object("seal", "stream", total);
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Opens an envelope from an `AsyncRead`, releasing each segment only after its tag
/// verifies (the same rules as [`OpenReader`](super::OpenReader)).
pub struct AsyncOpenReader<R> {
    pub(super) inner: R,
    pub(super) engine: SegmentEngine,
    pub(super) wire_segment: usize,
    pub(super) wire: Vec<u8>,
    pub(super) filled: usize,
    pub(super) eof: bool,
    pub(super) plain: Zeroizing<Vec<u8>>,
    pub(super) plain_pos: usize,
    pub(super) next_index: u64,
    pub(super) done: bool,
    pub(super) failed: bool,
    pub(super) info: OpenInfo,
}

impl<R> std::fmt::Debug for AsyncOpenReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncOpenReader")
            .field("kid", &self.info.kid())
            .field("segments_read", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncOpenReader<R> {
    /// What opening tells about the object ([`OpenInfo`]), known as soon as the reader
    /// exists.
    #[must_use]
    pub fn info(&self) -> &OpenInfo {
        &self.info
    }

    /// Fills the buffer to one wire segment plus one byte, or to the end of the source,
    /// growing it with what arrives rather than to the size the header claims.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let want = self.wire_segment + 1;
        while !self.eof && self.filled < want {
            if self.filled == self.wire.len() {
                grow_wiping(&mut self.wire, next_wire_len(self.filled, want));
            }
            let mut buf = ReadBuf::new(&mut self.wire[self.filled..]);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                self.eof = true;
            }
            self.filled += n;
        }
        Poll::Ready(Ok(()))
    }

    fn open_next(&mut self) -> Result<()> {
        let index = self.next_index;
        let Some((len, last)) = self.engine.next_segment(index, self.filled, self.eof)? else {
            // `poll_fill` stops only at a segment and a byte, or at the end.
            return Err(Malformed::BodyLength.into());
        };
        self.engine
            .open_to_vec(index, last, &self.wire[..len], &mut self.plain)?;
        // Keep what follows (the look-ahead byte) as the start of the next segment.
        self.wire.copy_within(len..self.filled, 0);
        self.filled -= len;
        self.done = last;
        if last {
            let full = self.wire_segment.saturating_sub(crate::format::TAG_LEN) as u64;
            let total = index * full + self.plain.len() as u64;
            crate::observe::object("open", "stream", total);
        }
        self.plain_pos = 0;
        self.next_index += 1;
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncOpenReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(Err(io::Error::other(
                    "this stream failed earlier; no further plaintext is released",
                )));
            }
            if this.plain_pos < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_pos);
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = ready!(this.poll_fill(cx)) {
                this.failed = true;
                this.plain.zeroize();
                return Poll::Ready(Err(e));
            }
            if let Err(e) = this.open_next() {
                this.failed = true;
                this.plain.zeroize();
                return Poll::Ready(Err(to_io(e)));
            }
        }
    }
}
