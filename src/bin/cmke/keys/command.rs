//! `cmke key`: create, rotate, list and import keys.

use std::process::ExitCode;

use cmk_envelope::policy::KeyRules;
use cmk_envelope::software::Keyring;
use cmk_envelope::Error;

use super::hsm;
use super::sources::KeySources;
use crate::cli::args::KeyCommand;
use crate::cli::escape;
use crate::cli::failure::Result;
use crate::cli::io::read_input;

/// `cmke key …`.
pub async fn key_command(sources: &KeySources, command: KeyCommand) -> Result<ExitCode> {
    let provider = sources.provider;
    let dir = || sources.keyring_dir().map(|d| d.as_path());
    let large = KeyRules::default().allow_rsa_sizes(&cmk_envelope::policy::RSA_SIZES)?;
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
                .provider(provider)
                .key_rules(policy);
            println!("{}", keyring.create_key_with_size(&name, bits)?);
        }
        KeyCommand::Rotate { name } => {
            let keyring = Keyring::open(dir()?)?.provider(provider).key_rules(large);
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
                .provider(provider)
                .key_rules(policy);
            println!("{}", keyring.import_pem(&name, &pem)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
