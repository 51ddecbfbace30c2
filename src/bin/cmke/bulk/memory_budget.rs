//! One memory budget for all the jobs of a bulk run (`--max-memory`): a file whose
//! segments do not fit waits for room; one that could never fit fails alone, saying so.
//!
//! A planted file costs little disk (sparse) but may declare 64 MiB segments, and opening
//! it holds a few segments in memory; without a shared budget, N jobs of such files take N
//! times that.

use std::path::Path;
use std::sync::Arc;

use cmk_envelope::{Error, Result};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cli::failure::UsageError;

/// Bytes a streaming open reads at once when segments are small.
const BATCH_BYTES: u64 = 1 << 20;

/// Permits count KiB, so that a `u32` of them covers any budget.
const UNIT: u64 = 1024;

/// The budget shared by a run's jobs.
#[derive(Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    bytes: u64,
}

impl MemoryBudget {
    pub fn new(bytes: u64) -> Self {
        let units = (bytes / UNIT).clamp(1, u64::from(u32::MAX));
        Self {
            permits: Arc::new(Semaphore::new(usize::try_from(units).unwrap_or(usize::MAX))),
            bytes,
        }
    }

    /// Holds `bytes` of the budget until the permit is dropped, waiting for room.
    ///
    /// # Errors
    /// [`UsageError`] when `bytes` is more than the whole budget: the file
    /// could never be processed within it.
    pub async fn reserve(&self, bytes: u64, path: &Path) -> Result<OwnedSemaphorePermit> {
        if bytes > self.bytes {
            let _ = path;
            return Err(UsageError::new(format!(
                "processing this file needs about {} MiB (its segments are that large), \
                 more than the whole --max-memory budget of {} MiB; it is left as it is \
                 (raise --max-memory, or max_memory in cmke.toml, to process it)",
                bytes.div_ceil(1 << 20),
                self.bytes >> 20
            ))
            .into());
        }
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        Arc::clone(&self.permits)
            .acquire_many_owned(units)
            .await
            .map_err(|_| Error::Backend {
                backend: "cmke",
                message: "the memory budget was closed".to_owned(),
            })
    }
}

/// What opening a whole file as a stream holds at once: a buffer per worker thread plus
/// the reader's own, each a batch of segments (at least one segment), none larger than
/// the body there is to read.
pub fn open_need(segment_size: u32, body_len: u64) -> u64 {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let wire_segment = u64::from(segment_size) + 16;
    let buffer = wire_segment
        .max(BATCH_BYTES)
        .min(body_len.saturating_add(1));
    buffer.saturating_mul(threads as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_larger_than_the_budget_fails_alone_and_others_wait_for_room() {
        let budget = MemoryBudget::new(4 << 20);
        let refused = budget
            .reserve(5 << 20, Path::new("big.cmke"))
            .await
            .expect_err("never fits");
        assert!(refused.to_string().contains("--max-memory"), "{refused}");
        let first = budget.reserve(3 << 20, Path::new("a")).await.expect("fits");
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(2 << 20, Path::new("b")).await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.expect("joined").expect("room now");
    }

    #[test]
    fn small_bodies_need_little_and_large_segments_much() {
        assert!(open_need(65536, 100) <= 101 * 64);
        assert!(open_need(64 << 20, 1 << 30) >= 2 * (64 << 20));
    }
}
