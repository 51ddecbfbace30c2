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
    let (stores, containers, paths) = split_paths(sources, &many.paths);
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
            crate::branch::command::rewrap_store(sources, store).await?;
        }
        if paths.is_empty() && containers.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut summary = Summary::default();
    if !containers.is_empty() {
        if options.dry_run || options.detached || options.break_hard_links {
            return Err(UsageError::new(
                "re-wrapping blobs takes none of --dry-run, --detached and --break-hard-links \
                 (`cmke inventory --stale URL` lists what a re-wrap would move)"
                    .to_owned(),
            )
            .into());
        }
        let target = match &options.to {
            Some(key) => cmk_envelope::RewrapTarget::Key(crate::keys::run_target::RunTarget::new(
                sources.target_key(key).await?,
            )),
            None => cmk_envelope::RewrapTarget::CurrentVersion,
        };
        let job = BlobJobs::rewrap(target);
        for url in &containers {
            summary
                .merge(run_blobs(sources, url, &job, &many, &options_for_blobs(&options)).await?);
        }
    } else if many.shard.is_some() {
        return Err(shard_needs_a_container());
    }
    if !paths.is_empty() {
        summary.merge(jobs::rewrap(sources, &paths, options).await?);
    }
    let done = if dry_run {
        "would re-wrap"
    } else {
        "re-wrapped"
    };
    Ok(finish(&summary, done, Some("already current")))
}

/// `cmke inventory`.
pub async fn inventory(sources: &KeySources, args: InventoryArgs) -> Result<ExitCode> {
    let InventoryArgs {
        json,
        stale,
        shard,
        paths,
    } = args;
    let inventory = inventory::take(sources, &paths, shard).await?;
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
    let (stores, containers, paths) = split_paths(sources, &many.paths);
    if !stores.is_empty() {
        return Err(UsageError::new(
            "verify opens envelopes; a branch store holds key records (`cmke branch list` \
             checks them)"
                .to_owned(),
        )
        .into());
    }
    if containers.is_empty() && many.shard.is_some() {
        return Err(shard_needs_a_container());
    }
    let mut summary = Summary::default();
    let job = BlobJobs::verify(options.aad.clone());
    for url in &containers {
        summary.merge(
            run_blobs(
                sources,
                url,
                &job,
                &many,
                &(options.jobs, options.max_memory, options.quiet),
            )
            .await?,
        );
    }
    if !paths.is_empty() {
        summary.merge(jobs::verify(sources, &paths, options).await?);
    }
    let code = finish(&summary, "verified", None);
    if summary.done == 0 && summary.worst_exit == 0 {
        // Nothing was proven: an audit that checked nothing must not pass.
        eprintln!("cmke: nothing was verified: no CMKE envelope under the paths given");
        return Ok(ExitCode::from(crate::cli::exit::EXIT_USAGE_OR_IO));
    }
    Ok(code)
}

/// The paths of a bulk command: the branch store `--branch-store` names, blob containers
/// (any other `https://` URL), and files or directories.
fn split_paths(
    sources: &KeySources,
    paths: &[PathBuf],
) -> (Vec<String>, Vec<String>, Vec<PathBuf>) {
    use crate::keys::names::{is_blob_container, is_named_store};
    let store = sources.branch_store.as_deref();
    let (mut stores, mut containers, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for path in paths {
        match path.to_str() {
            Some(text) if is_named_store(text, store) => stores.push(text.to_owned()),
            Some(text) if is_blob_container(text, store) => containers.push(text.to_owned()),
            _ => files.push(path.clone()),
        }
    }
    (stores, containers, files)
}

fn shard_needs_a_container() -> crate::cli::failure::Failure {
    UsageError::new(
        "--shard splits a blob container's listing; name a container \
         (https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX])"
            .to_owned(),
    )
    .into()
}

fn options_for_blobs(options: &RewrapOptions) -> (usize, u64, bool) {
    (options.jobs, options.max_memory, options.quiet)
}

/// What a blob run does, in a build with or without feature `azure-blob`.
#[derive(Clone)]
enum BlobJobs {
    #[cfg(feature = "azure-blob")]
    Job(super::blobs::BlobJob),
    #[cfg(not(feature = "azure-blob"))]
    None,
}

impl BlobJobs {
    #[allow(unused_variables)]
    fn rewrap(target: cmk_envelope::RewrapTarget) -> Self {
        #[cfg(feature = "azure-blob")]
        return Self::Job(super::blobs::BlobJob::Rewrap(target));
        #[cfg(not(feature = "azure-blob"))]
        Self::None
    }

    #[allow(unused_variables)]
    fn verify(aad: String) -> Self {
        #[cfg(feature = "azure-blob")]
        return Self::Job(super::blobs::BlobJob::Verify { aad });
        #[cfg(not(feature = "azure-blob"))]
        Self::None
    }
}

/// One blob container's run; a usage error without feature `azure-blob`.
#[allow(unused_variables)]
async fn run_blobs(
    sources: &KeySources,
    url: &str,
    job: &BlobJobs,
    many: &crate::cli::args::ManyFiles,
    (jobs, max_memory, quiet): &(usize, u64, bool),
) -> Result<Summary> {
    #[cfg(feature = "azure-blob")]
    {
        let BlobJobs::Job(job) = job;
        super::blobs::run(
            sources,
            url,
            job.clone(),
            many.shard,
            *jobs,
            *max_memory,
            *quiet,
        )
        .await
    }
    #[cfg(not(feature = "azure-blob"))]
    Err(UsageError::new(format!(
        "{url} is a blob container, and this cmke was built without feature `azure-blob`"
    ))
    .into())
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
