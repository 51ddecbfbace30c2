//! `cmke` with Key Vault key URLs, against the loopback double: encrypt, decrypt without a
//! keyring, lazy re-wrap after a rotation, and revocation as exit code 3.
#![cfg(all(
    feature = "cli",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

mod keyvault_double;

use assert_cmd::Command;
use keyvault_double::{Access, KeyVaultDouble, TOKEN};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn cmke(vault: &KeyVaultDouble, dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("cmke").expect("binary");
    // The operator allows the vault that the envelopes name.
    cmd.arg("--keyring")
        .arg(dir.join("no-keyring-here"))
        .args(["--allow-vault", &vault.vault_url()])
        .env(
            "CMKE_INSECURE_LOOPBACK_VAULT",
            format!("{}={}", vault.host(), vault.port()),
        )
        .env("CMKE_INSECURE_LOOPBACK_TOKEN", TOKEN)
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

#[test]
fn encrypt_decrypt_rewrap_and_revocation_with_a_key_url() {
    let vault = KeyVaultDouble::start("contoso");
    let v1 = vault.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("a.txt");
    let sealed = dir.path().join("a.cmke");
    std::fs::write(&plain, b"ledger lines").expect("write");

    cmke(&vault, dir.path())
        .args(["encrypt", "--key", &vault.key_url("orders"), "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    cmke(&vault, dir.path())
        .arg("inspect")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(contains(vault.kid("orders", &v1)));
    // No keyring: the vault key named in the header opens it, from a file and from stdin.
    cmke(&vault, dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("ledger lines");
    cmke(&vault, dir.path())
        .arg("decrypt")
        .write_stdin(std::fs::read(&sealed).expect("read"))
        .assert()
        .success()
        .stdout("ledger lines");

    // Rotation in the vault, then the lazy re-wrap: only the header changes.
    let v2 = vault.create_key("orders", 2048);
    // The inventory asks the vault for the current version and marks the object stale.
    cmke(&vault, dir.path())
        .args(["inventory", "--stale"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(format!("{}\n", sealed.display()));
    cmke(&vault, dir.path())
        .arg("inventory")
        .arg(dir.path())
        .assert()
        .success()
        .stdout(contains(format!("current: {}", vault.kid("orders", &v2))).and(contains("OLD")));
    cmke(&vault, dir.path())
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(contains(format!("-> {}", vault.kid("orders", &v2))));
    cmke(&vault, dir.path())
        .args(["decrypt", "--range", "7..12"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout("lines");

    // Revocation: each kind stops decryption with exit code 3 and says which.
    for (access, said) in [
        (Access::RevokedRbac, "access denied"),
        (Access::RevokedPolicy, "access denied"),
    ] {
        vault.set_access(access);
        cmke(&vault, dir.path())
            .arg("decrypt")
            .arg(&sealed)
            .assert()
            .code(3)
            .stdout("")
            .stderr(contains(said));
    }
    vault.set_access(Access::Granted);
    vault.set_enabled("orders", false);
    cmke(&vault, dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .code(3)
        .stderr(contains("disabled"));
    vault.set_enabled("orders", true);
    vault.delete_key("orders");
    cmke(&vault, dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .code(3)
        .stderr(contains("not found"));
}

#[test]
fn decrypt_needs_only_the_objects_own_key_version() {
    let vault = KeyVaultDouble::start("contoso");
    let v1 = vault.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("a.txt");
    let sealed = dir.path().join("a.cmke");
    std::fs::write(&plain, b"under v1").expect("write");
    cmke(&vault, dir.path())
        .args(["encrypt", "--key", &vault.key_url("orders"), "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    let decrypts = || {
        cmke(&vault, dir.path())
            .arg("decrypt")
            .arg(&sealed)
            .assert()
            .success()
            .stdout("under v1");
    };
    let v2 = vault.create_key("orders", 2048);
    vault.set_version_enabled("orders", &v2, false);
    decrypts();
    vault.create_key("orders", 3072);
    decrypts();
    // Re-wrapping *to* the newest version is what its state governs.
    cmke(&vault, dir.path())
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .code(3)
        .stderr(contains("RSA-3072"));
    // The object's own version disabled: exit 3, naming that version.
    vault.set_version_enabled("orders", &v1, false);
    cmke(&vault, dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .code(3)
        .stderr(contains("disabled").and(contains(v1.as_str())));
}
