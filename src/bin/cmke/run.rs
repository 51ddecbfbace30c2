//! Runs one parsed command line: the services it may contact, then its command family.

use std::process::ExitCode;

use crate::cli::args::{BranchCommand, Cli, Command, RewrapArgs};
use crate::cli::failure::Result;
use crate::keys::sources::KeySources;

/// Runs `cli`: its exit code, or the error that stopped it.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let mut sources = KeySources::from_cli(&cli)?;
    // The keys the operator names are the services this run may contact, with those the
    // allowlist names; never one that only a file names.
    match &cli.command {
        Command::Encrypt(args) => {
            for key in std::iter::once(&args.key).chain(&args.also_keys) {
                sources.allow_named_key(key)?;
            }
        }
        Command::Rewrap(RewrapArgs { to: Some(key), .. }) => sources.allow_named_key(key)?,
        Command::Branch(BranchCommand::Create { cmk, also_cmks, .. })
        | Command::Branch(BranchCommand::Rotate {
            cmk: Some(cmk),
            also_cmks,
            ..
        }) => {
            for key in std::iter::once(cmk).chain(also_cmks) {
                sources.allow_named_key(key)?;
            }
        }
        _ => {}
    }
    match cli.command {
        Command::Key(key) => crate::keys::command::key_command(&sources, key).await,
        Command::Branch(branch) => crate::branch::command::branch_command(&sources, branch).await,
        Command::Encrypt(args) => {
            let span = crate::cli::trace::file_span(&args.input);
            let run = crate::object::commands::encrypt(&sources, args);
            tracing::Instrument::instrument(run, span).await
        }
        Command::Decrypt(args) => {
            let span = crate::cli::trace::file_span(&args.input);
            let run = crate::object::commands::decrypt(&sources, args);
            tracing::Instrument::instrument(run, span).await
        }
        Command::Inspect(args) => {
            let span = crate::cli::trace::file_span(&args.input);
            let run = crate::object::commands::inspect(&sources, args);
            tracing::Instrument::instrument(run, span).await
        }
        Command::Rewrap(args) => crate::bulk::commands::rewrap(&sources, args).await,
        Command::Inventory(args) => crate::bulk::commands::inventory(&sources, args).await,
        Command::Verify(args) => crate::bulk::commands::verify(&sources, args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "cmke", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
