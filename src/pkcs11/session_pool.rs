//! Blocking PKCS#11 calls, kept off the async executor.
//!
//! Each worker thread owns one logged-in session (a PKCS#11 session must not be used by two
//! threads at once) and runs jobs from a shared queue; the caller awaits the answer. So at
//! most `sessions` calls run in the token at once, and an async task waiting for the HSM
//! holds no executor thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::session::Session;
use futures_channel::oneshot;

use crate::error::{Error, Result};

type Job = Box<dyn FnOnce(&Session) + Send>;

/// Worker threads, one per session.
pub(crate) struct SessionPool {
    jobs: Mutex<Option<Sender<Job>>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl SessionPool {
    /// Starts one worker per session. Workers stop when the pool is dropped, closing their
    /// sessions.
    pub(crate) fn start(sessions: Vec<Session>, name: &str) -> Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut workers = Vec::with_capacity(sessions.len());
        for (n, session) in sessions.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("pkcs11-{name}-{n}"))
                    .spawn(move || work(&session, &queue))
                    .map_err(|e| Error::Backend {
                        backend: super::backend::BACKEND,
                        message: format!("cannot start a session worker: {e}"),
                    })?,
            );
        }
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            workers,
        })
    }

    /// How many sessions (and so calls at once) the pool has.
    pub(crate) fn size(&self) -> usize {
        self.workers.len()
    }

    /// Runs `job` on the next free session and returns what it returns.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Session) -> T + Send + 'static,
    ) -> Result<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |session| {
            let _ = answer.send(job(session));
        });
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())
    }
}

impl Drop for SessionPool {
    /// Closes every session before the pool is gone: a module whose sessions are still
    /// being closed by detached threads while the process exits can crash in its exit-time
    /// clean-up (SoftHSM2 does).
    fn drop(&mut self) {
        drop(
            self.jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn work(session: &Session, queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else {
            return; // the pool is gone
        };
        // A panicking job loses its answer (the caller gets an error), not the worker.
        let _ = catch_unwind(AssertUnwindSafe(|| job(session)));
    }
}

fn stopped() -> Error {
    Error::Backend {
        backend: super::backend::BACKEND,
        message: "the PKCS#11 session worker stopped".to_owned(),
    }
}

/// Runs `work` on a thread of its own and awaits it: for one-off blocking calls (loading
/// the module, logging in) that have no session yet.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (answer, answered) = oneshot::channel();
    std::thread::Builder::new()
        .name("pkcs11-setup".to_owned())
        .spawn(move || {
            let _ = answer.send(work());
        })
        .map_err(|e| Error::Backend {
            backend: super::backend::BACKEND,
            message: format!("cannot start a thread: {e}"),
        })?;
    answered.await.map_err(|_| stopped())
}
