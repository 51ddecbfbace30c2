//! `cmke` against loopback Key Vaults, as someone who can plant or replace files would
//! attack it: a file replaced while its key call is in flight, envelopes naming a vault the
//! operator never named, and a vault that is down among good files.
#![cfg(all(
    feature = "cli",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

use crate::support;
use support::keyvault_double;

use std::path::Path;

use assert_cmd::Command;
use keyvault_double::{KeyVaultDouble, TOKEN};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// `cmke` reaching `vaults` over loopback (none allowed unless a test says so).
fn cmke(vaults: &[&KeyVaultDouble], dir: &Path) -> Command {
    let mut cmd = support::cmke(&dir.join("home"), &dir.join("keyring"));
    let routes: Vec<String> = vaults
        .iter()
        .map(|v| format!("{}={}", v.host(), v.port()))
        .collect();
    cmd.env("CMKE_INSECURE_LOOPBACK_VAULT", routes.join(","))
        .env("CMKE_INSECURE_LOOPBACK_TOKEN", TOKEN)
        .env_remove("CMKE_KEYRING")
        .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn encrypt(vault: &KeyVaultDouble, dir: &Path, plain: &[u8], out: &Path) {
    let input = dir.join("plain.tmp");
    std::fs::write(&input, plain).expect("write");
    cmke(&[vault], dir)
        .args(["encrypt", "--key", &vault.key_url("orders"), "-o"])
        .arg(out)
        .arg(&input)
        .assert()
        .success();
}

#[test]
fn a_file_replaced_while_its_key_call_is_in_flight_is_left_as_the_application_made_it() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let object = dir.path().join("a.cmke");
    encrypt(&vault, dir.path(), b"version one", &object);
    vault.create_key("orders", 2048);
    // The application's next version of the object, ready to be renamed over it.
    let staged = dir.path().join("staged.cmke");
    encrypt(&vault, dir.path(), b"version two", &staged);
    let version_two = std::fs::read(&staged).expect("read");

    // While cmke's unwrapKey for the old header is in the vault, the application replaces
    // the file the normal way: a rename of the new version over it.
    let (from, to) = (staged.clone(), object.clone());
    vault.before_next_unwrap(move || std::fs::rename(&from, &to).expect("replace"));
    let allowed = ["--allow-vault", "https://contoso.vault.azure.net"];
    cmke(&[&vault], dir.path())
        .args(allowed)
        .arg("rewrap")
        .arg(&object)
        .assert()
        .code(1)
        .stderr(contains("changed during rewrap").and(contains("1 changed during rewrap")));
    assert_eq!(
        std::fs::read(&object).expect("read"),
        version_two,
        "the application's new version, byte for byte"
    );
    cmke(&[&vault], dir.path())
        .args(allowed)
        .arg("decrypt")
        .arg(&object)
        .assert()
        .success()
        .stdout("version two");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");

    // Removed while the key call is in flight: not brought back.
    let removed = object.clone();
    vault.create_key("orders", 2048);
    vault.before_next_unwrap(move || std::fs::remove_file(&removed).expect("remove"));
    cmke(&[&vault], dir.path())
        .args(allowed)
        .arg("rewrap")
        .arg(&object)
        .assert()
        .code(1)
        .stderr(contains("changed during rewrap"));
    assert!(!object.exists(), "a deleted object stays deleted");
}

#[test]
fn envelopes_naming_a_vault_nobody_allowed_cause_no_connection_there() {
    let attacker = KeyVaultDouble::start("attacker");
    attacker.create_key("bait", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    // Planted: an envelope whose slot names the attacker's vault.
    let planted = tree.join("planted.cmke");
    let input = dir.path().join("p.txt");
    std::fs::write(&input, b"bait").expect("write");
    cmke(&[&attacker], dir.path())
        .args(["encrypt", "--key", &attacker.key_url("bait"), "-o"])
        .arg(&planted)
        .arg(&input)
        .assert()
        .success();
    attacker.clear_log();

    let hint = "--allow-vault https://attacker.vault.azure.net";
    cmke(&[&attacker], dir.path())
        .arg("decrypt")
        .arg(&planted)
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("no key for this envelope").and(contains(hint)));
    cmke(&[&attacker], dir.path())
        .arg("verify")
        .arg(&tree)
        .assert()
        .code(3)
        .stderr(contains(hint));
    let before = std::fs::read(&planted).expect("read");
    cmke(&[&attacker], dir.path())
        .arg("rewrap")
        .arg(&tree)
        .assert()
        .code(3)
        .stderr(contains(hint));
    assert_eq!(std::fs::read(&planted).expect("read"), before);
    cmke(&[&attacker], dir.path())
        .arg("inventory")
        .arg(&tree)
        .assert()
        .success()
        .stdout(contains("current version unknown").and(contains(hint)));
    assert_eq!(
        attacker.log(),
        Vec::<String>::new(),
        "not one request reached the vault the file named"
    );

    // The operator allows it: then, and only then, cmke goes there.
    cmke(&[&attacker], dir.path())
        .args([
            "--allow-vault",
            "https://attacker.vault.azure.net",
            "decrypt",
        ])
        .arg(&planted)
        .assert()
        .success()
        .stdout("bait");
    assert!(!attacker.log().is_empty());
}

#[test]
fn a_vault_that_is_down_or_refuses_fails_only_the_files_under_it() {
    let good = KeyVaultDouble::start("contoso");
    good.create_key("orders", 2048);
    let refusing = KeyVaultDouble::start("northwind");
    refusing.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    for i in 0..3 {
        encrypt(
            &good,
            dir.path(),
            b"fine",
            &tree.join(format!("good-{i}.cmke")),
        );
    }
    encrypt(
        &refusing,
        dir.path(),
        b"refused",
        &tree.join("refused.cmke"),
    );
    refusing.set_access(keyvault_double::Access::RevokedRbac);
    // One object under a vault that then has an outage: every request answered 503.
    let down = KeyVaultDouble::start("fabrikam");
    down.create_key("orders", 2048);
    encrypt(&down, dir.path(), b"lost", &tree.join("down.cmke"));
    down.fail_next(u32::MAX);
    let down_route = format!("{}={}", down.host(), down.port());

    let run = |args: &[&str]| {
        let mut cmd = cmke(&[&good, &refusing], dir.path());
        cmd.env(
            "CMKE_INSECURE_LOOPBACK_VAULT",
            format!(
                "{}={},{}={},{down_route}",
                good.host(),
                good.port(),
                refusing.host(),
                refusing.port()
            ),
        );
        for vault in ["contoso", "northwind", "fabrikam"] {
            cmd.args(["--allow-vault", &format!("https://{vault}.vault.azure.net")]);
        }
        cmd.args(args).arg(&tree);
        cmd
    };
    // The vault that is down costs its retries for its own file only.
    run(&["verify"])
        .assert()
        .code(3)
        .stdout(contains("good-0.cmke: ok").and(contains("good-2.cmke: ok")))
        .stderr(
            contains("down.cmke")
                .and(contains("refused.cmke"))
                .and(contains("3 verified, 2 failed")),
        );
    std::fs::remove_file(tree.join("down.cmke")).expect("remove");
    good.create_key("orders", 2048);
    run(&["rewrap"])
        .assert()
        .code(3)
        .stderr(contains("3 re-wrapped").and(contains("1 failed")));
    run(&["inventory"])
        .assert()
        .success()
        .stdout(contains("northwind").and(contains("current version unknown")));
}
