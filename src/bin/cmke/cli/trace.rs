//! `CMKE_LOG=LEVEL` (`error`, `warn`, `info`, `debug`, `trace`): the library's spans and
//! events, and a span per file (`cmke.file`, with its path and outcome), on stderr. Each
//! span is printed when it closes, with how long it took; key-service calls nest under
//! their file. Unset: nothing is printed.

use std::path::Path;

/// The environment variable that turns tracing on, and at which level.
pub const VARIABLE: &str = "CMKE_LOG";

/// Starts printing spans and events on stderr when `CMKE_LOG` names a level.
///
/// # Errors
/// A value that is not a level, as a usage error's words.
pub fn start() -> Result<(), String> {
    let Some(value) = std::env::var_os(VARIABLE) else {
        return Ok(());
    };
    let level: tracing::Level = value
        .to_str()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{VARIABLE}={}: not a level (error, warn, info, debug, trace)",
                super::escape::text(&value.to_string_lossy())
            )
        })?;
    // Only fails when a subscriber is installed already: then it is that one's.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
    Ok(())
}

/// The span of one file (or blob): its path, and its outcome once known.
pub fn file_span(path: &Path) -> tracing::Span {
    tracing::info_span!(
        "cmke.file",
        path = %super::escape::text(&path.display().to_string()),
        outcome = tracing::field::Empty
    )
}
