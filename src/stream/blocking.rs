//! A sync way into the `std::io` adapters, for threads that are not async: a sync program,
//! or a service's blocking threads (`tokio::task::spawn_blocking`).
//!
//! The adapters' constructors are `async` only for the key step (wrap or unwrap through
//! the key wrapper); the adapters themselves do blocking `std::io`. These constructors run
//! that one key step to completion on the calling thread and return the same adapters.

use std::future::Future;
use std::io::{Read, Seek, Write};
use std::ops::Range;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use super::{OpenReader, SealWriter};
use crate::envelope::{Envelope, Opened};
use crate::error::Result;

impl Envelope {
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
}

/// Wakes the thread that waits on the future.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, parking while it waits.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::block_on;

    #[test]
    fn a_future_woken_from_another_thread_completes() {
        let (sender, receiver) = futures_channel_like();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            sender.send(7);
        });
        assert_eq!(block_on(receiver), 7);
    }

    /// A one-shot channel whose receiver is a future woken by the sender's thread.
    fn futures_channel_like() -> (Sender, Receiver) {
        let shared = std::sync::Arc::new(std::sync::Mutex::new((None, None)));
        (Sender(shared.clone()), Receiver(shared))
    }

    type Slot = std::sync::Arc<std::sync::Mutex<(Option<u8>, Option<std::task::Waker>)>>;
    struct Sender(Slot);
    struct Receiver(Slot);

    impl Sender {
        fn send(self, value: u8) {
            let mut slot = self.0.lock().expect("lock");
            slot.0 = Some(value);
            if let Some(waker) = slot.1.take() {
                waker.wake();
            }
        }
    }

    impl std::future::Future for Receiver {
        type Output = u8;
        fn poll(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<u8> {
            let mut slot = self.0.lock().expect("lock");
            match slot.0 {
                Some(value) => std::task::Poll::Ready(value),
                None => {
                    slot.1 = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        }
    }
}
