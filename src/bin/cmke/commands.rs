//! What each command does.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use cmk_envelope::format::Header;
use cmk_envelope::software::Keyring;
use cmk_envelope::stream::{into_cmk_error, read_header_bytes};
use cmk_envelope::{Envelope, Error, KeyPolicy, KeyWrapper, Provider, Result, RewrapTarget};

use crate::args::{AzureCredential, Cli, Command, KeyCommand, ProviderChoice};
use crate::io::{file_mode, io_error, open_input, read_input, write_output, Output};
use crate::{hsm, vault};

/// Output files hold ciphertext or plaintext: readable by the owner only.
const OUTPUT_MODE: u32 = 0o600;

/// Where keys come from: the keyring directory, and how to reach Key Vault.
struct KeySources {
    keyring: std::path::PathBuf,
    azure_credential: AzureCredential,
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let provider = provider(cli.provider)?;
    let sources = KeySources {
        keyring: cli.keyring.clone(),
        azure_credential: cli.azure_credential,
    };
    match cli.command {
        Command::Key(key) => key_command(&cli.keyring, provider, key).await,
        Command::Encrypt {
            key,
            aad,
            segment_size,
            output,
            input,
        } => {
            let wrapper = named_key(&sources, provider, &key).await?;
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
                let envelope = reader(&sources, provider, &[header]).await?;
                let plaintext = envelope.open_range(file, aad.as_bytes(), range).await?;
                write_output(output.as_deref(), &plaintext, OUTPUT_MODE)?;
                return Ok(ExitCode::SUCCESS);
            }
            // The header first, to learn which keys (keyring or vault) the slots name; then
            // the whole envelope, header included, through the stream reader.
            let mut source = open_input(&input, true)?;
            let header = read_header_bytes(&mut source)?;
            let envelope = reader(&sources, provider, std::slice::from_ref(&header)).await?;
            let source = std::io::Cursor::new(header).chain(source);
            let mut reader = envelope.open_reader(source, aad.as_bytes()).await?;
            let kid = reader.kid().to_owned();
            let mut out = Output::create(output.as_deref(), OUTPUT_MODE)?;
            reader.copy_to(&mut out).map_err(into_cmk_error)?;
            out.commit()?;
            note_if_stale(&cli.keyring, provider, &kid, &input);
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
        Command::Rewrap { to, files } => {
            let mut headers = Vec::new();
            for file in &files {
                // A file that does not open is reported with the others below.
                if let Ok(mut f) = std::fs::File::open(file) {
                    if let Ok(header) = read_header_bytes(&mut f) {
                        headers.push(header);
                    }
                }
            }
            let envelope = reader(&sources, provider, &headers).await?;
            let target = match to {
                Some(key) => RewrapTarget::Key(named_key(&sources, provider, &key).await?),
                None => RewrapTarget::CurrentVersion,
            };
            rewrap_files(&envelope, &target, &files).await
        }
    }
}

fn provider(choice: ProviderChoice) -> Result<Provider> {
    let not_built = |name: &str| {
        Error::InvalidArgument(format!("provider {name} is not compiled into this cmke"))
    };
    match choice {
        ProviderChoice::Default => Ok(Provider::default()),
        ProviderChoice::AwsLc => Provider::all()
            .into_iter()
            .find(|p| p.name() == "aws-lc")
            .ok_or_else(|| not_built("aws-lc")),
        ProviderChoice::Rustcrypto => Provider::all()
            .into_iter()
            .find(|p| p.name() == "rustcrypto")
            .ok_or_else(|| not_built("rustcrypto")),
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

/// A key named on the command line: a Key Vault key URL, a `pkcs11:` URI, or a keyring
/// key name.
async fn named_key(cli: &KeySources, provider: Provider, key: &str) -> Result<Arc<dyn KeyWrapper>> {
    if vault::is_key_url(key) {
        return vault::connect(key, cli.azure_credential).await;
    }
    if hsm::is_pkcs11_uri(key) {
        return hsm::connect(key).await;
    }
    let keyring = Keyring::open(&cli.keyring)?.with_provider(provider);
    Ok(Arc::new(keyring.key(key)?))
}

/// An envelope that opens anything written under any key of the keyring, and under the
/// Key Vault and PKCS#11 keys that `headers` name.
async fn reader(cli: &KeySources, provider: Provider, headers: &[Vec<u8>]) -> Result<Envelope> {
    let parsed: Vec<Header> = headers
        .iter()
        .filter_map(|h| Header::parse_detached(h).ok())
        .collect();
    let mut vault_keys: Vec<String> = parsed.iter().flat_map(vault::key_urls_in).collect();
    vault_keys.sort();
    vault_keys.dedup();
    let mut hsm_keys: Vec<String> = parsed.iter().flat_map(hsm::key_uris_in).collect();
    hsm_keys.sort();
    hsm_keys.dedup();
    let remote_keys = !vault_keys.is_empty() || !hsm_keys.is_empty();
    let mut builder = Envelope::builder().provider(provider);
    match Keyring::open(&cli.keyring) {
        Ok(keyring) => builder = builder.open_with_keyring(&keyring.with_provider(provider))?,
        // Without a keyring, the vault and HSM keys may still open everything.
        Err(e) if !remote_keys => return Err(e),
        Err(_) => {}
    }
    for url in &vault_keys {
        builder = builder.open_with(vault::connect(url, cli.azure_credential).await?);
    }
    for uri in &hsm_keys {
        builder = builder.open_with(hsm::connect(uri).await?);
    }
    builder.build().map_err(|_| Error::KeyNotFound {
        kid: format!("any key (the keyring {} is empty)", cli.keyring.display()),
    })
}

/// Re-wraps each file in place; one file's failure does not stop the others.
async fn rewrap_files(
    envelope: &Envelope,
    target: &RewrapTarget,
    files: &[std::path::PathBuf],
) -> Result<ExitCode> {
    let mut worst: Option<Error> = None;
    for file in files {
        match rewrap_file(envelope, target, file).await {
            Ok(Some((from, to))) => println!("{}: re-wrapped {from} -> {to}", file.display()),
            Ok(None) => println!("{}: already current", file.display()),
            Err(e) => {
                eprintln!("cmke: {}: {e}", file.display());
                worst = Some(e);
            }
        }
    }
    match worst {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => Err(e),
    }
}

async fn rewrap_file(
    envelope: &Envelope,
    target: &RewrapTarget,
    file: &Path,
) -> Result<Option<(String, String)>> {
    let bytes = std::fs::read(file).map_err(|e| Error::Io {
        path: Some(file.to_path_buf()),
        source: e,
    })?;
    let Some(rewrapped) = envelope.rewrap(&bytes, target.clone()).await? else {
        return Ok(None);
    };
    let updated = rewrapped.apply_to(&bytes)?;
    write_output(Some(file), &updated, file_mode(file))?;
    Ok(Some((
        rewrapped.from_kid().to_owned(),
        rewrapped.to_kid().to_owned(),
    )))
}

async fn key_command(dir: &Path, provider: Provider, command: KeyCommand) -> Result<ExitCode> {
    let large = KeyPolicy::default().allow_rsa_sizes(&cmk_envelope::RSA_SIZES)?;
    match command {
        KeyCommand::Create { name, bits } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::create(&name, bits).await?);
        }
        KeyCommand::Rotate { name } if hsm::is_pkcs11_uri(&name) => {
            println!("{}", hsm::rotate(&name).await?);
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
