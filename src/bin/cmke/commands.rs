//! What each command does.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use cmk_envelope::software::Keyring;
use cmk_envelope::stream::{into_cmk_error, read_header_bytes};
use cmk_envelope::{Envelope, Error, KeyPolicy, Provider, Result};

use crate::args::{Cli, Command, KeyCommand};
use crate::bulk::{self, RewrapOptions, Summary};
use crate::hsm;
use crate::inventory;
use crate::io::{io_error, open_input, read_input, write_output, Output};
use crate::sources::KeySources;

/// Output files hold ciphertext or plaintext: readable by the owner only.
const OUTPUT_MODE: u32 = 0o600;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let sources = KeySources::from_cli(&cli)?;
    let provider = sources.provider;
    match cli.command {
        Command::Key(key) => key_command(&sources, key).await,
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
                let envelope = sources.reader(&[header]).await?;
                let plaintext = envelope.open_range(file, aad.as_bytes(), range).await?;
                write_output(output.as_deref(), &plaintext, OUTPUT_MODE)?;
                return Ok(ExitCode::SUCCESS);
            }
            // The header first, to learn which keys (keyring or vault) the slots name; then
            // the whole envelope, header included, through the stream reader.
            let mut source = open_input(&input, true)?;
            let header = read_header_bytes(&mut source)?;
            let envelope = sources.reader(std::slice::from_ref(&header)).await?;
            let source = std::io::Cursor::new(header).chain(source);
            let mut reader = envelope.open_reader(source, aad.as_bytes()).await?;
            let kid = reader.kid().to_owned();
            let mut out = Output::create(output.as_deref(), OUTPUT_MODE)?;
            reader.copy_to(&mut out).map_err(into_cmk_error)?;
            out.commit()?;
            note_if_stale(&sources.keyring, provider, &kid, &input);
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
            many,
        } => {
            let options = RewrapOptions {
                to,
                dry_run,
                detached,
                jobs: sources.jobs(many.jobs),
                quiet: many.quiet,
            };
            let summary = bulk::rewrap(&sources, &many.paths, options).await?;
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
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Verify { aad, many } => {
            let jobs = sources.jobs(many.jobs);
            let summary = bulk::verify(&sources, &many.paths, aad, jobs, many.quiet).await?;
            Ok(finish(&summary, "verified", None))
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
    parts.push(format!("{} failed", summary.failed));
    eprintln!("cmke: {}", parts.join(", "));
    match &summary.worst {
        None => ExitCode::SUCCESS,
        Some(e) => ExitCode::from(crate::exit_code(e)),
    }
}

/// Tells the operator when an object is under an old version of a keyring key.
fn note_if_stale(dir: &Path, provider: Provider, kid: &str, input: &Path) {
    let Ok(local) = cmk_envelope::software::LocalKid::parse(kid) else {
        return;
    };
    let current = Keyring::open(dir)
        .and_then(|k| k.with_provider(provider).list())
        .ok()
        .and_then(|keys| keys.into_iter().find(|k| k.name == local.name.as_str()))
        .map(|k| k.current_kid);
    if let Some(current) = current.filter(|c| c != kid) {
        eprintln!(
            "cmke: note: {} is wrapped under an old key version ({kid}); \
             `cmke rewrap {}` moves it to {current}",
            input.display(),
            input.display(),
        );
    }
}

async fn key_command(sources: &KeySources, command: KeyCommand) -> Result<ExitCode> {
    let (dir, provider) = (sources.keyring.as_path(), sources.provider);
    let large = KeyPolicy::default().allow_rsa_sizes(&cmk_envelope::RSA_SIZES)?;
    match command {
        KeyCommand::Create { name, bits } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::create(&sources.hsm, &name, bits).await?);
        }
        KeyCommand::Rotate { name } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::rotate(&sources.hsm, &name).await?);
        }
        KeyCommand::Create { name, bits } => {
            let policy = if bits == 2048 {
                KeyPolicy::default()
            } else {
                large
            };
            let keyring = Keyring::create(dir)?
                .with_provider(provider)
                .with_policy(policy);
            println!("{}", keyring.create_key_with_size(&name, bits)?);
        }
        KeyCommand::Rotate { name } => {
            let keyring = Keyring::open(dir)?
                .with_provider(provider)
                .with_policy(large);
            println!("{}", keyring.rotate(&name)?);
        }
        KeyCommand::List { json } => {
            let keys = Keyring::open(dir)?.list()?;
            if json {
                let text = serde_json::to_string_pretty(&keys).map_err(|e| Error::Backend {
                    backend: "json",
                    message: e.to_string(),
                })?;
                println!("{text}");
            } else {
                println!("{:<24} {:>8}  CURRENT KID", "NAME", "VERSIONS");
                for key in keys {
                    println!(
                        "{:<24} {:>8}  {}",
                        key.name,
                        key.versions.len(),
                        key.current_kid
                    );
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
                KeyPolicy::default()
            };
            let keyring = Keyring::create(dir)?
                .with_provider(provider)
                .with_policy(policy);
            println!("{}", keyring.import_pem(&name, &pem)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
