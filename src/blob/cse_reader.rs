//! A client-side encrypted (v2) blob's body as an `AsyncRead` of its plaintext: region by
//! region, each verified before any of it is handed out.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use zeroize::Zeroizing;

use super::body_reader::BodyReader;
use super::cse::RegionOpener;

pub(crate) struct CseReader {
    body: BodyReader,
    opener: RegionOpener,
    region_wire: usize,
    /// The region being read off the wire.
    wire: Vec<u8>,
    filled: usize,
    plain: Zeroizing<Vec<u8>>,
    plain_pos: usize,
    next_index: u64,
    eof: bool,
    failed: bool,
}

impl CseReader {
    pub(crate) fn new(body: BodyReader, opener: RegionOpener, region_wire: usize) -> Self {
        Self {
            body,
            opener,
            region_wire,
            wire: vec![0; region_wire],
            filled: 0,
            plain: Zeroizing::new(Vec::new()),
            plain_pos: 0,
            next_index: 0,
            eof: false,
            failed: false,
        }
    }
}

impl AsyncRead for CseReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.failed {
                return Poll::Ready(Err(io::Error::from(crate::Error::DecryptionFailed)));
            }
            if this.plain_pos < this.plain.len() {
                let n = (this.plain.len() - this.plain_pos).min(buf.remaining());
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof && this.filled == 0 {
                return Poll::Ready(Ok(()));
            }
            // Fill one region (or what is left of the body).
            while !this.eof && this.filled < this.region_wire {
                let mut read = ReadBuf::new(&mut this.wire[this.filled..]);
                ready!(Pin::new(&mut this.body).poll_read(cx, &mut read))?;
                let n = read.filled().len();
                if n == 0 {
                    this.eof = true;
                } else {
                    this.filled += n;
                }
            }
            if this.filled == 0 {
                continue;
            }
            let wire = this.wire.get(..this.filled).unwrap_or_default();
            let opened = this.opener.open(this.next_index, wire, &mut this.plain);
            this.filled = 0;
            this.plain_pos = 0;
            this.next_index += 1;
            if opened.is_err() {
                this.failed = true;
            }
        }
    }
}
