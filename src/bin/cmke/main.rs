//! `cmke`: the operator's tool for CMKE envelopes.

mod args;
mod atomic;
#[cfg(feature = "azure")]
mod azure_login;
mod branches;
mod bulk;
mod bulk_report;
mod commands;
mod config;
mod escape;
mod hsm;
mod inventory;
mod inventory_records;
mod io;
mod io_error;
mod key_names;
mod key_pool;
mod key_report;
mod memory_budget;
mod replace;
mod run_target;
mod sources;
mod vault;
mod walk;

use std::process::ExitCode;

use cmk_envelope::Error;

/// Exit codes, as documented in `--help`.
pub const EXIT_USAGE_OR_IO: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
const EXIT_KEY_PROBLEM: u8 = 3;
/// The key service throttled, timed out, could not be reached or kept failing: the same
/// command may succeed later. Scripts retry exactly this code.
pub const EXIT_TRANSIENT: u8 = 4;

pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Malformed(_) | Error::DecryptionFailed => EXIT_BAD_INPUT,
        e if e.is_key_problem() => EXIT_KEY_PROBLEM,
        e if e.is_transient() => EXIT_TRANSIENT,
        _ => EXIT_USAGE_OR_IO,
    }
}

/// `cmke --version`: the crate version, the default provider and what implements it, and
/// whether that is the FIPS validated module.
fn version_text() -> String {
    let provider = cmk_envelope::Provider::default();
    format!(
        "{}\nprovider: {} ({})\nFIPS: {}",
        env!("CARGO_PKG_VERSION"),
        provider.name(),
        provider.implementation(),
        cmk_envelope::fips_status()
    )
}

fn main() -> ExitCode {
    let command = <args::Cli as clap::CommandFactory>::command().version(version_text());
    let parsed = command
        .try_get_matches()
        .and_then(|m| <args::Cli as clap::FromArgMatches>::from_arg_matches(&m));
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
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cmke: {}", escape::text(&e.to_string()));
            ExitCode::from(exit_code(&e))
        }
    }
}
