//! `cmke` with Key Vault key URLs, against the loopback double: encrypt, decrypt without a
//! keyring, lazy re-wrap after a rotation, and revocation as exit code 3.
#![cfg(all(
    feature = "cli",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

use crate::support;
use support::keyvault_double;

use std::collections::BTreeMap;

use assert_cmd::Command;
use keyvault_double::{counts, Access, KeyVaultDouble, TOKEN};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn cmke(vault: &KeyVaultDouble, dir: &std::path::Path) -> Command {
    cmke_with(&[vault], dir)
}

/// `cmke` with these vaults allowed (the operator allows the vaults the envelopes name),
/// reached on loopback.
fn cmke_with(vaults: &[&KeyVaultDouble], dir: &std::path::Path) -> Command {
    let mut cmd = support::cmke(&dir.join("home"), &dir.join("no-keyring-here"));
    for vault in vaults {
        cmd.args(["--allow-vault", &vault.vault_url()]);
    }
    let routes: Vec<String> = vaults
        .iter()
        .map(|v| format!("{}={}", v.host(), v.port()))
        .collect();
    cmd.env("CMKE_INSECURE_LOOPBACK_VAULT", routes.join(","))
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

/// The authenticated calls of one `cmke` run (the unauthenticated challenge left out).
fn calls_of(vault: &KeyVaultDouble, run: impl FnOnce()) -> BTreeMap<String, usize> {
    vault.reset_calls();
    run();
    vault.authenticated_calls()
}

#[test]
fn each_command_makes_the_fewest_remote_calls() {
    const OBJECTS: usize = 6;
    let vault = KeyVaultDouble::start("contoso");
    let elsewhere = KeyVaultDouble::start("fabrikam");
    vault.create_key("orders", 2048);
    elsewhere.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, b"ledger lines").expect("write");
    let object = |i: usize| data.join(format!("{i}.cmke"));

    // encrypt: one key check per run, then a local wrap.
    for i in 0..OBJECTS {
        let calls = calls_of(&vault, || {
            cmke(&vault, dir.path())
                .args(["encrypt", "--key", &vault.key_url("orders"), "-o"])
                .arg(object(i))
                .arg(&plain)
                .assert()
                .success();
        });
        assert_eq!(calls, counts(&[("get", 1)]));
    }
    // decrypt: the object's own unwrapKey, and one look at the current version (to say
    // whether the object is stale).
    let calls = calls_of(&vault, || {
        cmke(&vault, dir.path())
            .arg("decrypt")
            .arg(object(0))
            .assert()
            .success()
            .stdout("ledger lines")
            .stderr("");
    });
    assert_eq!(calls, counts(&[("get", 1), ("unwrapKey", 1)]));
    // verify: one unwrapKey per object.
    let calls = calls_of(&vault, || {
        cmke(&vault, dir.path())
            .arg("verify")
            .arg(&data)
            .assert()
            .success();
    });
    assert_eq!(calls, counts(&[("unwrapKey", OBJECTS)]));
    // rewrap with nothing to do: one key check, no unwrap.
    let calls = calls_of(&vault, || {
        cmke(&vault, dir.path())
            .arg("rewrap")
            .arg(&data)
            .assert()
            .success();
    });
    assert_eq!(calls, counts(&[("get", 1)]));
    // After a rotation: decrypt says the object is stale and where rewrap would move it.
    let v2 = vault.create_key("orders", 2048);
    cmke(&vault, dir.path())
        .arg("decrypt")
        .arg(object(0))
        .assert()
        .success()
        .stdout("ledger lines")
        .stderr(contains("old key version").and(contains(vault.kid("orders", &v2))));
    // Then rewrap: one unwrapKey per object, one key check, one canary.
    let calls = calls_of(&vault, || {
        cmke(&vault, dir.path())
            .arg("rewrap")
            .arg(&data)
            .assert()
            .success()
            .stdout(contains(format!("-> {}", vault.kid("orders", &v2))));
    });
    assert_eq!(
        calls,
        counts(&[("get", 1), ("unwrapKey", OBJECTS + 1)]),
        "{:?}",
        vault.log()
    );
    // inventory: one key check per key.
    let calls = calls_of(&vault, || {
        cmke(&vault, dir.path())
            .arg("inventory")
            .arg(&data)
            .assert()
            .success();
    });
    assert_eq!(calls, counts(&[("get", 1)]));
    // rewrap --to a key in another vault: refused before either vault is asked.
    vault.reset_calls();
    elsewhere.reset_calls();
    cmke(&vault, dir.path())
        .env(
            "CMKE_INSECURE_LOOPBACK_VAULT",
            format!(
                "{}={},{}={}",
                vault.host(),
                vault.port(),
                elsewhere.host(),
                elsewhere.port()
            ),
        )
        .args(["rewrap", "--to", &elsewhere.key_url("orders")])
        .arg(&data)
        .assert()
        .code(3)
        .stderr(contains("same vault"));
    assert_eq!(vault.all_calls(), BTreeMap::new());
    assert_eq!(elsewhere.all_calls(), BTreeMap::new());
    // Nothing was changed by the refusal.
    for i in 0..OBJECTS {
        cmke(&vault, dir.path())
            .arg("decrypt")
            .arg(object(i))
            .assert()
            .success()
            .stdout("ledger lines");
    }
}

#[test]
fn key_service_failures_say_what_to_do_and_transient_ones_exit_4() {
    let vault = KeyVaultDouble::start("contoso");
    let version = vault.create_key("orders", 2048);
    let kid = vault.kid("orders", &version);
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
    let decrypt = || {
        let mut cmd = cmke(&vault, dir.path());
        cmd.arg("decrypt").arg(&sealed);
        cmd
    };

    // Throttled after the retries: transient, naming vault, key, version and operation.
    vault.throttle_next(100);
    decrypt().assert().code(4).stdout("").stderr(
        contains("throttled")
            .and(contains(kid.as_str()))
            .and(contains("unwrapKey")),
    );
    vault.throttle_next(0);
    // 5xx after the retries: transient too.
    vault.fail_next(100);
    decrypt().assert().code(4).stderr(
        contains("unavailable")
            .and(contains(kid.as_str()))
            .and(contains("unwrapKey"))
            .and(contains("503")),
    );
    vault.fail_next(0);
    // A vault that is not there at all (nothing listens on the port): transient.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    decrypt()
        .env(
            "CMKE_INSECURE_LOOPBACK_VAULT",
            format!("{}={gone}", vault.host()),
        )
        .assert()
        .code(4)
        .stderr(contains("unavailable").and(contains(kid.as_str())));

    // A token the vault rejects: an authentication failure, which tenant, how to log in.
    decrypt()
        .env(
            "CMKE_INSECURE_LOOPBACK_TOKEN",
            "a-token-from-another-tenant",
        )
        .assert()
        .code(3)
        .stderr(
            contains("token was rejected")
                .and(contains("tenant 00000000-0000-0000-0000-000000000001"))
                .and(contains("az login --tenant"))
                .and(contains(kid.as_str()))
                .and(contains("needs the keys/").not()),
        );

    // Answers that are not Key Vault's JSON name the operation that got them.
    vault.malform_next(1);
    decrypt()
        .assert()
        .code(1)
        .stderr(contains(format!("unwrapKey on {kid}: malformed answer")));
    vault.malform_next(1);
    cmke(&vault, dir.path())
        .args(["encrypt", "--key", &vault.key_url("orders"), "-o"])
        .arg(dir.path().join("b.cmke"))
        .arg(&plain)
        .assert()
        .code(1)
        .stderr(contains(format!(
            "get on {}: malformed answer",
            vault.key_url("orders")
        )));
    decrypt().assert().success().stdout("ledger lines");
}

/// `count` objects under `name`, sealed through the library, written into `dir`.
fn sealed_files(vault: &KeyVaultDouble, name: &str, dir: &std::path::Path, count: usize) {
    let wrapper = cmk_envelope::azure::KeyVaultWrapper::connect_lazily(
        &vault.key_url(name),
        cmk_envelope::azure::loopback::FixedTokenCredential::new(TOKEN),
        keyvault_double::quick_options(&[vault]),
    )
    .expect("client");
    let envelope = cmk_envelope::Envelope::builder()
        .seal_with(std::sync::Arc::new(wrapper))
        .build()
        .expect("envelope");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for i in 0..count {
        let sealed = runtime
            .block_on(envelope.seal(format!("{name} {i}").as_bytes(), b""))
            .expect("seal");
        std::fs::write(dir.join(format!("{name}-{i}.cmke")), sealed).expect("write");
    }
}

#[test]
fn max_key_ops_keeps_a_bulk_run_under_the_vaults_rate() {
    const OBJECTS: usize = 30;
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    sealed_files(&vault, "orders", &data, OBJECTS);
    vault.limit_rate(10);

    // Below the vault's rate: not one 429, every file verified.
    vault.reset_calls();
    cmke(&vault, dir.path())
        .args(["verify", "--quiet", "--jobs", "16", "--max-key-ops", "8"])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(vault.calls("throttled"), 0, "{:?}", vault.all_calls());
    assert_eq!(vault.calls("unwrapKey"), OBJECTS);

    // The same from the configuration file.
    let config = dir.path().join("cmke.toml");
    std::fs::write(&config, "max_key_ops = 8\n").expect("config");
    vault.reset_calls();
    cmke(&vault, dir.path())
        .arg("--config")
        .arg(&config)
        .args(["verify", "--quiet", "--jobs", "16"])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(vault.calls("throttled"), 0, "{:?}", vault.all_calls());

    // Without a limit, 16 jobs at once are throttled: the run backs off together and ends
    // after bounded retries, each file verified or failed as transient (exit 4).
    vault.reset_calls();
    let output = cmke(&vault, dir.path())
        .args(["verify", "--quiet", "--jobs", "16"])
        .arg(&data)
        .output()
        .expect("run");
    assert!(
        matches!(output.status.code(), Some(0 | 4)),
        "{output:?} {:?}",
        vault.log()
    );
    assert!(vault.calls("throttled") > 0, "{:?}", vault.all_calls());
}

#[test]
fn stats_count_the_back_off_pause_after_a_429() {
    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    sealed_files(&vault, "orders", &data, 3);
    vault.reset_calls();
    vault.throttle_next(1);
    let output = cmke(&vault, dir.path())
        .args(["--stats", "verify", "--quiet", "--jobs", "1"])
        .arg(&data)
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(vault.calls("throttled"), 1, "{:?}", vault.all_calls());
    assert!(
        stderr
            .lines()
            .any(|l| l.trim() == "cmke_key_service_pauses_total  1"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("cmke_key_service_calls_total")
                && l.contains("operation=unwrap")
                && l.trim_end().ends_with(" 3")),
        "{stderr}"
    );
}

#[test]
fn also_key_prefer_key_and_failover_between_two_vaults() {
    let (east, west) = (
        KeyVaultDouble::start("orders-east"),
        KeyVaultDouble::start("orders-west"),
    );
    east.create_key("orders", 2048);
    west.create_key("orders", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for i in 0..4 {
        let sealed = data.join(format!("{i}.cmke"));
        cmke_with(&[&east, &west], dir.path())
            .args(["encrypt", "--key", &east.key_url("orders")])
            .args(["--also-key", &west.key_url("orders"), "-o"])
            .arg(&sealed)
            .arg("-")
            .write_stdin(format!("object {i}"))
            .assert()
            .success();
    }
    let (east_unwraps, west_unwraps) = (east.calls("unwrapKey"), west.calls("unwrapKey"));

    // As written: the east slot opens every object.
    cmke_with(&[&east, &west], dir.path())
        .args(["verify", "--quiet"])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(east.calls("unwrapKey") - east_unwraps, 4);
    assert_eq!(west.calls("unwrapKey") - west_unwraps, 0);

    // A reader in the west prefers its own vault: the east one is not asked.
    cmke_with(&[&east, &west], dir.path())
        .args(["--prefer-key", &west.key_url("orders")])
        .args(["verify", "--quiet"])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(east.calls("unwrapKey") - east_unwraps, 4);
    assert_eq!(west.calls("unwrapKey") - west_unwraps, 4);

    // East down: every object opens through west, and east is asked once in the run.
    east.set_down(true);
    cmke_with(&[&east, &west], dir.path())
        .args(["verify", "--quiet", "--jobs", "1"])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(
        east.arrivals_while_down().len(),
        1,
        "{:?}",
        east.all_calls()
    );
    assert_eq!(west.calls("unwrapKey") - west_unwraps, 8);

    // With no cool-down, every object asks east first.
    cmke_with(&[&east, &west], dir.path())
        .args([
            "--failover-cooldown",
            "0",
            "verify",
            "--quiet",
            "--jobs",
            "1",
        ])
        .arg(&data)
        .assert()
        .success();
    assert_eq!(east.arrivals_while_down().len(), 5);
}
