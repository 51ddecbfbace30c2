//! `rewrap` and `verify` over many files: bounded parallelism, a progress bar on a
//! terminal, one failure never stopping or harming the rest, and a summary.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::format::Malformed;
use cmk_envelope::Result;
use cmk_envelope::{Error, RewrapTarget};

use crate::keys::run_target::RunTarget;
use tokio::sync::Semaphore;

use crate::bulk::memory_budget::{open_need, MemoryBudget};
use crate::bulk::replace::{self, NotReplaced, Opened};
pub use crate::bulk::report::Summary;
use crate::bulk::report::{Outcome, Report};
use crate::bulk::walk::{self, Found, Kind, Temp};
use crate::cli::io::io_error;
use crate::keys::pool::KeyPool;
use crate::keys::sources::KeySources;

/// Options of a bulk re-wrap.
pub struct RewrapOptions {
    pub to: Option<String>,
    pub dry_run: bool,
    pub detached: bool,
    pub break_hard_links: bool,
    pub jobs: usize,
    /// Memory for all jobs together (`--max-memory`).
    pub max_memory: u64,
    pub quiet: bool,
}

/// Re-wraps every envelope under `paths`.
///
/// # Errors
/// Only for what stops the whole run (an unreadable path, a `--to` key that cannot be
/// used); each file's failure is in the summary.
pub async fn rewrap(
    sources: &KeySources,
    paths: &[PathBuf],
    options: RewrapOptions,
) -> Result<Summary> {
    let files = walk::files_under(paths);
    let pool = sources.pool();
    // A Key Vault target is not read until a file needs it: a move the policy refuses by
    // the kids alone (another vault, a software key) is refused without a network call.
    let target = match &options.to {
        Some(key) => RewrapTarget::Key(RunTarget::new(sources.target_key(key).await?)),
        None => RewrapTarget::CurrentVersion,
    };
    let report = Arc::new(Report::new(files.len(), options.quiet));
    let budget = MemoryBudget::new(options.max_memory);
    let options = Arc::new(options);
    let summary = run_all(files, options.jobs, Arc::clone(&report), move |found| {
        let (pool, target, options, budget) = (
            Arc::clone(&pool),
            target.clone(),
            Arc::clone(&options),
            budget.clone(),
        );
        async move {
            match found {
                Found::Symlink(_) => Outcome::SymlinkSkipped,
                Found::Unreadable(_, error) => Outcome::Failed(error),
                Found::File(path) => {
                    // A re-wrap copies the body through two fixed buffers, whatever its
                    // segments: the same share of the budget for every file.
                    let _memory = match budget.reserve(replace::REPLACE_MEMORY, &path).await {
                        Ok(permit) => permit,
                        Err(e) => return Outcome::Failed(e),
                    };
                    rewrap_one(&pool, &target, &options, &path).await
                }
            }
        }
    })
    .await;
    report.bar.finish_and_clear();
    Ok(summary)
}

/// Options of a bulk verify.
pub struct VerifyOptions {
    pub aad: String,
    /// Header files are kept apart from their bodies: the body of `X.{ext}` is the file
    /// beside it with the same stem and the extension `body_ext` (none when empty).
    pub detached: bool,
    pub body_ext: String,
    pub jobs: usize,
    /// Memory for all jobs together (`--max-memory`).
    pub max_memory: u64,
    pub quiet: bool,
}

/// Opens every envelope under `paths` and discards the plaintext.
///
/// # Errors
/// As [`rewrap`].
pub async fn verify(
    sources: &KeySources,
    paths: &[PathBuf],
    options: VerifyOptions,
) -> Result<Summary> {
    let files = walk::files_under(paths);
    let pool = sources.pool();
    // With --detached, the bodies are verified with their headers, not on their own.
    let bodies: Arc<HashSet<PathBuf>> = Arc::new(if options.detached {
        detached_bodies(&files, &options.body_ext).await
    } else {
        HashSet::new()
    });
    let report = Arc::new(Report::new(files.len(), options.quiet));
    let budget = MemoryBudget::new(options.max_memory);
    let options = Arc::new(options);
    let summary = run_all(files, options.jobs, Arc::clone(&report), move |found| {
        let (pool, options, bodies, budget) = (
            Arc::clone(&pool),
            Arc::clone(&options),
            Arc::clone(&bodies),
            budget.clone(),
        );
        async move {
            match found {
                Found::Symlink(_) => Outcome::SymlinkSkipped,
                Found::Unreadable(_, error) => Outcome::Failed(error),
                Found::File(path) if bodies.contains(&path) => Outcome::DetachedBody,
                Found::File(path) => verify_one(&pool, &options, &budget, path).await,
            }
        }
    })
    .await;
    report.bar.finish_and_clear();
    Ok(summary)
}

/// Runs `work` on every file, at most `jobs` at once, reporting each as it ends.
async fn run_all<F, Fut>(files: Vec<Found>, jobs: usize, report: Arc<Report>, work: F) -> Summary
where
    F: Fn(Found) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut summary = Summary::default();
    for found in files {
        // Waiting here, not inside the task, keeps at most `jobs` tasks alive at once.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let path = found.path().to_path_buf();
        let (report, job) = (Arc::clone(&report), work(found));
        let span = crate::cli::trace::file_span(&path);
        tasks.spawn(async move {
            let outcome = tracing::Instrument::instrument(job, span.clone()).await;
            span.record("outcome", outcome.label());
            report.file(&path, &outcome);
            drop(permit);
            outcome
        });
        while let Some(done) = tasks.try_join_next() {
            summary.add(joined(done));
        }
    }
    while let Some(done) = tasks.join_next().await {
        summary.add(joined(done));
    }
    summary
}

fn joined(result: std::result::Result<Outcome, tokio::task::JoinError>) -> Outcome {
    result.unwrap_or_else(|e| {
        Outcome::Failed(Error::Backend {
            backend: "cmke",
            message: format!("a worker failed: {e}"),
        })
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Backend {
            backend: "cmke",
            message: format!("a worker failed: {e}"),
        })?
}

/// A leftover temporary file: removed only when provably ours; anything else named like
/// one is listed and left alone.
fn temp_outcome(path: &Path, dry_run: bool) -> Option<Outcome> {
    match walk::temp_status(path) {
        Temp::No => None,
        Temp::LeftAlone(why) => Some(Outcome::TempLeftAlone(why)),
        Temp::OursStale if dry_run => Some(Outcome::StaleTempSkipped),
        Temp::OursStale => Some(match std::fs::remove_file(path) {
            Ok(()) => Outcome::StaleTempRemoved,
            Err(e) => Outcome::Failed(io_error(path, e)),
        }),
    }
}

async fn rewrap_one(
    pool: &KeyPool,
    target: &RewrapTarget,
    options: &RewrapOptions,
    path: &Path,
) -> Outcome {
    // Everything below comes from this one open file: header, body and metadata.
    let opened = {
        let (path, dry_run) = (path.to_path_buf(), options.dry_run);
        blocking(move || match temp_outcome(&path, dry_run) {
            Some(outcome) => Ok(Err(outcome)),
            None => replace::open(&path).map(Ok),
        })
        .await
    };
    let object = match opened {
        Err(e) => return Outcome::Failed(e),
        Ok(Err(outcome)) => return outcome,
        Ok(Ok(Opened::Foreign)) => return Outcome::NotCmke,
        Ok(Ok(Opened::Corrupt(error))) => return Outcome::Failed(error),
        Ok(Ok(Opened::Object(object))) => object,
    };
    if options.detached && !object.detached {
        return Outcome::AttachedSkipped;
    }
    let envelope = match pool.envelope_for(&object.header).await {
        Ok(envelope) => envelope,
        Err(e) => return Outcome::Failed(e),
    };
    let rewrapped = match envelope.rewrap(&object.header_bytes, target.clone()).await {
        Ok(None) => return Outcome::Current,
        Ok(Some(rewrapped)) => rewrapped,
        Err(e) => return Outcome::Failed(e),
    };
    let (from, to) = (
        rewrapped.from_kid().to_owned(),
        rewrapped.to_kid().to_owned(),
    );
    if let Some(why) = replace::refusal(&object, options.break_hard_links) {
        return Outcome::Refused(why);
    }
    if options.dry_run {
        return Outcome::WouldRewrap { from, to };
    }
    let new_header = rewrapped.header().to_vec();
    let replaced =
        tokio::task::spawn_blocking(move || replace::replace_header(&object, &new_header))
            .await
            .unwrap_or_else(|e| {
                Err(NotReplaced::Failed(Error::Backend {
                    backend: "cmke",
                    message: format!("a worker failed: {e}"),
                }))
            });
    match replaced {
        Ok(()) => Outcome::Rewrapped { from, to },
        Err(NotReplaced::Changed) => Outcome::Changed,
        Err(NotReplaced::Refused(why)) => Outcome::Refused(why),
        Err(NotReplaced::Failed(e)) => Outcome::Failed(e),
    }
}

/// The bodies of the detached headers among `files`.
async fn detached_bodies(files: &[Found], body_ext: &str) -> HashSet<PathBuf> {
    let files: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| match f {
            Found::File(p) => Some(p.clone()),
            Found::Symlink(_) | Found::Unreadable(..) => None,
        })
        .collect();
    let body_ext = body_ext.to_owned();
    blocking(move || {
        Ok(files
            .iter()
            .filter(|p| matches!(walk::temp_status(p), Temp::No))
            .filter(|p| matches!(walk::classify(p), Ok(Kind::Envelope { detached: true, .. })))
            .map(|p| body_path(p, &body_ext))
            .collect())
    })
    .await
    .unwrap_or_default()
}

/// Where the body of the header file `header` is: same stem, extension `body_ext`.
fn body_path(header: &Path, body_ext: &str) -> PathBuf {
    let stem = header.with_extension("");
    if body_ext.is_empty() {
        stem
    } else {
        stem.with_extension(body_ext)
    }
}

async fn verify_one(
    pool: &KeyPool,
    options: &VerifyOptions,
    budget: &MemoryBudget,
    path: PathBuf,
) -> Outcome {
    if let Some(outcome) = temp_outcome(&path, true) {
        return outcome;
    }
    let classified = {
        let path = path.clone();
        blocking(move || walk::classify(&path)).await
    };
    let (header, header_bytes, detached, len) = match classified {
        Err(e) => return Outcome::Failed(e),
        Ok(Kind::Foreign { .. }) => return Outcome::Failed(Error::Malformed(Malformed::BadMagic)),
        Ok(Kind::Corrupt { error }) => return Outcome::Failed(error),
        Ok(Kind::Envelope {
            header,
            header_bytes,
            detached,
            len,
        }) => (header, header_bytes, detached, len),
    };
    let header_bytes_len = header_bytes.len() as u64;
    let source: Box<dyn Read + Send> = if detached {
        if !options.detached {
            // A header with no body proves nothing: a failure, unless the operator said
            // headers are kept apart.
            return Outcome::HeaderOnly;
        }
        let body = body_path(&path, &options.body_ext);
        match File::open(&body) {
            Ok(file) => Box::new(std::io::Cursor::new(header_bytes).chain(file)),
            Err(e) => {
                return Outcome::Failed(Error::Io {
                    path: Some(body),
                    source: std::io::Error::new(
                        e.kind(),
                        format!("the body of this detached header is not there to verify ({e})"),
                    ),
                })
            }
        }
    } else {
        match File::open(&path) {
            Ok(file) => Box::new(file),
            Err(e) => return Outcome::Failed(io_error(&path, e)),
        }
    };
    // A detached header's body is as long as the body file; bound it by the file read.
    let body_len = if detached {
        std::fs::metadata(body_path(&path, &options.body_ext)).map_or(u64::MAX, |m| m.len())
    } else {
        len.saturating_sub(header_bytes_len)
    };
    let _memory = match budget
        .reserve(open_need(header.preamble().segment_size(), body_len), &path)
        .await
    {
        Ok(permit) => permit,
        Err(e) => return Outcome::Failed(e),
    };
    let envelope = match pool.envelope_for(&header).await {
        Ok(envelope) => envelope,
        Err(e) => return Outcome::Failed(e),
    };
    let mut reader = match envelope.open_reader(source, options.aad.as_bytes()).await {
        Ok(reader) => reader,
        Err(e) => return Outcome::Failed(e),
    };
    let kid = reader.info().kid().to_owned();
    match blocking(move || {
        reader
            .copy_to(std::io::sink())
            .map_err(cmk_envelope::stream::into_cmk_error)
    })
    .await
    {
        Ok(_) => Outcome::Verified { kid },
        Err(e) => Outcome::Failed(e),
    }
}
