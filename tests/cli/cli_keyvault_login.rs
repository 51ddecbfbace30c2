//! `cmke --azure-credential client-secret | client-certificate | azure-pipelines`: the Azure
//! SDK's own service-principal credentials log in against a loopback Entra ID double, and
//! the token they get opens the vault double. Secrets come from the environment or a file
//! only the user can read, never from a flag, and are never echoed.
#![cfg(all(
    feature = "cli",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

use crate::support;
use support::keyvault_double;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use keyvault_double::entra::EntraDouble;
use keyvault_double::{KeyVaultDouble, TOKEN};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0b9a5c5e-1f6a-4c8e-9d0e-4a7c3f2b1d10";
const SECRET: &str = "s3cr3t~Q8Zp.service-principal";

/// Every variable a credential reads, so that the test machine's own never leak in.
const AZURE_VARIABLES: [&str; 13] = [
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURESUBSCRIPTION_TENANT_ID",
    "AZURESUBSCRIPTION_CLIENT_ID",
    "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID",
    "SYSTEM_ACCESSTOKEN",
    "SYSTEM_OIDCREQUESTURI",
];

struct World {
    vault: KeyVaultDouble,
    entra: EntraDouble,
    dir: tempfile::TempDir,
    sealed: PathBuf,
}

/// A vault with one object sealed under it, and a login endpoint.
fn world() -> World {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let entra = EntraDouble::start(TENANT, TOKEN);
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("a.txt");
    let sealed = dir.path().join("a.cmke");
    std::fs::write(&plain, b"ledger lines").expect("write");
    let world = World {
        vault,
        entra,
        dir,
        sealed,
    };
    world.entra.register_secret(CLIENT, SECRET);
    let mut encrypt = world.cmke("client-secret");
    encrypt
        .env("AZURE_CLIENT_SECRET", SECRET)
        .args(["encrypt", "--key", &world.vault.key_url("orders"), "-o"])
        .arg(&world.sealed)
        .arg(&plain)
        .assert()
        .success();
    world
}

impl World {
    /// cmke with the credential `credential`: requests for the vault and the login hosts go
    /// to the doubles, and the token comes from the credential (no fixed token).
    fn cmke(&self, credential: &str) -> Command {
        let mut cmd = support::cmke(
            &self.dir.path().join("home"),
            &self.dir.path().join("no-keyring-here"),
        );
        for variable in AZURE_VARIABLES {
            cmd.env_remove(variable);
        }
        cmd.args(["--allow-vault", &self.vault.vault_url()])
            .args(["--azure-credential", credential])
            .env(
                "CMKE_INSECURE_LOOPBACK_VAULT",
                format!(
                    "{}={},{}",
                    self.vault.host(),
                    self.vault.port(),
                    self.entra.routes()
                ),
            )
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT)
            .timeout(std::time::Duration::from_secs(60));
        cmd
    }

    fn decrypt(&self, credential: &str) -> Command {
        let mut cmd = self.cmke(credential);
        cmd.arg("decrypt").arg(&self.sealed);
        cmd
    }

    /// A file only its owner can read and write.
    fn private_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        set_mode(&path, 0o600);
        path
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_client_secret_from_the_environment_or_a_private_file_logs_in() {
    let world = world();
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET", SECRET)
        .assert()
        .success()
        .stdout("ledger lines");
    // From a file, with the newline an editor leaves.
    let file = world.private_file("secret", format!("{SECRET}\n").as_bytes());
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET_FILE", &file)
        .assert()
        .success()
        .stdout("ledger lines");
    assert!(world.entra.log().iter().all(|line| !line.contains(SECRET)));

    // A secret file others can read is refused before it is read; so is a choice between two.
    set_mode(&file, 0o644);
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET_FILE", &file)
        .assert()
        .code(1)
        .stderr(contains("readable by other users").and(contains("chmod go-rwx")));
    set_mode(&file, 0o600);
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env("AZURE_CLIENT_SECRET_FILE", &file)
        .assert()
        .code(1)
        .stderr(contains("keep one"));
    // No secret at all: says where it goes, never asks for a flag.
    world
        .decrypt("client-secret")
        .assert()
        .code(1)
        .stderr(contains("AZURE_CLIENT_SECRET").and(contains("AZURE_CLIENT_SECRET_FILE")));
    // There is no flag for it.
    world
        .cmke("client-secret")
        .args(["--azure-client-secret", SECRET, "decrypt"])
        .arg(&world.sealed)
        .assert()
        .failure()
        .stderr(contains(SECRET).not());
}

#[test]
fn a_wrong_secret_is_a_refused_login_naming_the_credential_not_the_secret() {
    let world = world();
    let wrong = "not-the-secret-9f2e";
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET", wrong)
        .assert()
        .code(3)
        .stdout("")
        .stderr(
            contains("no token from the credential")
                .and(contains("AADSTS7000215"))
                .and(contains("--azure-credential"))
                .and(contains(wrong).not())
                .and(contains(SECRET).not()),
        );
    // A missing tenant or client id is named.
    world
        .decrypt("client-secret")
        .env("AZURE_CLIENT_SECRET", SECRET)
        .env_remove("AZURE_TENANT_ID")
        .assert()
        .code(1)
        .stderr(contains("AZURE_TENANT_ID"));
}

/// A self-signed certificate and its key, as PKCS#12 protected by `password`.
fn pkcs12(password: &str) -> (openssl::x509::X509, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509NameBuilder, X509};

    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("pkey");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "cmke-service-principal")
        .expect("cn");
    let name = name.build();
    let mut builder = X509::builder().expect("builder");
    builder.set_version(2).expect("version");
    builder.set_subject_name(&name).expect("subject");
    builder.set_issuer_name(&name).expect("issuer");
    builder.set_pubkey(&key).expect("pubkey");
    builder
        .set_not_before(&Asn1Time::days_from_now(0).expect("time"))
        .expect("not before");
    builder
        .set_not_after(&Asn1Time::days_from_now(30).expect("time"))
        .expect("not after");
    builder.sign(&key, MessageDigest::sha256()).expect("sign");
    let certificate = builder.build();
    let bundle = openssl::pkcs12::Pkcs12::builder()
        .name("cmke")
        .pkey(&key)
        .cert(&certificate)
        .build2(password)
        .expect("pkcs12")
        .to_der()
        .expect("der");
    (certificate, bundle)
}

#[test]
fn a_client_certificate_logs_in_with_a_signed_assertion() {
    let world = world();
    let password = "pfx-pass-31c";
    let (certificate, bundle) = pkcs12(password);
    world.entra.register_certificate(CLIENT, &certificate);
    let pfx = world.private_file("sp.pfx", &bundle);
    world
        .decrypt("client-certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &pfx)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", password)
        .assert()
        .success()
        .stdout("ledger lines");
    // The password from a private file works too.
    let password_file = world.private_file("pfx-pass", password.as_bytes());
    world
        .decrypt("client-certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &pfx)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD_FILE", &password_file)
        .assert()
        .success()
        .stdout("ledger lines");

    // Another certificate than the one registered: a refused login.
    let (_, other) = pkcs12(password);
    let other_pfx = world.private_file("other.pfx", &other);
    world
        .decrypt("client-certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &other_pfx)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", password)
        .assert()
        .code(3)
        .stderr(contains("no token from the credential").and(contains(password).not()));
    // A wrong password: the certificate does not open, and the password is not echoed.
    world
        .decrypt("client-certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &pfx)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", "wrong-pass-77")
        .assert()
        .code(1)
        .stderr(contains("sp.pfx").and(contains("wrong-pass-77").not()));
    // A certificate file others can read is refused.
    set_mode(&pfx, 0o640);
    world
        .decrypt("client-certificate")
        .env("AZURE_CLIENT_CERTIFICATE_PATH", &pfx)
        .env("AZURE_CLIENT_CERTIFICATE_PASSWORD", password)
        .assert()
        .code(1)
        .stderr(contains("readable by other users"));
}

#[test]
fn an_azure_pipelines_service_connection_logs_in() {
    let world = world();
    let (pipelines_client, connection, system_token) = (
        "5d3e1c2b-0a9f-4e8d-b7c6-a5f4e3d2c1b0",
        "8c6f2a1e-service-connection",
        "system-access-token-6e2",
    );
    world
        .entra
        .register_pipelines(pipelines_client, connection, system_token);
    let pipeline = |token: &str| {
        let mut cmd = world.decrypt("azure-pipelines");
        cmd.env("AZURESUBSCRIPTION_TENANT_ID", TENANT)
            .env("AZURESUBSCRIPTION_CLIENT_ID", pipelines_client)
            .env("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", connection)
            .env("SYSTEM_ACCESSTOKEN", token)
            .env(
                "SYSTEM_OIDCREQUESTURI",
                format!(
                    "https://{}{}",
                    keyvault_double::entra::PIPELINES_HOST,
                    keyvault_double::entra::OIDC_PATH
                ),
            );
        cmd
    };
    pipeline(system_token)
        .assert()
        .success()
        .stdout("ledger lines");
    pipeline("a-stale-system-token")
        .assert()
        .code(3)
        .stderr(contains("a-stale-system-token").not());
}
