//! `cmke` with PKCS#11 keys in a throw-away SoftHSM2 token: key create and rotate in the
//! token, encrypt, decrypt without a keyring, lazy re-wrap, and the errors an operator sees.
#![cfg(all(feature = "cli", feature = "pkcs11"))]

use crate::support;
use support::softhsm;

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

fn cmke(dir: &Path) -> Command {
    let mut cmd = support::cmke(&dir.join("home"), &dir.join("keyring"));
    cmd.env("SOFTHSM2_CONF", softhsm::conf())
        .env("CMKE_PKCS11_MODULE", softhsm::module())
        .env("CMKE_PKCS11_PIN", softhsm::USER_PIN)
        .env_remove("CMKE_PKCS11_PIN_FILE")
        .timeout(std::time::Duration::from_secs(60));
    cmd
}

fn kid_of(dir: &Path, file: &Path) -> String {
    let out = cmke(dir)
        .arg("inspect")
        .arg(file)
        .output()
        .expect("inspect");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    json["slots"][0]["kid"].as_str().expect("kid").to_owned()
}

/// A fresh token `label`, the URI of key `orders` in it (not created yet), and a temporary
/// directory holding `a.txt` with `plaintext`, and the path `a.cmke` beside it.
struct Scene {
    key: String,
    token: String,
    dir: tempfile::TempDir,
    plain: std::path::PathBuf,
    sealed: std::path::PathBuf,
}

fn scene(label: &str, plaintext: &[u8]) -> Scene {
    let token = softhsm::new_token(label);
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("a.txt");
    std::fs::write(&plain, plaintext).expect("write");
    Scene {
        key: format!("pkcs11:token={token};object=orders"),
        token: token.clone(),
        sealed: dir.path().join("a.cmke"),
        plain,
        dir,
    }
}

#[test]
fn create_encrypt_decrypt_rotate_and_rewrap_in_the_token() {
    let Scene {
        key,
        token,
        dir,
        plain,
        sealed,
    } = scene("cli", b"ledger lines");
    // Envelopes name the token; the operator allows it (else cmke would not log in).
    let cmke = |d: &Path| {
        let mut cmd = cmke(d);
        cmd.args(["--allow-pkcs11-token", &token]);
        cmd
    };

    cmke(dir.path())
        .args(["key", "create", &key])
        .assert()
        .success()
        .stdout(format!("{key};id=%00%00%00%01\n"));
    cmke(dir.path())
        .args(["encrypt", "--key", &key, "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    assert_eq!(
        kid_of(dir.path(), &sealed),
        format!("{key};id=%00%00%00%01")
    );

    // No keyring: the HSM key named in the header opens it, from a file and from stdin.
    cmke(dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("ledger lines");
    cmke(dir.path())
        .arg("decrypt")
        .write_stdin(std::fs::read(&sealed).expect("read"))
        .assert()
        .success()
        .stdout("ledger lines");

    // Rotation: a new key pair with the next id; the old object opens, then moves to it with
    // only its header changed.
    cmke(dir.path())
        .args(["key", "rotate", &key])
        .assert()
        .success()
        .stdout(format!("{key};id=%00%00%00%02\n"));
    // The inventory asks the token for the current version and marks the object stale.
    cmke(dir.path())
        .args(["inventory", "--stale"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(format!("{}\n", sealed.display()));
    let before = std::fs::read(&sealed).expect("read");
    cmke(dir.path())
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .success();
    cmke(dir.path())
        .args(["inventory", "--stale"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout("");
    assert_eq!(
        kid_of(dir.path(), &sealed),
        format!("{key};id=%00%00%00%02")
    );
    let after = std::fs::read(&sealed).expect("read");
    let body = |bytes: &[u8]| {
        let (_, len) = cmk_envelope::format::Header::parse_prefix(bytes).expect("header");
        bytes[len..].to_vec()
    };
    assert_eq!(body(&before), body(&after), "the body is unchanged");
    cmke(dir.path())
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("ledger lines");
    // A second re-wrap has nothing to do.
    cmke(dir.path())
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(contains("already current"));
}

#[test]
fn software_to_hsm_rewrap_is_allowed_and_back_is_refused() {
    let Scene {
        key: hsm_key,
        token,
        dir,
        plain,
        sealed,
    } = scene("cli-rules", b"moving up");
    let cmke = |d: &Path| {
        let mut cmd = cmke(d);
        cmd.args(["--allow-pkcs11-token", &token]);
        cmd
    };
    cmke(dir.path())
        .args(["key", "create", "local-orders"])
        .assert()
        .success();
    cmke(dir.path())
        .args(["key", "create", &hsm_key])
        .assert()
        .success();
    cmke(dir.path())
        .args(["encrypt", "--key", "local-orders", "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    cmke(dir.path())
        .args(["rewrap", "--to", &hsm_key])
        .arg(&sealed)
        .assert()
        .success();
    assert!(kid_of(dir.path(), &sealed).starts_with(&hsm_key));
    cmke(dir.path())
        .args(["rewrap", "--to", "local-orders"])
        .arg(&sealed)
        .assert()
        .failure()
        .stderr(contains("refused by key policy").and(contains("software")));
    assert!(
        kid_of(dir.path(), &sealed).starts_with(&hsm_key),
        "left as it was"
    );
}

#[test]
fn pin_module_and_key_problems_are_clear_and_never_echo_the_pin() {
    let Scene {
        key,
        dir,
        plain,
        sealed,
        ..
    } = scene("cli-errors", b"x");
    cmke(dir.path())
        .args(["key", "create", &key])
        .assert()
        .success();

    cmke(dir.path())
        .env("CMKE_PKCS11_PIN", "9999-not-it")
        .args(["encrypt", "--key", &key])
        .arg(&plain)
        .assert()
        .code(3)
        .stdout("")
        .stderr(contains("access denied").and(contains("9999-not-it").not()));

    // The PIN from a file.
    let pin_file = dir.path().join("pin");
    support::write_private(&pin_file, softhsm::USER_PIN);
    cmke(dir.path())
        .env_remove("CMKE_PKCS11_PIN")
        .env("CMKE_PKCS11_PIN_FILE", &pin_file)
        .args(["encrypt", "--key", &key, "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();

    cmke(dir.path())
        .env_remove("CMKE_PKCS11_MODULE")
        .args(["encrypt", "--key", &key])
        .arg(&plain)
        .assert()
        .code(1)
        .stderr(contains("CMKE_PKCS11_MODULE"));
    cmke(dir.path())
        .args([
            "encrypt",
            "--key",
            &key.replace("object=orders", "object=nothing"),
        ])
        .arg(&plain)
        .assert()
        .code(3)
        .stderr(contains("key not found"));
    cmke(dir.path())
        .args([
            "encrypt",
            "--key",
            "pkcs11:token=no-such-token;object=orders",
        ])
        .arg(&plain)
        .assert()
        .code(3)
        .stderr(contains("pkcs11:token=no-such-token"));
    cmke(dir.path())
        .args(["key", "rotate", "pkcs11:token=x;object=y?pin-value=1234"])
        .assert()
        .code(1)
        .stderr(contains("1234").not());
}

#[test]
fn envelopes_naming_a_token_nobody_allowed_cause_no_login_there() {
    let Scene {
        key: own_key,
        token: own,
        dir,
        plain,
        ..
    } = scene("plant-own", b"ours");
    let foreign = softhsm::new_token("plant-foreign");
    let foreign_key = format!("pkcs11:token={foreign};object=bait");
    cmke(dir.path())
        .args(["key", "create", &own_key])
        .assert()
        .success();
    cmke(dir.path())
        .args(["key", "create", &foreign_key])
        .assert()
        .success();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    let planted = tree.join("planted.cmke");
    cmke(dir.path())
        .args(["encrypt", "--key", &foreign_key, "-o"])
        .arg(&planted)
        .arg(&plain)
        .assert()
        .success();
    // The token belongs to someone else now: the operator's PIN is not its PIN.
    softhsm::change_user_pin(&foreign, "not-the-operators");
    assert!(!softhsm::failed_user_logins(&foreign));

    let hint = format!("--allow-pkcs11-token \"{foreign}\"");
    let allowed = ["--allow-pkcs11-token", own.as_str()];
    cmke(dir.path())
        .args(allowed)
        .arg("decrypt")
        .arg(&planted)
        .assert()
        .code(3)
        .stderr(contains("no key for this envelope").and(contains(hint.as_str())));
    for command in ["verify", "rewrap", "inventory"] {
        let run = cmke(dir.path())
            .args(allowed)
            .arg(command)
            .arg(&tree)
            .assert();
        let run = if command == "inventory" {
            run.success().stdout(contains(hint.as_str()))
        } else {
            run.code(3).stderr(contains(hint.as_str()))
        };
        drop(run);
    }
    assert!(
        !softhsm::failed_user_logins(&foreign),
        "cmke tried the operator's PIN on a token a file named"
    );

    // Allowed by the operator, it is tried, and the token counts the failure: the check
    // above can see one.
    cmke(dir.path())
        .args(["--allow-pkcs11-token", foreign.as_str()])
        .arg("decrypt")
        .arg(&planted)
        .assert()
        .code(3);
    assert!(softhsm::failed_user_logins(&foreign));
}

#[test]
fn a_pin_file_others_can_change_is_refused() {
    let Scene { key, dir, .. } = scene("cli-pin-file", b"x");
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{}\n", softhsm::USER_PIN)).expect("pin");
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    cmke(dir.path())
        .env("CMKE_PKCS11_PIN_FILE", &pin_file)
        .args(["key", "create", &key])
        .assert()
        .failure()
        .stderr(
            contains("PIN file")
                .and(contains("chmod go-w"))
                .and(contains(softhsm::USER_PIN).not()),
        );
    std::fs::set_permissions(
        &pin_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    cmke(dir.path())
        .env("CMKE_PKCS11_PIN_FILE", &pin_file)
        .args(["key", "create", &key])
        .assert()
        .success();
}

/// A SoftHSM2 of its own (not the shared test HSM): a token directory holding one good
/// token labelled `good` and one whose files are garbage, so that reading its token
/// information fails, as it does for a token another process is initialising.
fn hsm_with_a_damaged_token(dir: &Path) -> std::path::PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).expect("token dir");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .expect("conf");
    let init = std::process::Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", "good"])
        .args(["--so-pin", softhsm::SO_PIN, "--pin", softhsm::USER_PIN])
        .output()
        .expect("softhsm2-util (installed with softhsm2)");
    assert!(init.status.success(), "{init:?}");
    let damaged = tokens.join("00000000-damaged");
    std::fs::create_dir(&damaged).expect("mkdir");
    std::fs::write(damaged.join("token.object"), b"not a token").expect("write");
    conf
}

#[test]
fn a_token_that_cannot_be_read_does_not_hide_the_one_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = hsm_with_a_damaged_token(dir.path());
    let plain = dir.path().join("a.txt");
    std::fs::write(&plain, b"still found").expect("write");
    let sealed = dir.path().join("a.cmke");
    let key = "pkcs11:token=good;object=orders";
    let run = || {
        let mut cmd = cmke(dir.path());
        cmd.env("SOFTHSM2_CONF", &conf)
            .args(["--allow-pkcs11-token", "good"]);
        cmd
    };
    run().args(["key", "create", key]).assert().success();
    run()
        .args(["encrypt", "--key", key, "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    run()
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("still found");
    // No slot matches: the unreadable one is the reason given, not "no such token".
    run()
        .args(["encrypt", "--key", "pkcs11:token=elsewhere;object=orders"])
        .arg(&plain)
        .assert()
        .failure()
        .stderr(contains("reading token information"));
}
