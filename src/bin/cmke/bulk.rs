//! `rewrap` and `verify` over many files: bounded parallelism, a progress bar on a
//! terminal, one failure never stopping or harming the rest, and a summary.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cmk_envelope::{AtomicFile, Envelope, Error, Result, RewrapTarget};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

use crate::io::{file_mode, io_error};
use crate::sources::{remote_keys_in, KeySources};
use crate::walk::{self, Kind};

/// What happened to one file.
enum Outcome {
    Rewrapped { from: String, to: String },
    WouldRewrap { from: String, to: String },
    Current,
    Verified { kid: String },
    NotCmke,
    AttachedSkipped,
    DetachedSkipped,
    StaleTempSkipped,
    StaleTempRemoved,
    Failed(Error),
}

/// Counts for the summary, and the worst failure for the exit code.
#[derive(Default)]
pub struct Summary {
    pub done: usize,
    pub current: usize,
    pub skipped: usize,
    pub temps_removed: usize,
    pub failed: usize,
    pub worst: Option<Error>,
}

impl Summary {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Rewrapped { .. } | Outcome::WouldRewrap { .. } | Outcome::Verified { .. } => {
                self.done += 1
            }
            Outcome::Current => self.current += 1,
            Outcome::NotCmke
            | Outcome::AttachedSkipped
            | Outcome::DetachedSkipped
            | Outcome::StaleTempSkipped => self.skipped += 1,
            Outcome::StaleTempRemoved => self.temps_removed += 1,
            Outcome::Failed(e) => {
                self.failed += 1;
                if self
                    .worst
                    .as_ref()
                    .is_none_or(|w| severity(&e) > severity(w))
                {
                    self.worst = Some(e);
                }
            }
        }
    }
}

/// Key problems (exit 3) outrank bad input (2), which outranks I/O and usage (1): the exit
/// code of a bulk run names the worst of its failures.
fn severity(error: &Error) -> u8 {
    crate::exit_code(error)
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
        let line = match outcome {
            Outcome::Rewrapped { from, to } => format!("re-wrapped {from} -> {to}"),
            Outcome::WouldRewrap { from, to } => format!("would re-wrap {from} -> {to}"),
            Outcome::Current => "already current".to_owned(),
            Outcome::Verified { kid } => format!("ok ({kid})"),
            Outcome::NotCmke => "not a CMKE file: left alone".to_owned(),
            Outcome::AttachedSkipped => "attached envelope: skipped (--detached)".to_owned(),
            Outcome::DetachedSkipped => {
                "detached header: its body is elsewhere, not verified".to_owned()
            }
            Outcome::StaleTempRemoved => {
                "removed: a temporary file left by an interrupted cmke".to_owned()
            }
            Outcome::StaleTempSkipped => {
                "skipped: a temporary file left by an interrupted cmke (the next rewrap removes it)"
                    .to_owned()
            }
            Outcome::Failed(e) => {
                self.bar
                    .suspend(|| eprintln!("cmke: {}: {e}", path.display()));
                return;
            }
        };
        if !self.quiet {
            self.bar.suspend(|| println!("{}: {line}", path.display()));
        }
    }
}

/// Options of a bulk re-wrap.
pub struct RewrapOptions {
    pub to: Option<String>,
    pub dry_run: bool,
    pub detached: bool,
    pub jobs: usize,
    pub quiet: bool,
}

/// Re-wraps every envelope under `paths`.
///
/// # Errors
/// Only for what stops the whole run (no keys, an unreadable path); each file's failure is
/// in the summary.
pub async fn rewrap(
    sources: &KeySources,
    paths: &[PathBuf],
    options: RewrapOptions,
) -> Result<Summary> {
    let files = walk::files_under(paths)?;
    let envelope = Arc::new(reader_for_files(sources, &files).await?);
    let target = match &options.to {
        Some(key) => RewrapTarget::Key(sources.named_key(key).await?),
        None => RewrapTarget::CurrentVersion,
    };
    let report = Arc::new(Report::new(files.len(), options.quiet));
    let options = Arc::new(options);
    let summary = run_all(files, options.jobs, Arc::clone(&report), move |path| {
        let (envelope, target, options) =
            (Arc::clone(&envelope), target.clone(), Arc::clone(&options));
        async move { rewrap_one(&envelope, &target, &options, &path).await }
    })
    .await;
    report.bar.finish_and_clear();
    Ok(summary)
}

/// Opens every envelope under `paths` and discards the plaintext.
///
/// # Errors
/// As [`rewrap`].
pub async fn verify(
    sources: &KeySources,
    paths: &[PathBuf],
    aad: String,
    jobs: usize,
    quiet: bool,
) -> Result<Summary> {
    let files = walk::files_under(paths)?;
    let envelope = Arc::new(reader_for_files(sources, &files).await?);
    let report = Arc::new(Report::new(files.len(), quiet));
    let aad = Arc::new(aad);
    let summary = run_all(files, jobs, Arc::clone(&report), move |path| {
        let (envelope, aad) = (Arc::clone(&envelope), Arc::clone(&aad));
        async move { verify_one(envelope, aad.as_bytes(), path).await }
    })
    .await;
    report.bar.finish_and_clear();
    Ok(summary)
}

/// An envelope for every key the files' headers name (headers only are read here).
async fn reader_for_files(sources: &KeySources, files: &[PathBuf]) -> Result<Envelope> {
    let mut remote = BTreeSet::new();
    for file in files {
        if let Ok(Kind::Envelope { header, .. }) = walk::classify(file) {
            remote.extend(remote_keys_in(&header));
        }
    }
    sources.reader_for(&remote).await
}

/// Runs `work` on every file, at most `jobs` at once, reporting each as it ends.
async fn run_all<F, Fut>(files: Vec<PathBuf>, jobs: usize, report: Arc<Report>, work: F) -> Summary
where
    F: Fn(PathBuf) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut summary = Summary::default();
    for path in files {
        // Waiting here, not inside the task, keeps at most `jobs` tasks alive at once.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let (report, job) = (Arc::clone(&report), work(path.clone()));
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

async fn rewrap_one(
    envelope: &Envelope,
    target: &RewrapTarget,
    options: &RewrapOptions,
    path: &Path,
) -> Outcome {
    let classified = {
        let path = path.to_path_buf();
        blocking(move || walk::classify(&path)).await
    };
    let (header_bytes, detached) = match classified {
        Err(e) => return Outcome::Failed(e),
        Ok(Kind::Foreign { .. }) => return Outcome::NotCmke,
        Ok(Kind::Corrupt { error }) => return Outcome::Failed(error),
        Ok(Kind::StaleTemp) if options.dry_run => return Outcome::StaleTempSkipped,
        Ok(Kind::StaleTemp) => {
            return match std::fs::remove_file(path) {
                Ok(()) => Outcome::StaleTempRemoved,
                Err(e) => Outcome::Failed(io_error(path, e)),
            }
        }
        Ok(Kind::Envelope {
            header_bytes,
            detached,
            ..
        }) => (header_bytes, detached),
    };
    if options.detached && !detached {
        return Outcome::AttachedSkipped;
    }
    let rewrapped = match envelope.rewrap(&header_bytes, target.clone()).await {
        Ok(None) => return Outcome::Current,
        Ok(Some(rewrapped)) => rewrapped,
        Err(e) => return Outcome::Failed(e),
    };
    let (from, to) = (
        rewrapped.from_kid().to_owned(),
        rewrapped.to_kid().to_owned(),
    );
    if options.dry_run {
        return Outcome::WouldRewrap { from, to };
    }
    let (path_owned, new_header, old_len) = (
        path.to_path_buf(),
        rewrapped.header().to_vec(),
        header_bytes.len(),
    );
    match blocking(move || replace_header(&path_owned, old_len, &new_header, detached)).await {
        Ok(()) => Outcome::Rewrapped { from, to },
        Err(e) => Outcome::Failed(e),
    }
}

/// Bytes compared per read when checking a copied body.
const CHUNK: usize = 1 << 20;

/// Replaces `path` with `new_header` followed by the old body (bytes from `old_header_len`
/// on), atomically. The copy is read back and compared with the original before it
/// replaces it, and a file that changed meanwhile is left alone.
fn replace_header(
    path: &Path,
    old_header_len: usize,
    new_header: &[u8],
    detached: bool,
) -> Result<()> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.len(), m.modified().ok()))
            .map_err(|e| io_error(p, e))
    };
    let before = stamp(path)?;
    let old_len = u64::try_from(old_header_len).unwrap_or(u64::MAX);
    let mut out = AtomicFile::create(path, file_mode(path))?;
    out.write_all(new_header).map_err(|e| io_error(path, e))?;
    if !detached {
        let mut original = File::open(path).map_err(|e| io_error(path, e))?;
        original
            .seek(SeekFrom::Start(old_len))
            .map_err(|e| io_error(path, e))?;
        copy(&mut original, &mut out).map_err(|e| io_error(path, e))?;
    }
    out.flush().map_err(|e| io_error(path, e))?;
    let header_len = u64::try_from(new_header.len()).unwrap_or(u64::MAX);
    if !same_tail(out.temp_path(), header_len, path, old_len).map_err(|e| io_error(path, e))? {
        return Err(Error::Backend {
            backend: "cmke",
            message: format!(
                "{}: the copied body differs from the original; the file is left as it was",
                path.display()
            ),
        });
    }
    if stamp(path)? != before {
        return Err(Error::Backend {
            backend: "cmke",
            message: format!(
                "{}: the file changed while it was being re-wrapped; it is left as it was",
                path.display()
            ),
        });
    }
    out.commit()
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(buf.get(..n).unwrap_or_default())?;
        total = total.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// Whether `a` from `a_from` on and `b` from `b_from` on hold the same bytes.
fn same_tail(a: &Path, a_from: u64, b: &Path, b_from: u64) -> std::io::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    a.seek(SeekFrom::Start(a_from))?;
    b.seek(SeekFrom::Start(b_from))?;
    let (mut abuf, mut bbuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let n = read_full(&mut a, &mut abuf)?;
        let m = read_full(&mut b, &mut bbuf)?;
        if n != m || abuf.get(..n) != bbuf.get(..m) {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(source: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|r| !r.is_empty()) {
        match source.read(rest)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn verify_one(envelope: Arc<Envelope>, aad: &[u8], path: PathBuf) -> Outcome {
    let classified = {
        let path = path.clone();
        blocking(move || walk::classify(&path)).await
    };
    match classified {
        Err(e) => return Outcome::Failed(e),
        Ok(Kind::StaleTemp) => return Outcome::StaleTempSkipped,
        Ok(Kind::Foreign { .. }) => {
            return Outcome::Failed(Error::Malformed(cmk_envelope::format::Malformed::BadMagic))
        }
        Ok(Kind::Corrupt { error }) => return Outcome::Failed(error),
        Ok(Kind::Envelope { detached: true, .. }) => return Outcome::DetachedSkipped,
        Ok(Kind::Envelope { .. }) => {}
    }
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) => return Outcome::Failed(io_error(&path, e)),
    };
    let mut reader = match envelope.open_reader(file, aad).await {
        Ok(reader) => reader,
        Err(e) => return Outcome::Failed(e),
    };
    let kid = reader.kid().to_owned();
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
