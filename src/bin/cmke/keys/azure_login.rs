//! The Entra ID credential `cmke` uses for Key Vault (`--azure-credential`), and where its
//! secrets come from: the environment, or a file only its user can read. Never a flag (any
//! user can read a process's arguments), and never echoed in a message.

use std::path::Path;
use std::sync::Arc;

use azure_core::credentials::{Secret, SecretBytes, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzurePipelinesCredential, AzurePipelinesCredentialOptions, ClientAssertionCredentialOptions,
    ClientCertificateCredential, ClientCertificateCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, DeveloperToolsCredential, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
};
use cmk_envelope::Error;
use zeroize::Zeroizing;

use crate::cli::args::AzureCredential;
use crate::cli::failure::{Result, UsageError};

/// The credential `choice` names, its token requests sent with `client` options (the
/// HTTP transport).
///
/// # Errors
/// [`UsageError`] naming a missing variable; [`Error::UntrustedFile`] for a
/// secret file others can read or change; [`Error::Backend`] when the SDK refuses the
/// settings (a certificate that does not parse, a tenant id that is not one).
pub fn credential(
    choice: AzureCredential,
    client: ClientOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let refused = |what: &str| {
        let what = what.to_owned();
        move |e: azure_core::Error| Error::Backend {
            backend: "azure-identity",
            message: format!("{what}: {e}"),
        }
    };
    Ok(match choice {
        AzureCredential::Dev => DeveloperToolsCredential::new(None).map_err(refused("dev"))?,
        AzureCredential::Managed => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: std::env::var("AZURE_CLIENT_ID")
                    .ok()
                    .map(UserAssignedId::ClientId),
                client_options: client,
            }))
            .map_err(refused("managed identity"))?
        }
        AzureCredential::Workload => {
            WorkloadIdentityCredential::new(None).map_err(refused("workload identity"))?
        }
        AzureCredential::ClientSecret => {
            let (tenant, client_id) = (required("AZURE_TENANT_ID")?, required("AZURE_CLIENT_ID")?);
            let secret =
                secret("AZURE_CLIENT_SECRET", "AZURE_CLIENT_SECRET_FILE")?.ok_or_else(|| {
                    UsageError::new(
                        "--azure-credential client-secret needs the secret in \
                         AZURE_CLIENT_SECRET or in the file named by AZURE_CLIENT_SECRET_FILE"
                            .to_owned(),
                    )
                })?;
            ClientSecretCredential::new(
                &tenant,
                client_id,
                Secret::new(secret.as_str().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: client,
                }),
            )
            .map_err(refused("client secret credential"))?
        }
        AzureCredential::ClientCertificate => {
            let (tenant, client_id) = (required("AZURE_TENANT_ID")?, required("AZURE_CLIENT_ID")?);
            let path = required("AZURE_CLIENT_CERTIFICATE_PATH")?;
            let certificate = read_secret_file(Path::new(&path), "client certificate")?;
            let password = secret(
                "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                "AZURE_CLIENT_CERTIFICATE_PASSWORD_FILE",
            )?;
            ClientCertificateCredential::new(
                tenant,
                client_id,
                SecretBytes::new(certificate.to_vec()),
                Some(ClientCertificateCredentialOptions {
                    client_options: client,
                    password: password.map(|p| Secret::new(p.as_str().to_owned())),
                }),
            )
            .map_err(refused(&format!("client certificate {path}")))?
        }
        AzureCredential::AzurePipelines => {
            let system_token = secret("SYSTEM_ACCESSTOKEN", "SYSTEM_ACCESSTOKEN_FILE")?
                .ok_or_else(|| {
                    UsageError::new(
                        "--azure-credential azure-pipelines needs SYSTEM_ACCESSTOKEN (map \
                         $(System.AccessToken) into the task's environment)"
                            .to_owned(),
                    )
                })?;
            AzurePipelinesCredential::new(
                required("AZURESUBSCRIPTION_TENANT_ID")?,
                required("AZURESUBSCRIPTION_CLIENT_ID")?,
                &required("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID")?,
                Secret::new(system_token.as_str().to_owned()),
                Some(AzurePipelinesCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: client,
                    },
                }),
            )
            .map_err(refused("Azure Pipelines credential"))?
        }
    })
}

/// A setting that must be in the environment (not secret: ids and paths).
fn required(name: &str) -> Result<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            UsageError::new(format!(
                "this --azure-credential needs {name} in the environment"
            ))
        })
        .map_err(Into::into)
}

/// A secret from the variable `name`, else from the file the variable `file_name` names;
/// `None` when neither is set. Both set is refused: which one wins would be a guess.
fn secret(name: &str, file_name: &str) -> Result<Option<Zeroizing<String>>> {
    let inline = std::env::var(name).ok().map(Zeroizing::new);
    let file = std::env::var_os(file_name);
    match (inline, file) {
        (Some(_), Some(_)) => {
            Err(UsageError::new(format!("both {name} and {file_name} are set: keep one")).into())
        }
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            let bytes = read_secret_file(Path::new(&path), name)?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                UsageError::new(format!(
                    "{}: the file {file_name} names is not UTF-8 text",
                    Path::new(&path).display()
                ))
            })?;
            // A trailing newline is how editors and `echo` end a file, not part of the secret.
            Ok(Some(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_owned(),
            )))
        }
        (None, None) => Ok(None),
    }
}

/// A file holding a secret: every part of its path the user's (or root's), neither
/// writable nor readable by anyone else, one link; read from the descriptor checked.
fn read_secret_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    use cmk_envelope::trust::{TrustedFile, TrustedKind};
    TrustedFile::open(path, TrustedKind::Secret, what)?
        .read_bounded(SECRET_FILE_LIMIT)
        .map_err(Into::into)
}

/// Client secrets, certificates with their keys: far below this.
const SECRET_FILE_LIMIT: usize = 1024 * 1024;
