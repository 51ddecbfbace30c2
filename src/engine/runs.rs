//! Cutting a whole body into runs of consecutive segments, one per thread.
//!
//! Every segment's nonce and place depend only on its index, so the runs can be processed
//! in any order and the output is byte-identical to one thread's.

use std::ops::Range;

use rayon::prelude::*;

use super::workers;
use crate::error::Result;
use crate::format::BodyLayout;

/// Below this many body bytes a second thread costs more than it saves: handing work to a
/// pool thread costs tens to hundreds of microseconds, and at 1 MiB the parallel path was
/// slower than one thread (`cargo bench --bench seal_open -- 1MiB`; figures in the README,
/// "Performance").
const PARALLEL_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// The runs of segments a body of `layout` is cut into, first to last: one run for a small
/// body or one thread, else one per thread, of equal length except the last.
pub(crate) fn segment_runs(layout: BodyLayout, max_threads: usize) -> Vec<Range<u64>> {
    let segments = layout.segments();
    let threads = if layout.body_len() < PARALLEL_MIN_BYTES {
        1
    } else {
        workers(max_threads) as u64
    };
    let per = segments.div_ceil(threads.clamp(1, segments.max(1)));
    (0..segments)
        .step_by(usize::try_from(per.max(1)).unwrap_or(usize::MAX))
        .map(|first| first..first.saturating_add(per).min(segments))
        .collect()
}

/// Runs `job` on every item, on rayon's pool when there is more than one (a pool, because
/// starting a thread per object costs about as much as encrypting a megabyte). The first
/// error is returned.
pub(crate) fn run_all<T: Send>(
    items: Vec<T>,
    job: impl Fn(T) -> Result<()> + Sync + Send,
) -> Result<()> {
    if items.len() <= 1 {
        return items.into_iter().try_for_each(job);
    }
    items.into_par_iter().try_for_each(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_segment_once_in_order() {
        for (segment, len, threads) in [
            (64u32, 0u64, 8usize),
            (64, 1000, 8),
            (64, 5_000_000, 1),
            (64, 5_000_000, 2),
            (64, 5_000_000, 3),
            (65_536, 64 << 20, 2),
        ] {
            let layout = BodyLayout::for_plaintext(segment, len).expect("layout");
            let runs = segment_runs(layout, threads);
            assert!(runs.len() <= workers(threads));
            assert_eq!(runs.first().map(|r| r.start), Some(0));
            assert_eq!(runs.last().map(|r| r.end), Some(layout.segments()));
            assert!(runs.windows(2).all(|w| w[0].end == w[1].start));
            assert!(runs.iter().all(|r| !r.is_empty()));
            if layout.body_len() < PARALLEL_MIN_BYTES {
                assert_eq!(runs.len(), 1);
            }
        }
    }
}
