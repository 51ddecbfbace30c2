//! Reading a stream's source: whole buffers, growing with what arrives, and one byte ahead
//! to learn whether the source has ended (which decides the last segment).

use std::io::{self, Read};

use super::growth::{grow_wiping, next_wire_len};

/// A reader that can look one byte ahead.
pub(crate) struct PeekableReader<R> {
    reader: R,
    /// One byte read ahead by [`PeekableReader::at_end`], handed out first by the next fill.
    lookahead: Option<u8>,
}

impl<R: Read> PeekableReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self {
            reader,
            lookahead: None,
        }
    }

    /// The reader, for reading on without the look-ahead (which must have been used up).
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Fills `buf` from the look-ahead byte and the reader, until full or the reader ends;
    /// returns the bytes filled.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        if let (Some(byte), Some(first)) = (self.lookahead, buf.first_mut()) {
            *first = byte;
            self.lookahead = None;
            filled = 1;
        }
        while let Some(space) = buf.get_mut(filled..).filter(|space| !space.is_empty()) {
            match self.reader.read(space) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Fills `buf` from byte `filled` up to `want` bytes or until the reader ends, growing
    /// it with what arrives (see [`growth`](super::growth)) rather than to `want` at once;
    /// returns the bytes it then holds. `buf` may end up longer than that: truncate it.
    pub(crate) fn fill_growing(
        &mut self,
        buf: &mut Vec<u8>,
        mut filled: usize,
        want: usize,
    ) -> io::Result<usize> {
        loop {
            if filled == buf.len() && filled < want {
                grow_wiping(buf, next_wire_len(filled, want));
            }
            let end = buf.len().min(want);
            let Some(space) = buf.get_mut(filled..end).filter(|s| !s.is_empty()) else {
                return Ok(filled);
            };
            let room = space.len();
            let got = self.fill(space)?;
            filled += got;
            if got < room {
                return Ok(filled);
            }
        }
    }

    /// Whether the reader has ended: reads one byte ahead, kept for the next fill.
    pub(crate) fn at_end(&mut self) -> io::Result<bool> {
        if self.lookahead.is_some() {
            return Ok(false);
        }
        let mut byte = [0u8; 1];
        loop {
            match self.reader.read(&mut byte) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.lookahead = Some(byte[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_across_short_reads_and_peeks_without_losing_a_byte() {
        let data: Vec<u8> = (0..=255).collect();
        let mut input = PeekableReader::new(Trickle {
            data: &data,
            step: 7,
        });
        let mut buf = vec![0u8; 100];
        assert_eq!(input.fill(&mut buf).expect("fill"), 100);
        assert!(!input.at_end().expect("peek"));
        let mut rest = Vec::new();
        assert_eq!(input.fill_growing(&mut rest, 0, 1000).expect("grow"), 156);
        assert_eq!(&rest[..156], &data[100..]);
        assert!(input.at_end().expect("end"));
    }

    #[test]
    fn growing_keeps_what_is_already_buffered() {
        let data = [9u8; 50];
        let mut input = PeekableReader::new(&data[..]);
        let mut buf = vec![1, 2];
        assert_eq!(input.fill_growing(&mut buf, 2, 30).expect("grow"), 30);
        assert_eq!(&buf[..3], &[1, 2, 9]);
        assert_eq!(input.fill_growing(&mut buf, 30, 100).expect("grow"), 52);
    }
}
