//! `cmke rewrap`, `inventory` and `verify`: many objects, files or trees.

use std::path::PathBuf;
use std::process::ExitCode;

use super::inventory;
use super::jobs::{self, RewrapOptions, Summary, VerifyOptions};
use crate::cli::args::{InventoryArgs, RewrapArgs, VerifyArgs};
use crate::cli::failure::{Result, UsageError};
use crate::keys::sources::KeySources;

/// `cmke rewrap`.
pub async fn rewrap(sources: &KeySources, args: RewrapArgs) -> Result<ExitCode> {
    let RewrapArgs {
        to,
        dry_run,
        detached,
        break_hard_links,
        many,
    } = args;
    let options = RewrapOptions {
        to,
        dry_run,
        detached,
        break_hard_links,
        jobs: sources.jobs(many.jobs),
        max_memory: sources.max_memory(many.max_memory),
        quiet: many.quiet,
    };
    let (stores, paths): (Vec<_>, Vec<_>) = many.paths.iter().partition(|path| {
        path.to_str()
            .is_some_and(crate::branch::command::is_store_url)
    });
    if !stores.is_empty() {
        if options.to.is_some() || options.dry_run || options.detached {
            return Err(UsageError::new(
                "re-wrapping a branch store's records takes none of --to, --dry-run \
                     and --detached (`cmke branch list` shows each record's CMK kid)"
                    .to_owned(),
            )
            .into());
        }
        for store in &stores {
            let location = store.to_str().unwrap_or_default();
            crate::branch::command::rewrap_store(sources, location).await?;
        }
        if paths.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
    let summary = jobs::rewrap(sources, &paths, options).await?;
    let done = if dry_run {
        "would re-wrap"
    } else {
        "re-wrapped"
    };
    Ok(finish(&summary, done, Some("already current")))
}

/// `cmke inventory`.
pub async fn inventory(sources: &KeySources, args: InventoryArgs) -> Result<ExitCode> {
    let InventoryArgs { json, stale, paths } = args;
    let inventory = inventory::take(sources, &paths).await?;
    if json {
        println!("{}", inventory::to_json(&inventory)?);
    } else if stale {
        print!("{}", inventory::stale_paths(&inventory));
    } else {
        print!("{}", inventory::to_table(&inventory));
    }
    Ok(if inventory.has_corrupt() {
        ExitCode::from(crate::cli::exit::EXIT_BAD_INPUT)
    } else if inventory.has_unreadable() {
        ExitCode::from(crate::cli::exit::EXIT_USAGE_OR_IO)
    } else {
        ExitCode::SUCCESS
    })
}

/// `cmke verify`.
pub async fn verify(sources: &KeySources, args: VerifyArgs) -> Result<ExitCode> {
    let VerifyArgs {
        aad,
        detached,
        body_ext,
        many,
    } = args;
    let options = VerifyOptions {
        aad,
        detached,
        body_ext,
        jobs: sources.jobs(many.jobs),
        max_memory: sources.max_memory(many.max_memory),
        quiet: many.quiet,
    };
    let summary = jobs::verify(sources, &many.paths, options).await?;
    let code = finish(&summary, "verified", None);
    if summary.done == 0 && summary.worst_exit == 0 {
        // Nothing was proven: an audit that checked nothing must not pass.
        eprintln!("cmke: nothing was verified: no CMKE envelope under the paths given");
        return Ok(ExitCode::from(crate::cli::exit::EXIT_USAGE_OR_IO));
    }
    Ok(code)
}

/// Prints a bulk run's summary on stderr and gives its exit code: 0, or the worst failure's.
fn finish(summary: &Summary, done: &str, current: Option<&str>) -> ExitCode {
    let mut parts = vec![format!("{} {done}", summary.done)];
    if let Some(current) = current {
        parts.push(format!("{} {current}", summary.current));
    }
    if summary.skipped > 0 {
        parts.push(format!("{} skipped", summary.skipped));
    }
    if summary.temps_removed > 0 {
        parts.push(format!(
            "{} leftover temporary files removed",
            summary.temps_removed
        ));
    }
    if summary.refused > 0 {
        parts.push(format!("{} refused", summary.refused));
    }
    if summary.changed > 0 {
        parts.push(format!("{} changed during rewrap", summary.changed));
    }
    parts.push(format!("{} failed", summary.failed));
    eprintln!("cmke: {}", parts.join(", "));
    if summary.worst_exit == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(summary.worst_exit)
    }
}
