//! A `Write` that seals as data arrives.

use std::io::{self, Read, Write};

use zeroize::{Zeroize, Zeroizing};

use super::pipeline::{self, Direction};
use super::to_io;
use crate::engine::SegmentEngine;
use crate::error::Result;

/// Seals everything written to it into the underlying writer one segment at a time, in
/// memory of about two segments whatever the object's size.
///
/// **Call [`SealWriter::finish`].** The last segment is written only then; an unfinished
/// stream has no last segment and never opens (dropping it does not finish it, because a
/// silently truncated object must not look complete).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cmk_envelope::Error> {
/// use std::io::Write;
/// use std::sync::Arc;
/// use cmk_envelope::{software::Keyring, Envelope};
/// # let dir = tempfile::tempdir()?;
/// # let keyring = Keyring::create(dir.path())?;
/// # keyring.create_key("logs")?;
/// let envelope = Envelope::builder().seal_with(Arc::new(keyring.key("logs")?)).build()?;
/// let mut writer = envelope.seal_writer(Vec::new(), b"day=1").await?;
/// for line in ["a\n", "b\n"] {
///     writer.write_all(line.as_bytes())?;
/// }
/// let sealed: Vec<u8> = writer.finish()?;
/// assert_eq!(envelope.open(&sealed, b"day=1").await?.plaintext(), b"a\nb\n");
/// # Ok(()) }
/// ```
pub struct SealWriter<W: Write> {
    pub(super) inner: W,
    pub(super) engine: SegmentEngine,
    pub(super) segment_size: usize,
    /// Plaintext of the current segment; wiped when dropped.
    pub(super) pending: Zeroizing<Vec<u8>>,
    pub(super) sealed: Vec<u8>,
    pub(super) next_index: u64,
    pub(super) broken: bool,
    /// Threads [`SealWriter::copy_from`] may use.
    pub(super) threads: usize,
}

impl<W: Write> std::fmt::Debug for SealWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealWriter")
            .field("segments_written", &self.next_index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> SealWriter<W> {
    /// Seals the buffered segment and writes it.
    fn emit(&mut self, last: bool) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending);
        let sealed = self.seal_and_write(&pending, last);
        *self.pending = pending;
        self.pending.zeroize();
        sealed
    }

    /// Seals a full segment that is known not to be the last, straight from `segment`.
    fn emit_from(&mut self, segment: &[u8]) -> Result<()> {
        self.seal_and_write(segment, false)
    }

    fn seal_and_write(&mut self, plaintext: &[u8], last: bool) -> Result<()> {
        self.engine
            .seal_to_vec(self.next_index, last, plaintext, &mut self.sealed)?;
        self.inner.write_all(&self.sealed)?;
        self.next_index += 1;
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier write failed; this sealed stream is incomplete and will not open",
            ));
        }
        Ok(())
    }

    /// Seals everything `source` yields, as if written with `write_all`, on up to
    /// [`EnvelopeBuilder::max_threads`](crate::EnvelopeBuilder::max_threads) threads (all
    /// cores by default): while one thread reads or writes a batch of segments, another
    /// encrypts, each batch in place in its own buffer. Output is byte-identical to writing
    /// the same bytes. The object still ends only with [`SealWriter::finish`].
    ///
    /// Returns the number of bytes read from `source`.
    ///
    /// # Errors
    /// Errors of `source` or of the underlying writer; afterwards the stream is broken, as
    /// after a failed `write`.
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
    /// let source: &[u8] = &[7; 300_000];
    /// let mut writer = envelope.seal_writer(Vec::new(), b"").await?;
    /// writer.copy_from(source)?;
    /// let sealed = writer.finish()?;
    /// assert_eq!(envelope.open(&sealed, b"").await?.plaintext(), source);
    /// # Ok(()) }
    /// ```
    pub fn copy_from<R: Read + Send>(&mut self, source: R) -> io::Result<u64>
    where
        W: Send,
    {
        self.check()?;
        // What is already buffered goes first; the source's last bytes come back into
        // `pending`, to be sealed as the last segment by `finish`.
        let buffered = std::mem::take(&mut *self.pending);
        let already = buffered.len() as u64;
        let source = io::Cursor::new(Zeroizing::new(buffered)).chain(source);
        match pipeline::run(
            Direction::Seal,
            &self.engine,
            self.next_index,
            self.threads,
            source,
            &mut self.inner,
        ) {
            Ok(finished) => {
                self.next_index = finished.next_index;
                let segments = finished.written / self.engine.wire_segment() as u64;
                let read = segments * self.segment_size as u64 + finished.tail.len() as u64;
                self.pending = finished.tail;
                Ok(read - already)
            }
            Err(e) => {
                self.broken = true;
                Err(to_io(e))
            }
        }
    }

    /// Writes the last segment and flushes; returns the underlying writer.
    ///
    /// # Errors
    /// The underlying writer's errors; an error if an earlier write failed (the output is
    /// then incomplete and does not open).
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        let total = self.next_index * self.segment_size as u64 + self.pending.len() as u64;
        self.emit(true).map_err(to_io)?;
        self.inner.flush()?;
        crate::observe::object("seal", "stream", total);
        Ok(self.inner)
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let mut rest = data;
        while !rest.is_empty() {
            // A full segment is sealed only once more data shows it is not the last.
            if self.pending.len() == self.segment_size {
                if let Err(e) = self.emit(false) {
                    self.broken = true;
                    return Err(to_io(e));
                }
            }
            // Whole segments with data after them are sealed straight from the caller's
            // buffer, without passing through `pending`.
            if self.pending.is_empty() && rest.len() > self.segment_size {
                let (segment, after) = rest.split_at(self.segment_size);
                if let Err(e) = self.emit_from(segment) {
                    self.broken = true;
                    return Err(to_io(e));
                }
                rest = after;
                continue;
            }
            let n = (self.segment_size - self.pending.len()).min(rest.len());
            let (head, after) = rest.split_at(n);
            self.pending.extend_from_slice(head);
            rest = after;
        }
        Ok(data.len())
    }

    /// Flushes what has been sealed so far. The buffered (not yet sealed) part of the
    /// current segment stays buffered: only [`SealWriter::finish`] ends the object.
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.inner.flush()
    }
}
