//! What each command does.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cmk_envelope::format::Header;
use cmk_envelope::software::Keyring;
use cmk_envelope::stream::{into_cmk_error, read_header_bytes};
use cmk_envelope::{Envelope, Error, KeyRules, Result};

use crate::args::{BranchCommand, Cli, Command, KeyCommand};
use crate::bulk::{self, RewrapOptions, Summary, VerifyOptions};
use crate::escape;
use crate::hsm;
use crate::inventory;
use crate::io::{io_error, open_input, read_input, write_output, Output};
use crate::sources::KeySources;

/// Output files hold ciphertext or plaintext: readable by the owner only.
const OUTPUT_MODE: u32 = 0o600;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let mut sources = KeySources::from_cli(&cli)?;
    // The keys the operator names are the services this run may contact, with those the
    // allowlist names; never one that only a file names.
    match &cli.command {
        Command::Encrypt { key, .. } => sources.allow_named_key(key)?,
        Command::Rewrap { to: Some(key), .. } => sources.allow_named_key(key)?,
        Command::Branch(BranchCommand::Create { cmk, .. })
        | Command::Branch(BranchCommand::Rotate { cmk: Some(cmk), .. }) => {
            sources.allow_named_key(cmk)?;
        }
        _ => {}
    }
    let provider = sources.provider;
    match cli.command {
        Command::Key(key) => key_command(&sources, key).await,
        Command::Branch(branch) => crate::branches::branch_command(&sources, branch).await,
        Command::Encrypt {
            key,
            aad,
            segment_size,
            output,
            input,
        } => {
            let wrapper = sources.named_key(&key).await?;
            let envelope = Envelope::builder()
                .seal_with(wrapper)
                .provider(provider)
                .segment_size(segment_size)
                .build()?;
            let source = open_input(&input, true)?;
            let out = Output::create(output.as_deref(), OUTPUT_MODE)?;
            let mut writer = envelope.seal_writer(out, aad.as_bytes()).await?;
            writer.copy_from(source).map_err(into_cmk_error)?;
            writer.finish().map_err(into_cmk_error)?.commit()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Decrypt {
            aad,
            range,
            output,
            input,
        } => {
            if let Some(range) = range {
                if input == Path::new("-") {
                    return Err(Error::InvalidArgument(
                        "--range reads only the segments it needs: give a file, not stdin"
                            .to_owned(),
                    ));
                }
                let mut file = std::fs::File::open(&input).map_err(|e| io_error(&input, e))?;
                let header = read_header_bytes(&mut file)?;
                let envelope = sources
                    .pool_noting_stale()
                    .envelope_for(&Header::parse_detached(&header)?)
                    .await?;
                let opened = envelope.open_range(file, aad.as_bytes(), range).await?;
                write_output(output.as_deref(), opened.plaintext(), OUTPUT_MODE)?;
                note_if_stale(opened.info(), &input);
                return Ok(ExitCode::SUCCESS);
            }
            // The header first, to learn which keys (keyring or vault) the slots name; then
            // the whole envelope, header included, through the stream reader.
            let mut source = open_input(&input, true)?;
            let header = read_header_bytes(&mut source)?;
            let envelope = sources
                .pool_noting_stale()
                .envelope_for(&Header::parse_detached(&header)?)
                .await?;
            let source = std::io::Cursor::new(header).chain(source);
            let mut reader = envelope.open_reader(source, aad.as_bytes()).await?;
            let mut out = Output::create(output.as_deref(), OUTPUT_MODE)?;
            reader.copy_to(&mut out)?;
            out.commit()?;
            note_if_stale(reader.info(), &input);
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { input } => {
            // A file: only its header is read. A pipe: the rest is counted, not kept.
            let info = if input == Path::new("-") {
                cmk_envelope::inspect_stream(std::io::stdin().lock())?
            } else {
                let file = std::fs::File::open(&input).map_err(|e| io_error(&input, e))?;
                cmk_envelope::inspect_reader(file)?
            };
            let json = serde_json::to_string_pretty(&info).map_err(|e| Error::Backend {
                backend: "json",
                message: e.to_string(),
            })?;
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Rewrap {
            to,
            dry_run,
            detached,
            break_hard_links,
            many,
        } => {
            let options = RewrapOptions {
                to,
                dry_run,
                detached,
                break_hard_links,
                jobs: sources.jobs(many.jobs),
                max_memory: sources.max_memory(many.max_memory),
                quiet: many.quiet,
            };
            let (stores, paths): (Vec<_>, Vec<_>) = many
                .paths
                .iter()
                .partition(|path| path.to_str().is_some_and(crate::branches::is_store_url));
            if !stores.is_empty() {
                if options.to.is_some() || options.dry_run || options.detached {
                    return Err(Error::InvalidArgument(
                        "re-wrapping a branch store's records takes none of --to, --dry-run \
                         and --detached (`cmke branch list` shows each record's CMK kid)"
                            .to_owned(),
                    ));
                }
                for store in &stores {
                    let location = store.to_str().unwrap_or_default();
                    crate::branches::rewrap_store(&sources, location).await?;
                }
                if paths.is_empty() {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
            let summary = bulk::rewrap(&sources, &paths, options).await?;
            let done = if dry_run {
                "would re-wrap"
            } else {
                "re-wrapped"
            };
            Ok(finish(&summary, done, Some("already current")))
        }
        Command::Inventory { json, stale, paths } => {
            let inventory = inventory::take(&sources, &paths).await?;
            if json {
                println!("{}", inventory::to_json(&inventory)?);
            } else if stale {
                print!("{}", inventory::stale_paths(&inventory));
            } else {
                print!("{}", inventory::to_table(&inventory));
            }
            Ok(if inventory.has_corrupt() {
                ExitCode::from(crate::EXIT_BAD_INPUT)
            } else if inventory.has_unreadable() {
                ExitCode::from(crate::EXIT_USAGE_OR_IO)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify {
            aad,
            detached,
            body_ext,
            many,
        } => {
            let options = VerifyOptions {
                aad,
                detached,
                body_ext,
                jobs: sources.jobs(many.jobs),
                max_memory: sources.max_memory(many.max_memory),
                quiet: many.quiet,
            };
            let summary = bulk::verify(&sources, &many.paths, options).await?;
            let code = finish(&summary, "verified", None);
            if summary.done == 0 && summary.worst_exit == 0 {
                // Nothing was proven: an audit that checked nothing must not pass.
                eprintln!("cmke: nothing was verified: no CMKE envelope under the paths given");
                return Ok(ExitCode::from(crate::EXIT_USAGE_OR_IO));
            }
            Ok(code)
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "cmke", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// Tells the operator when an object is under an old version of its key (any backend: the
/// library's open says so).
fn note_if_stale(info: &cmk_envelope::OpenInfo, input: &Path) {
    if !info.is_stale() {
        return;
    }
    let shown = escape::path(input);
    let to = info.rewrapped().map_or_else(
        || "its current version".to_owned(),
        |r| escape::text(r.to_kid()).into_owned(),
    );
    eprintln!(
        "cmke: note: {shown} is wrapped under an old key version ({}); \
         `cmke rewrap {shown}` moves it to {to}",
        escape::text(info.kid()),
    );
}

async fn key_command(sources: &KeySources, command: KeyCommand) -> Result<ExitCode> {
    let provider = sources.provider;
    let dir = || sources.keyring_dir().map(|d| d.as_path());
    let large = KeyRules::default().allow_rsa_sizes(&cmk_envelope::RSA_SIZES)?;
    match command {
        KeyCommand::Create { name, bits } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::create(&sources.hsm, &name, bits).await?);
        }
        KeyCommand::Rotate { name } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::rotate(&sources.hsm, &name).await?);
        }
        KeyCommand::Create { name, bits } => {
            let policy = if bits == 2048 {
                KeyRules::default()
            } else {
                large
            };
            let keyring = Keyring::create(dir()?)?
                .with_provider(provider)
                .with_key_rules(policy);
            println!("{}", keyring.create_key_with_size(&name, bits)?);
        }
        KeyCommand::Rotate { name } => {
            let keyring = Keyring::open(dir()?)?
                .with_provider(provider)
                .with_key_rules(large);
            println!("{}", keyring.rotate_key(&name)?);
        }
        KeyCommand::List { json } => {
            let keys = Keyring::open(dir()?)?.list()?;
            if json {
                let text = serde_json::to_string_pretty(&keys).map_err(|e| Error::Backend {
                    backend: "json",
                    message: e.to_string(),
                })?;
                println!("{text}");
            } else {
                println!("{:<24} {:>8}  CURRENT KID", "NAME", "VERSIONS");
                for key in keys {
                    match &key.broken {
                        None => println!(
                            "{:<24} {:>8}  {}",
                            key.name,
                            key.versions.len(),
                            escape::text(&key.current_kid)
                        ),
                        Some(why) => {
                            println!("{:<24} {:>8}  BROKEN: {}", key.name, "-", escape::text(why))
                        }
                    }
                }
            }
        }
        KeyCommand::Import {
            name,
            file,
            allow_large,
        } => {
            let pem = String::from_utf8(read_input(&file)?)
                .map_err(|_| Error::InvalidKey("the PEM file is not text".to_owned()))?;
            let pem = zeroize::Zeroizing::new(pem);
            let policy = if allow_large {
                large
            } else {
                KeyRules::default()
            };
            let keyring = Keyring::create(dir()?)?
                .with_provider(provider)
                .with_key_rules(policy);
            println!("{}", keyring.import_pem(&name, &pem)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
