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
//! - `dev` (default): the developer's `az login` or `azd auth login`.
//!
//! The identity needs the keys/get, keys/wrapKey and keys/unwrapKey permissions (the
//! "Key Vault Crypto Service Encryption User" role), and the vault purge protection.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_identity::{
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential,
};
use cmk_envelope::azure::{KeyVaultOptions, KeyVaultWrapper};
use cmk_envelope::{Envelope, KeyWrapper};

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
        other => {
            return Err(format!("unknown credential {other}: managed, workload or dev").into())
        }
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(key_url) = args.next() else {
        eprintln!("usage: azure_keyvault <key URL> [managed|workload|dev]");
        std::process::exit(2);
    };
    let credential = credential(args.next().as_deref().unwrap_or("dev"))?;

    // Checks the key on connect: RSA-2048, wrapKey/unwrapKey allowed, enabled, purge
    // protection. Each broken rule is its own error.
    let key =
        Arc::new(KeyVaultWrapper::connect(&key_url, credential, KeyVaultOptions::default()).await?);
    println!("current version: {}", key.current_kid().await?);

    let envelope = Envelope::builder()
        .seal_with(key as Arc<dyn KeyWrapper>)
        .build()?;
    // Wrapped locally with the key's public half: no vault call per object.
    let sealed = envelope.seal(b"quarterly numbers", b"tenant=42").await?;
    // Unwrapped by the vault (keys/unwrapKey), on the version the header names.
    let opened = envelope.open(&sealed, b"tenant=42").await?;
    println!(
        "sealed {} bytes; opened {:?} with {}",
        sealed.len(),
        String::from_utf8_lossy(opened.plaintext()),
        opened.kid()
    );
    Ok(())
}
