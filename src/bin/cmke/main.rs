//! `cmke`: the operator's tool for CMKE envelopes.
//!
//! Arranged by command family: `object/` (encrypt, decrypt, inspect), `bulk/` (rewrap,
//! inventory, verify over files and trees), `keys/` (key commands and the key services a
//! run may use), `branch/` (branch keys); `cli/` holds the command line, the configuration,
//! exit codes and what every family shares; `run.rs` sends a command to its family.

mod branch;
mod bulk;
mod cli;
mod keys;
mod object;
mod run;

use std::process::ExitCode;

use cli::escape;
use cli::exit::{failure_exit_code, EXIT_USAGE_OR_IO};

/// `cmke --version`: the crate version, the default provider and what implements it, and
/// whether that is the FIPS validated module.
fn version_text() -> String {
    let provider = cmk_envelope::crypto::Provider::default();
    format!(
        "{}\nprovider: {} ({})\nFIPS: {}",
        env!("CARGO_PKG_VERSION"),
        provider.name(),
        provider.implementation(),
        cmk_envelope::crypto::fips_status()
    )
}

fn main() -> ExitCode {
    let command = <cli::args::Cli as clap::CommandFactory>::command().version(version_text());
    let parsed = command
        .try_get_matches()
        .and_then(|m| <cli::args::Cli as clap::FromArgMatches>::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let is_help = matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            );
            let _ = e.print();
            return if is_help {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_USAGE_OR_IO)
            };
        }
    };
    if let Err(why) = cli::trace::start() {
        eprintln!("cmke: usage: {why}");
        return ExitCode::from(EXIT_USAGE_OR_IO);
    }
    // Several threads: bulk commands unwrap (RSA) and copy files in parallel.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cmke: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_USAGE_OR_IO);
        }
    };
    let stats = cli.stats.then(|| {
        cli::stats::start();
        matches!(&cli.command, cli::args::Command::Inventory(args) if args.json)
    });
    let code = match runtime.block_on(run::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cmke: {}", escape::text(&e.to_string()));
            ExitCode::from(failure_exit_code(&e))
        }
    };
    if let Some(json) = stats {
        cli::stats::print(json);
    }
    code
}
