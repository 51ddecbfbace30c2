//! `cmke rewrap` and `verify` over a blob container (or a prefix in it): the paged listing
//! walked as it is read, `--jobs` blobs at once within the memory budget, `--shard I/N`,
//! and the same report as for files (one line per blob, its URL in place of a path).

use std::path::PathBuf;
use std::sync::Arc;

use cmk_envelope::blob::{BlobContainer, BlobEntry};
use cmk_envelope::{Error, RewrapTarget};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use super::report::{Outcome, Report, Summary};
use crate::cli::shard::Shard;
use crate::keys::pool::KeyPool;
use crate::keys::sources::KeySources;

/// Memory one blob job may hold: a verifying download keeps two 4 MiB ranges in flight
/// and, for a client-side encrypted blob, one region of up to 16 MiB; a re-wrap re-sends
/// at most one 4 MiB block at a time.
const BLOB_JOB_MEMORY: u64 = 32 << 20;

/// The container and prefix a URL names.
pub fn open_container(
    sources: &KeySources,
    url: &str,
) -> crate::cli::failure::Result<(Arc<BlobContainer>, String)> {
    let (container, prefix) = crate::keys::vault::blob_container(url, sources.azure_credential)?;
    let prefix = if prefix.is_empty() {
        prefix
    } else {
        format!("{prefix}/")
    };
    Ok((Arc::new(container), prefix))
}

/// Jobs at once: `--jobs`, and no more than the memory budget holds.
fn concurrency(jobs: usize, max_memory: u64) -> usize {
    let by_memory = usize::try_from(max_memory / BLOB_JOB_MEMORY).unwrap_or(usize::MAX);
    jobs.min(by_memory).max(1)
}

/// What a bulk run does to each blob.
#[derive(Clone)]
pub enum BlobJob {
    Rewrap(RewrapTarget),
    Verify { aad: String },
}

/// Runs `job` on every blob under `url` (in `shard`, when given); each blob's failure is in
/// the summary, and only a listing that cannot be read stops the run.
///
/// # Errors
/// A URL that is not a container's; the listing's first page failing (no container,
/// access denied).
pub async fn run(
    sources: &KeySources,
    url: &str,
    job: BlobJob,
    shard: Option<Shard>,
    jobs: usize,
    max_memory: u64,
    quiet: bool,
) -> crate::cli::failure::Result<Summary> {
    let (container, prefix) = open_container(sources, url)?;
    let pool = sources.pool();
    let report = Arc::new(Report::new(0, quiet));
    let mut summary = Summary::default();
    let listing = container.list(&prefix).filter_map(|entry| {
        let keep = match &entry {
            Ok(entry) => shard.is_none_or(|s| s.holds(&entry.name)),
            Err(_) => true,
        };
        std::future::ready(keep.then_some(entry))
    });
    let mut first_error = None;
    let mut outcomes = listing
        .map(|entry| {
            let (container, pool, job, report) = (
                Arc::clone(&container),
                Arc::clone(&pool),
                job.clone(),
                Arc::clone(&report),
            );
            async move {
                match entry {
                    Err(e) => (None, Outcome::Failed(e)),
                    Ok(entry) => {
                        report.bar.inc_length(1);
                        let url = container.blob_url(&entry.name);
                        let span = crate::cli::trace::file_span(std::path::Path::new(&url));
                        let outcome = tracing::Instrument::instrument(
                            one(&container, &pool, &job, &entry),
                            span.clone(),
                        )
                        .await;
                        span.record("outcome", outcome.label());
                        (Some(url), outcome)
                    }
                }
            }
        })
        .buffer_unordered(concurrency(jobs, max_memory));
    while let Some((shown, outcome)) = outcomes.next().await {
        match shown {
            Some(url) => report.file(&PathBuf::from(url), &outcome),
            None => {
                // A page of the listing failed: what was listed is done, the rest unknown.
                if let Outcome::Failed(e) = &outcome {
                    first_error.get_or_insert_with(|| e.duplicate());
                }
            }
        }
        summary.add(outcome);
    }
    report.bar.finish_and_clear();
    if let Some(error) = first_error {
        if summary.done + summary.current == 0 {
            return Err(error.into());
        }
        eprintln!(
            "cmke: {url}: the listing stopped: {error}; run again to finish (what is current \
             is skipped)"
        );
    }
    Ok(summary)
}

async fn one(
    container: &BlobContainer,
    pool: &KeyPool,
    job: &BlobJob,
    entry: &BlobEntry,
) -> Outcome {
    if !entry.block_blob {
        return Outcome::NotCmke;
    }
    let head = match container.head(&entry.name).await {
        Ok(head) => head,
        Err(Error::Malformed(_)) => return Outcome::NotCmke,
        Err(e) => return Outcome::Failed(e),
    };
    let envelope = match pool.envelope_for(head.header()).await {
        Ok(envelope) => envelope,
        Err(e) => return Outcome::Failed(e),
    };
    match job {
        BlobJob::Rewrap(target) => {
            match container
                .rewrap_head(&envelope, &head, target.clone())
                .await
            {
                Ok(Some(done)) => Outcome::Rewrapped {
                    from: done.from_kid,
                    to: done.to_kid,
                },
                Ok(None) => Outcome::Current,
                Err(Error::Conflict { .. }) => Outcome::Changed,
                Err(e) => Outcome::Failed(e),
            }
        }
        BlobJob::Verify { aad } => {
            let verified = async {
                let mut reader = container
                    .download(&envelope, &entry.name, aad.as_bytes())
                    .await?;
                let mut sink = vec![0u8; 1 << 20];
                while reader.read(&mut sink).await.map_err(Error::from)? > 0 {}
                Ok::<_, Error>(reader.info().kid().to_owned())
            };
            match verified.await {
                Ok(kid) => Outcome::Verified { kid },
                Err(e) => Outcome::Failed(e),
            }
        }
    }
}
