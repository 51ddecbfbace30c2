//! A sync way into the `std::io` adapters, for threads that are not async: a sync program,
//! or a service's blocking threads (`tokio::task::spawn_blocking`).
//!
//! The adapters' constructors are `async` only for the key step (wrap or unwrap through
//! the key wrapper); the adapters themselves do blocking `std::io`. These constructors run
//! that one key step to completion on the calling thread and return the same adapters.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

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
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
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
