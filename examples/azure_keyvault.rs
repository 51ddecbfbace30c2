//! Seal and open under an Azure Key Vault (or Managed HSM) key.
//!
//! ```sh
//! cargo run --example azure_keyvault --features azure -- \
//!     https://contoso.vault.azure.net/keys/orders  dev
//! ```
//!
//! The second argument picks how the program gets its Entra ID token:
//! - `managed`: the managed identity of the VM, App Service or container it runs on
//!   (system-assigned, or user-assigned when `AZURE_CLIENT_ID` is set);
//! - `workload`: Kubernetes workload identity (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
//!   `AZURE_FEDERATED_TOKEN_FILE`, as the workload identity webhook sets them);
//! - `dev` (default): the developer's `az login` or `azd auth login`;
//! - `client-secret`: a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_CLIENT_SECRET`), for services outside Azure; keep the secret in the
//!   environment or a secret store, never on a command line;
//! - `client-certificate`: a service principal with a certificate (`AZURE_TENANT_ID`,
//!   `AZURE_CLIENT_ID`, `AZURE_CLIENT_CERTIFICATE_PATH` to a PKCS#12 file, and
//!   `AZURE_CLIENT_CERTIFICATE_PASSWORD` when it has one).
//!
//! The identity needs the keys/get, keys/wrapKey and keys/unwrapKey permissions (the
//! "Key Vault Crypto Service Encryption User" role), and the vault purge protection.

use std::num::NonZeroU32;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::credentials::{Secret, SecretBytes};
use azure_identity::{
    ClientCertificateCredential, ClientCertificateCredentialOptions, ClientSecretCredential,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential,
};
use cmk_envelope::azure::{KeyVaultOptions, KeyVaultWrapper};
use cmk_envelope::wrap::KeyOpsLimit;
use cmk_envelope::{Envelope, Error, KeyWrapper};

fn credential(kind: &str) -> Result<Arc<dyn TokenCredential>, Box<dyn std::error::Error>> {
    Ok(match kind {
        "managed" => {
            let user_assigned_id = std::env::var("AZURE_CLIENT_ID")
                .ok()
                .map(UserAssignedId::ClientId);
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id,
                ..Default::default()
            }))?
        }
        "workload" => WorkloadIdentityCredential::new(None)?,
        "dev" => DeveloperToolsCredential::new(None)?,
        "client-secret" => ClientSecretCredential::new(
            &std::env::var("AZURE_TENANT_ID")?,
            std::env::var("AZURE_CLIENT_ID")?,
            Secret::new(std::env::var("AZURE_CLIENT_SECRET")?),
            None,
        )?,
        "client-certificate" => ClientCertificateCredential::new(
            std::env::var("AZURE_TENANT_ID")?,
            std::env::var("AZURE_CLIENT_ID")?,
            SecretBytes::new(std::fs::read(std::env::var(
                "AZURE_CLIENT_CERTIFICATE_PATH",
            )?)?),
            Some(ClientCertificateCredentialOptions {
                password: std::env::var("AZURE_CLIENT_CERTIFICATE_PASSWORD")
                    .ok()
                    .map(Secret::new),
                ..Default::default()
            }),
        )?,
        other => {
            return Err(format!(
                "unknown credential {other}: managed, workload, dev, client-secret or \
                 client-certificate"
            )
            .into())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(key_url) = args.next() else {
        eprintln!(
            "usage: azure_keyvault <key URL> \
             [managed|workload|dev|client-secret|client-certificate]"
        );
        std::process::exit(2);
    };
    let credential = credential(args.next().as_deref().unwrap_or("dev"))?;

    // The vault's throughput is shared with everything else that uses it: this process
    // keeps to 50 key operations a second, across every key that holds a clone of the limit,
    // and pauses as a whole when the vault throttles anyway.
    let budget = KeyOpsLimit::per_second(NonZeroU32::new(50).expect("not zero"));
    // Checks the key on connect: RSA-2048, wrapKey/unwrapKey allowed, enabled, purge
    // protection. Each broken rule is its own error.
    let options = KeyVaultOptions::default().max_key_ops(budget);
    let key = Arc::new(KeyVaultWrapper::connect(&key_url, credential, options).await?);
    println!("current version: {}", key.current_kid().await?);

    let envelope = Envelope::builder()
        .seal_with(key as Arc<dyn KeyWrapper>)
        .build()?;
    // Wrapped locally with the key's public half: no vault call per object.
    let sealed = envelope.seal(b"quarterly numbers", b"tenant=42").await?;
    // Unwrapped by the vault (keys/unwrapKey), on the version the header names. A throttled
    // or unreachable vault is transient (retry later); a key or access problem is not.
    let opened = match envelope.open(&sealed, b"tenant=42").await {
        Ok(opened) => opened,
        Err(e) if e.is_transient() => {
            eprintln!("the vault is busy or unreachable, retry later: {e}");
            std::process::exit(4);
        }
        Err(e @ (Error::AccessDenied { .. } | Error::KeyDisabled { .. })) => {
            eprintln!("fix the key or the identity's access: {e}");
            std::process::exit(3);
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "sealed {} bytes; opened {:?} with {}",
        sealed.len(),
        String::from_utf8_lossy(opened.plaintext()),
        opened.info().kid()
    );
    Ok(())
}
