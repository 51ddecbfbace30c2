//! A downloaded blob's body, a stream of byte chunks from the SDK, as a tokio `AsyncRead`,
//! so that the envelope's verifying reader can read it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use azure_core::http::AsyncResponseBody;
use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// The body of one download, in order; its errors become `io::Error`s carrying the
/// crate's error (so `?` into [`crate::Error`] gives it back, typed).
pub(crate) struct BodyReader {
    body: AsyncResponseBody,
    chunk: Bytes,
    /// Where the download is: for the error message.
    url: String,
    received: u64,
}

impl BodyReader {
    pub(crate) fn new(body: AsyncResponseBody, url: String) -> Self {
        Self {
            body,
            chunk: Bytes::new(),
            url,
            received: 0,
        }
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.chunk.is_empty() {
            match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(chunk)) => this.chunk = chunk,
                Some(Err(e)) => {
                    let error = super::errors::storage_error(
                        e,
                        &this.url,
                        &format!("downloading (after {} bytes)", this.received),
                        "the identity needs Storage Blob Data Reader on the container",
                    );
                    return Poll::Ready(Err(io::Error::from(error)));
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.chunk.len().min(buf.remaining());
        buf.put_slice(&this.chunk.split_to(n));
        this.received += n as u64;
        Poll::Ready(Ok(()))
    }
}
