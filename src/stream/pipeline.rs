//! Streams on several cores, for copying a whole source through a [`SealWriter`] or out of
//! an [`OpenReader`].
//!
//! Each worker takes the next batch from the source, reading it straight into its own
//! buffer at the segments' places in the wire layout, seals or opens it there, and writes it
//! once every earlier batch is written. While one worker waits on I/O another encrypts, and
//! no byte is copied beyond the read and the write themselves (opening moves each plaintext
//! back over the tag gaps while the batch is still in cache). Output is byte-identical to
//! one segment at a time: a segment's nonce and place depend only on its index.
//!
//! [`SealWriter`]: super::SealWriter
//! [`OpenReader`]: super::OpenReader

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use zeroize::{Zeroize, Zeroizing};

use super::source::PeekableReader;
use crate::engine::SegmentEngine;
use crate::error::{Error, Result};
use crate::format::Malformed;

/// Bytes of one batch: small enough that a batch read stays in a core's cache until it is
/// encrypted and written, large enough that a batch is a few system calls, not hundreds.
const BATCH_BYTES: usize = 1 << 20;

/// Which way the data goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Plaintext in, whole sealed segments out; the source's last bytes (at most a segment,
    /// possibly none) are handed back unsealed, for the caller to seal as the last segment.
    Seal,
    /// Wire segments in (the body from its current position to the end), plaintext out.
    Open,
}

/// What a finished run leaves.
pub(crate) struct Finished {
    /// Index of the next segment after the run.
    pub(crate) next_index: u64,
    /// Bytes written to the sink.
    pub(crate) written: u64,
    /// Sealing: the plaintext held back for the last segment.
    pub(crate) tail: Zeroizing<Vec<u8>>,
}

struct Source<R> {
    input: PeekableReader<R>,
    next_batch: u64,
    next_index: u64,
    ended: bool,
    tail: Zeroizing<Vec<u8>>,
}

struct Sink<W> {
    writer: W,
    next_batch: u64,
    written: u64,
}

/// One batch as read: where it stands in the object and what the buffer holds.
struct Batch {
    number: u64,
    first_index: u64,
    /// Sealing: whole segments to seal. Opening: wire bytes in the buffer.
    amount: usize,
    /// Opening: whether the batch holds the object's last segment.
    ends_object: bool,
    /// Whether the source has nothing after this batch.
    source_ended: bool,
}

/// A worker's buffer; on drop, the part ever written is wiped (not all of it: a small
/// stream touches only the start of a batch buffer, and wiping the rest would cost a
/// megabyte of page faults).
struct BatchBuffer {
    bytes: Vec<u8>,
    dirty: usize,
}

impl BatchBuffer {
    fn new(len: usize) -> Self {
        Self {
            bytes: vec![0u8; len],
            dirty: 0,
        }
    }
}

impl Drop for BatchBuffer {
    fn drop(&mut self) {
        let end = self.dirty.min(self.bytes.len());
        self.bytes[..end].zeroize();
    }
}

struct Shared<'a, R, W> {
    direction: Direction,
    engine: &'a SegmentEngine,
    segments_per_batch: usize,
    source: Mutex<Source<R>>,
    sink: Mutex<Sink<W>>,
    turn: Condvar,
    failed: AtomicBool,
    failure: Mutex<Option<Error>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `direction` from `reader` to `writer` on `threads` threads (this one included; see
/// [`workers`](crate::engine::workers)), starting at segment `first_index`.
pub(crate) fn run<R: Read + Send, W: Write + Send>(
    direction: Direction,
    engine: &SegmentEngine,
    first_index: u64,
    threads: usize,
    reader: R,
    writer: W,
) -> Result<Finished> {
    let wire_segment = engine.wire_segment();
    let shared = Shared {
        direction,
        engine,
        segments_per_batch: (BATCH_BYTES / wire_segment).max(1),
        source: Mutex::new(Source {
            input: PeekableReader::new(reader),
            next_batch: 0,
            next_index: first_index,
            ended: false,
            tail: Zeroizing::new(Vec::new()),
        }),
        sink: Mutex::new(Sink {
            writer,
            next_batch: 0,
            written: 0,
        }),
        turn: Condvar::new(),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
    };
    std::thread::scope(|scope| {
        // Helpers start only once the source proves longer than one batch: a small stream
        // costs no thread.
        let start_helpers = || {
            for _ in 1..threads.max(1) {
                scope.spawn(|| shared.work(None));
            }
        };
        shared.work(Some(&start_helpers));
    });
    if let Some(error) = lock(&shared.failure).take() {
        return Err(error);
    }
    let source = shared
        .source
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let sink = shared
        .sink
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(Finished {
        next_index: source.next_index,
        written: sink.written,
        tail: source.tail,
    })
}

impl<R: Read, W: Write> Shared<'_, R, W> {
    fn wire_segment(&self) -> usize {
        self.engine.wire_segment()
    }

    fn batch_len(&self) -> usize {
        self.segments_per_batch * self.wire_segment()
    }

    /// One worker: batches until the source ends or any worker fails. `start_helpers` is
    /// called once, after the first batch, if the source has more.
    fn work(&self, mut start_helpers: Option<&dyn Fn()>) {
        // Opening reads wire bytes whose segment size an untrusted header chose: that
        // buffer grows with what arrives. Sealing's segment size is the caller's own.
        let mut buf = BatchBuffer::new(match self.direction {
            Direction::Seal => self.batch_len(),
            Direction::Open => 0,
        });
        while !self.failed.load(Ordering::Acquire) {
            let batch = match self.read_batch(&mut buf) {
                Ok(Some(batch)) => batch,
                Ok(None) => return,
                Err(error) => return self.fail(error),
            };
            if !batch.source_ended {
                if let Some(start) = start_helpers.take() {
                    start();
                }
            }
            let ready = match self.direction {
                Direction::Seal => self.seal_batch(&batch, &mut buf.bytes),
                Direction::Open => self.open_batch(&batch, &mut buf.bytes),
            };
            let written = ready.and_then(|len| self.write_in_turn(batch.number, &buf.bytes[..len]));
            if let Err(error) = written {
                return self.fail(error);
            }
        }
    }

    /// Records the first failure and wakes every worker waiting for its turn.
    fn fail(&self, error: Error) {
        lock(&self.failure).get_or_insert(error);
        // Under the sink's lock, so a worker about to wait cannot miss the wake-up.
        let _sink = lock(&self.sink);
        self.failed.store(true, Ordering::Release);
        self.turn.notify_all();
    }

    /// Takes the next batch from the source into `buf`; `None` once the source has ended.
    fn read_batch(&self, buf: &mut BatchBuffer) -> Result<Option<Batch>> {
        let mut source = lock(&self.source);
        if source.ended {
            return Ok(None);
        }
        let number = source.next_batch;
        source.next_batch += 1;
        let first_index = source.next_index;
        let mut batch = match self.direction {
            Direction::Seal => self.read_plaintext(&mut source, &mut buf.bytes, number)?,
            Direction::Open => {
                let batch_len = self.batch_len();
                self.read_wire(&mut source, &mut buf.bytes, batch_len, number)?
            }
        };
        batch.source_ended = source.ended;
        buf.dirty = buf
            .dirty
            .max(batch.extent(self.wire_segment(), self.direction));
        source.next_index = first_index
            .checked_add(batch.segments(self.wire_segment(), self.direction) as u64)
            .ok_or(Malformed::TooManySegments)?;
        Ok(Some(batch))
    }

    /// Sealing: whole segments into their slots; the source's last bytes become the tail.
    fn read_plaintext(&self, source: &mut Source<R>, buf: &mut [u8], number: u64) -> Result<Batch> {
        let (segment, wire) = (self.engine.segment_size(), self.wire_segment());
        let mut full = 0;
        let mut partial = 0;
        for slot in buf.chunks_exact_mut(wire) {
            let slot = &mut slot[..segment];
            let filled = source.input.fill(slot)?;
            if filled < segment {
                source.ended = true;
                partial = filled;
                break;
            }
            full += 1;
        }
        if !source.ended {
            source.ended = source.input.at_end()?;
        }
        if source.ended {
            // Hold back the last bytes: they are sealed as the last segment by `finish`.
            let (tail_slot, tail_len) = match (partial, full) {
                (0, 0) => (0, 0),
                (0, _) => {
                    full -= 1;
                    (full, segment)
                }
                (len, _) => (full, len),
            };
            let start = tail_slot * wire;
            source.tail.clear();
            source.tail.extend_from_slice(&buf[start..start + tail_len]);
        }
        Ok(Batch {
            number,
            first_index: source.next_index,
            amount: full,
            ends_object: false,
            source_ended: false,
        })
    }

    /// Opening: wire bytes, contiguous.
    fn read_wire(
        &self,
        source: &mut Source<R>,
        buf: &mut Vec<u8>,
        batch_len: usize,
        number: u64,
    ) -> Result<Batch> {
        let filled = source.input.fill_growing(buf, 0, batch_len)?;
        source.ended = filled < batch_len || source.input.at_end()?;
        if source.ended && filled == 0 && number == 0 && source.next_index == 0 {
            return Err(Malformed::BodyMissing.into());
        }
        Ok(Batch {
            number,
            first_index: source.next_index,
            amount: filled,
            ends_object: source.ended,
            source_ended: false,
        })
    }

    /// Seals the batch's segments in place, each followed by its tag; returns the bytes to
    /// write.
    fn seal_batch(&self, batch: &Batch, buf: &mut [u8]) -> Result<usize> {
        let wire = self.wire_segment();
        let slots = buf.chunks_exact_mut(wire).take(batch.amount);
        for (index, slot) in (batch.first_index..).zip(slots) {
            self.engine.seal_in_place(index, false, slot)?;
        }
        Ok(batch.amount * wire)
    }

    /// Opens the batch's segments in place and closes up the tag gaps; returns the
    /// plaintext length. Nothing of a batch is written unless all of it verifies.
    fn open_batch(&self, batch: &Batch, buf: &mut [u8]) -> Result<usize> {
        let (mut start, mut plain_len) = (0, 0);
        for index in batch.first_index.. {
            if start >= batch.amount {
                break;
            }
            let next = self
                .engine
                .next_segment(index, batch.amount - start, batch.ends_object)?;
            // A batch that does not end the object holds whole segments.
            let (len, last) = next.ok_or(Malformed::BodyLength)?;
            let window = &mut buf[plain_len..start + len];
            plain_len += self
                .engine
                .open_within(index, last, window, start - plain_len)?;
            start += len;
        }
        Ok(plain_len)
    }

    /// Waits until every earlier batch is written, then writes this one.
    fn write_in_turn(&self, number: u64, bytes: &[u8]) -> Result<()> {
        let mut sink = lock(&self.sink);
        while sink.next_batch != number {
            if self.failed.load(Ordering::Acquire) {
                return Ok(());
            }
            sink = self.turn.wait(sink).unwrap_or_else(PoisonError::into_inner);
        }
        if self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        sink.writer.write_all(bytes)?;
        sink.written += bytes.len() as u64;
        sink.next_batch += 1;
        self.turn.notify_all();
        Ok(())
    }
}

impl Batch {
    /// How far into the buffer this batch reached (sealing: its tail slot included).
    fn extent(&self, wire_segment: usize, direction: Direction) -> usize {
        match direction {
            Direction::Seal => (self.amount + 2) * wire_segment,
            Direction::Open => self.amount,
        }
    }

    fn segments(&self, wire_segment: usize, direction: Direction) -> usize {
        match direction {
            Direction::Seal => self.amount,
            Direction::Open => self.amount.div_ceil(wire_segment),
        }
    }
}

#[cfg(test)]
mod tests;
