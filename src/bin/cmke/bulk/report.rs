//! What a bulk run reports: each file's outcome, the progress bar and the summary.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use cmk_envelope::Error;

use crate::cli::escape;

/// What happened to one file.
pub(crate) enum Outcome {
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

impl Outcome {
    /// A short name of what happened, for the file's span.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Outcome::Rewrapped { .. } => "rewrapped",
            Outcome::WouldRewrap { .. } => "would_rewrap",
            Outcome::Current => "current",
            Outcome::Verified { .. } => "verified",
            Outcome::NotCmke => "not_cmke",
            Outcome::AttachedSkipped => "attached_skipped",
            Outcome::DetachedBody => "detached_body",
            Outcome::SymlinkSkipped => "symlink_skipped",
            Outcome::TempLeftAlone(_) => "temp_left_alone",
            Outcome::StaleTempSkipped => "stale_temp_skipped",
            Outcome::StaleTempRemoved => "stale_temp_removed",
            Outcome::Refused(_) => "refused",
            Outcome::Changed => "changed",
            Outcome::HeaderOnly => "header_only",
            Outcome::Failed(_) => "failed",
        }
    }
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
        crate::cli::exit::EXIT_TRANSIENT => 1,
        0 => 0,
        other => other.saturating_add(1),
    }
}

impl Summary {
    /// Adds another run's counts (one summary for files and containers together).
    pub fn merge(&mut self, other: Summary) {
        self.done += other.done;
        self.current += other.current;
        self.skipped += other.skipped;
        self.temps_removed += other.temps_removed;
        self.refused += other.refused;
        self.changed += other.changed;
        self.failed += other.failed;
        if severity(other.worst_exit) > severity(self.worst_exit) {
            self.worst_exit = other.worst_exit;
        }
    }

    pub(crate) fn add(&mut self, outcome: Outcome) {
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
                fail(crate::cli::exit::EXIT_USAGE_OR_IO);
                self.refused += 1;
            }
            Outcome::Changed => {
                fail(crate::cli::exit::EXIT_USAGE_OR_IO);
                self.changed += 1;
            }
            Outcome::HeaderOnly => {
                fail(crate::cli::exit::EXIT_BAD_INPUT);
                self.failed += 1;
            }
            Outcome::Failed(e) => {
                fail(crate::cli::exit::exit_code(&e));
                self.failed += 1;
            }
        }
    }
}

/// How a bulk run reports.
pub struct Report {
    pub(crate) bar: ProgressBar,
    quiet: bool,
}

impl Report {
    pub(crate) fn new(files: usize, quiet: bool) -> Self {
        // Drawn on stderr only when it is a terminal; hidden in pipes and logs.
        let bar = ProgressBar::new(u64::try_from(files).unwrap_or(u64::MAX)).with_style(
            ProgressStyle::with_template("{pos}/{len} files {wide_bar} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, quiet }
    }

    pub(crate) fn file(&self, path: &Path, outcome: &Outcome) {
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
