//! `rewrap` and `verify` over many files: bounded parallelism, a progress bar on a
//! terminal, one failure never stopping or harming the rest, and a summary.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::format::Malformed;
use cmk_envelope::{Error, Result, RewrapTarget};

use crate::run_target::RunTarget;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::escape;
use crate::io::io_error;
use crate::replace::{self, NotReplaced, Opened};
use crate::sources::{KeyPool, KeySources};
use crate::walk::{self, Found, Kind, Temp};

/// What happened to one file.
enum Outcome {
    Rewrapped {
        from: String,
        to: String,
    },
    WouldRewrap {
        from: String,
        to: String,
    },
    Current,
    Verified {
        kid: String,
    },
    NotCmke,
    AttachedSkipped,
    /// The body of a detached header, verified with that header.
    DetachedBody,
    SymlinkSkipped,
    TempLeftAlone(&'static str),
    StaleTempSkipped,
    StaleTempRemoved,
    /// Left as it was, for the reason given (exit code at least 1).
    Refused(String),
    /// Changed by someone else while it was being re-wrapped: left as they made it.
    Changed,
    /// A header file alone, met by `verify` without `--detached`: proves nothing.
    HeaderOnly,
    Failed(Error),
}

/// Counts for the summary, and the worst exit code.
#[derive(Default)]
pub struct Summary {
    pub done: usize,
    pub current: usize,
    pub skipped: usize,
    pub temps_removed: usize,
    pub refused: usize,
    pub changed: usize,
    pub failed: usize,
    /// The worst exit code among failures: 3 a key problem, 2 bad input, 1 the rest; 4
    /// (transient) only when every failure was transient, so that a script that retries on
    /// 4 retries only runs that can succeed.
    pub worst_exit: u8,
}

/// Exit codes from least to most severe for a run of many files.
fn severity(code: u8) -> u8 {
    match code {
        crate::EXIT_TRANSIENT => 1,
        0 => 0,
        other => other.saturating_add(1),
    }
}

impl Summary {
    fn add(&mut self, outcome: Outcome) {
        let mut fail = |code: u8| {
            if severity(code) > severity(self.worst_exit) {
                self.worst_exit = code;
            }
        };
        match outcome {
            Outcome::Rewrapped { .. } | Outcome::WouldRewrap { .. } | Outcome::Verified { .. } => {
                self.done += 1
            }
            Outcome::Current => self.current += 1,
            Outcome::NotCmke
            | Outcome::AttachedSkipped
            | Outcome::DetachedBody
            | Outcome::SymlinkSkipped
            | Outcome::TempLeftAlone(_)
            | Outcome::StaleTempSkipped => self.skipped += 1,
            Outcome::StaleTempRemoved => self.temps_removed += 1,
            Outcome::Refused(_) => {
                fail(crate::EXIT_USAGE_OR_IO);
                self.refused += 1;
            }
            Outcome::Changed => {
                fail(crate::EXIT_USAGE_OR_IO);
                self.changed += 1;
            }
            Outcome::HeaderOnly => {
                fail(crate::EXIT_BAD_INPUT);
                self.failed += 1;
            }
            Outcome::Failed(e) => {
                fail(crate::exit_code(&e));
                self.failed += 1;
            }
        }
    }
}

/// How a bulk run reports.
pub struct Report {
    bar: ProgressBar,
    quiet: bool,
}

impl Report {
    fn new(files: usize, quiet: bool) -> Self {
        // Drawn on stderr only when it is a terminal; hidden in pipes and logs.
        let bar = ProgressBar::new(u64::try_from(files).unwrap_or(u64::MAX)).with_style(
            ProgressStyle::with_template("{pos}/{len} files {wide_bar} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, quiet }
    }

    fn file(&self, path: &Path, outcome: &Outcome) {
        self.bar.inc(1);
        let shown = escape::path(path);
        let line = match outcome {
            Outcome::Rewrapped { from, to } => {
                format!("re-wrapped {} -> {}", escape::text(from), escape::text(to))
            }
            Outcome::WouldRewrap { from, to } => {
                format!(
                    "would re-wrap {} -> {}",
                    escape::text(from),
                    escape::text(to)
                )
            }
            Outcome::Current => "already current".to_owned(),
            Outcome::Verified { kid } => format!("ok ({})", escape::text(kid)),
            Outcome::NotCmke => "not a CMKE file: left alone".to_owned(),
            Outcome::AttachedSkipped => "attached envelope: skipped (--detached)".to_owned(),
            Outcome::DetachedBody => "body of a detached header: verified with it".to_owned(),
            Outcome::SymlinkSkipped => {
                "a symlink inside the tree: skipped (name its target to include it)".to_owned()
            }
            Outcome::TempLeftAlone(why) => format!("{why}: left alone"),
            Outcome::StaleTempRemoved => {
                "removed: a temporary file left by an interrupted cmke".to_owned()
            }
            Outcome::StaleTempSkipped => {
                "skipped: a temporary file left by an interrupted cmke (the next rewrap removes it)"
                    .to_owned()
            }
            Outcome::Refused(why) => {
                self.bar
                    .suspend(|| eprintln!("cmke: {shown}: {}", escape::text(why)));
                return;
            }
            Outcome::Changed => {
                self.bar.suspend(|| {
                    eprintln!(
                        "cmke: {shown}: changed during rewrap: left as it is now; run rewrap \
                         again to re-wrap the new version"
                    )
                });
                return;
            }
            Outcome::HeaderOnly => {
                self.bar.suspend(|| {
                    eprintln!(
                        "cmke: {shown}: a header without its body: not verified (if headers \
                         are kept apart from their bodies, say so with --detached)"
                    )
                });
                return;
            }
            Outcome::Failed(e) => {
                self.bar
                    .suspend(|| eprintln!("cmke: {shown}: {}", escape::text(&e.to_string())));
                return;
            }
        };
        if !self.quiet {
            self.bar.suspend(|| println!("{shown}: {line}"));
        }
    }
}

/// Options of a bulk re-wrap.
pub struct RewrapOptions {
    pub to: Option<String>,
    pub dry_run: bool,
    pub detached: bool,
    pub break_hard_links: bool,
    pub jobs: usize,
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
    let files = walk::files_under(paths)?;
    let pool = sources.pool();
    // A Key Vault target is not read until a file needs it: a move the policy refuses by
    // the kids alone (another vault, a software key) is refused without a network call.
    let target = match &options.to {
        Some(key) => RewrapTarget::Key(RunTarget::new(sources.target_key(key).await?)),
        None => RewrapTarget::CurrentVersion,
    };
    let report = Arc::new(Report::new(files.len(), options.quiet));
    let options = Arc::new(options);
    let summary = run_all(files, options.jobs, Arc::clone(&report), move |found| {
        let (pool, target, options) = (Arc::clone(&pool), target.clone(), Arc::clone(&options));
        async move {
            match found {
                Found::Symlink(_) => Outcome::SymlinkSkipped,
                Found::File(path) => rewrap_one(&pool, &target, &options, &path).await,
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
    let files = walk::files_under(paths)?;
    let pool = sources.pool();
    // With --detached, the bodies are verified with their headers, not on their own.
    let bodies: Arc<HashSet<PathBuf>> = Arc::new(if options.detached {
        detached_bodies(&files, &options.body_ext).await
    } else {
        HashSet::new()
    });
    let report = Arc::new(Report::new(files.len(), options.quiet));
    let options = Arc::new(options);
    let summary = run_all(files, options.jobs, Arc::clone(&report), move |found| {
        let (pool, options, bodies) =
            (Arc::clone(&pool), Arc::clone(&options), Arc::clone(&bodies));
        async move {
            match found {
                Found::Symlink(_) => Outcome::SymlinkSkipped,
                Found::File(path) if bodies.contains(&path) => Outcome::DetachedBody,
                Found::File(path) => verify_one(&pool, &options, path).await,
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
        tasks.spawn(async move {
            let outcome = job.await;
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
            Found::Symlink(_) => None,
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

async fn verify_one(pool: &KeyPool, options: &VerifyOptions, path: PathBuf) -> Outcome {
    if let Some(outcome) = temp_outcome(&path, true) {
        return outcome;
    }
    let classified = {
        let path = path.clone();
        blocking(move || walk::classify(&path)).await
    };
    let (header, header_bytes, detached) = match classified {
        Err(e) => return Outcome::Failed(e),
        Ok(Kind::Foreign { .. }) => return Outcome::Failed(Error::Malformed(Malformed::BadMagic)),
        Ok(Kind::Corrupt { error }) => return Outcome::Failed(error),
        Ok(Kind::Envelope {
            header,
            header_bytes,
            detached,
            ..
        }) => (header, header_bytes, detached),
    };
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
