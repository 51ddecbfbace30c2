//! `cmke` with branch keys over the software keyring: create, encrypt under `branch:NAME`,
//! decrypt, rotate, inventory, a CMK rotation that re-wraps the records only, a move from
//! the CMK to a branch key, the listing, and the store named by the operator only.
#![cfg(all(feature = "cli", feature = "aws-lc"))]

use crate::support;

use cmk_envelope::format::{Header, KeySlot};
use predicates::str::contains;
use serde_json::Value;
use support::branch_site::Site;
use support::{data, slot_kid};

#[test]
fn encrypt_rotate_decrypt_and_inventory_under_a_branch_key() {
    let site = Site::new();
    let v1 = site.current_branch_kid();
    let old = site.encrypt("branch:orders", "old", &data(200_000));
    assert_eq!(slot_kid(&std::fs::read(&old).expect("read")), v1);
    site.decrypts_to(&old, &data(200_000));

    site.cmke()
        .args(["branch", "rotate", "orders"])
        .assert()
        .success()
        .stdout(contains("branch:orders/"));
    let v2 = site.current_branch_kid();
    assert_ne!(v1, v2);
    let new = site.encrypt("branch:orders", "new", b"after the rotation");
    assert_eq!(slot_kid(&std::fs::read(&new).expect("read")), v2);
    site.decrypts_to(&old, &data(200_000));
    site.cmke()
        .arg("decrypt")
        .arg(&old)
        .assert()
        .success()
        .stderr(contains("old key version"));

    // Objects per branch version, the old one marked stale.
    let out = site
        .cmke()
        .args(["inventory", "--json"])
        .arg(site.path("data"))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&v1) && text.contains(&v2), "{text}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    let stale = json["stale"].as_array().expect("stale list");
    assert_eq!(stale.len(), 1, "{text}");

    // The lazy re-wrap of the stale object, locally.
    site.cmke()
        .arg("rewrap")
        .arg(site.path("data"))
        .assert()
        .success();
    assert_eq!(slot_kid(&std::fs::read(&old).expect("read")), v2);
    site.decrypts_to(&old, &data(200_000));

    let listing = site
        .cmke()
        .args(["branch", "list", "--json"])
        .output()
        .expect("run");
    let listing: Value = serde_json::from_slice(&listing.stdout).expect("json");
    assert_eq!(listing[0]["name"], "orders");
    assert_eq!(listing[0]["current_kid"], v2.as_str());
    assert_eq!(listing[0]["versions"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_cmk_rotation_rewraps_the_records_and_leaves_the_objects_alone() {
    let site = Site::new();
    let object = site.encrypt("branch:orders", "a", b"kept as it is");
    let before = std::fs::read(&object).expect("read");
    site.cmke()
        .args(["key", "rotate", "cmk"])
        .assert()
        .success();
    // A directory store is walked like any tree: its records per CMK version, the one
    // under the old version stale.
    let out = site
        .cmke()
        .args(["inventory", "--json"])
        .arg(site.path("branches"))
        .output()
        .expect("run");
    let records: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(records["objects"], 1, "{records}");
    assert_eq!(
        records["stale"].as_array().map(Vec::len),
        Some(1),
        "{records}"
    );
    assert_eq!(records["keys"][0]["key"], "local:cmk", "{records}");
    site.cmke()
        .arg("rewrap")
        .arg(site.path("branches"))
        .assert()
        .success();
    // Every record is under the CMK's new version; the object is byte for byte the same.
    let out = site
        .cmke()
        .args(["branch", "list", "--json"])
        .output()
        .expect("run");
    let listing: Value = serde_json::from_slice(&out.stdout).expect("json");
    let keys = site
        .cmke()
        .args(["key", "list", "--json"])
        .output()
        .expect("run");
    let keys: Value = serde_json::from_slice(&keys.stdout).expect("json");
    let cmk_current = keys[0]["current_kid"].as_str().expect("kid").to_owned();
    for version in listing[0]["versions"].as_array().expect("versions") {
        assert_eq!(version["cmk_kids"][0], cmk_current.as_str(), "{listing}");
    }
    assert_eq!(std::fs::read(&object).expect("read"), before);
    site.decrypts_to(&object, b"kept as it is");
}

#[test]
fn objects_move_from_the_cmk_to_the_branch_key() {
    let site = Site::new();
    let object = site.encrypt("cmk", "a", &data(1000));
    assert!(slot_kid(&std::fs::read(&object).expect("read")).starts_with("local:cmk/"));
    site.cmke()
        .args(["rewrap", "--to", "branch:orders"])
        .arg(site.path("data"))
        .assert()
        .success();
    assert_eq!(
        slot_kid(&std::fs::read(&object).expect("read")),
        site.current_branch_kid()
    );
    site.decrypts_to(&object, &data(1000));
    site.cmke()
        .arg("verify")
        .arg(site.path("data"))
        .assert()
        .success();
}

#[test]
fn without_the_store_a_branch_object_is_a_key_problem_with_a_hint() {
    let site = Site::new();
    let object = site.encrypt("branch:orders", "a", b"x");
    support::cmke(site.dir.path(), &site.path("keyring"))
        .arg("decrypt")
        .arg(&object)
        .assert()
        .code(3)
        .stderr(contains("--branch-store"));
}

#[test]
fn a_record_naming_a_vault_the_operator_did_not_allow_is_refused_before_any_call() {
    let site = Site::new();
    let object = site.encrypt("branch:orders", "a", b"x");
    // Relabel the current record's CMK slot with a vault's kid.
    let record_path = site.path(&format!(
        "branches/orders/{}.cmke",
        site.current_branch_kid()
            .rsplit('/')
            .next()
            .expect("version")
    ));
    let record = std::fs::read(&record_path).expect("record");
    let (header, header_len) = Header::parse_prefix(&record).expect("header");
    let slot = &header.slots()[0];
    let evil = KeySlot::new(
        "https://attacker.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef".to_owned(),
        slot.algorithm(),
        slot.wrapped().to_vec(),
    )
    .expect("slot");
    let relabelled = Header::new(header.preamble().clone(), vec![evil]).expect("header");
    let mut bytes = relabelled.to_bytes();
    bytes.extend_from_slice(&record[header_len..]);
    std::fs::write(&record_path, bytes).expect("write");
    site.cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .code(3)
        .stderr(contains("attacker.vault.azure.net"))
        .stderr(contains("--allow-vault"));
}

#[test]
fn a_damaged_current_stops_sealing_but_not_opening() {
    let site = Site::new();
    let object = site.encrypt("branch:orders", "a", b"still readable");
    std::fs::write(site.path("branches/orders/current"), "garbage\n").expect("damage");
    site.decrypts_to(&object, b"still readable");
    std::fs::write(site.path("b.plain"), b"x").expect("plain");
    site.cmke()
        .args(["encrypt", "--key", "branch:orders", "-o"])
        .arg(site.path("b.cmke"))
        .arg(site.path("b.plain"))
        .assert()
        .failure()
        .stderr(contains("does not hold a version"));
    assert!(!site.path("b.cmke").exists());
}

#[test]
fn a_branch_key_never_wraps_a_record_and_names_are_checked() {
    let site = Site::new();
    site.cmke()
        .args(["branch", "create", "nested", "--cmk", "branch:orders"])
        .assert()
        .code(3)
        .stderr(contains("never by another branch key"));
    site.cmke()
        .args(["branch", "create", "orders", "--cmk", "cmk"])
        .assert()
        .failure()
        .stderr(contains("exists"));
    site.cmke()
        .args(["branch", "create", "bad/name", "--cmk", "cmk"])
        .assert()
        .failure();
}

/// A branch key over a Key Vault CMK (the loopback double): one `unwrapKey` per process
/// however many objects it opens, and a disabled CMK is exit 3.
#[cfg(feature = "insecure-loopback-vault")]
#[test]
fn a_branch_key_over_a_vault_cmk_makes_one_unwrap_per_run_and_stops_when_disabled() {
    use support::keyvault_double::{KeyVaultDouble, TOKEN};

    let vault = KeyVaultDouble::start("contoso");
    vault.create_key("cmk", 2048);
    let dir = tempfile::tempdir().expect("tempdir");
    let cmke = || {
        let mut cmd = support::cmke(&dir.path().join("home"), &dir.path().join("no-keyring"));
        cmd.arg("--branch-store")
            .arg(dir.path().join("branches"))
            .args(["--allow-vault", &vault.vault_url()])
            .env(
                "CMKE_INSECURE_LOOPBACK_VAULT",
                format!("{}={}", vault.host(), vault.port()),
            )
            .env("CMKE_INSECURE_LOOPBACK_TOKEN", TOKEN);
        cmd
    };
    cmke()
        .args(["branch", "create", "fleet", "--cmk", &vault.key_url("cmk")])
        .assert()
        .success();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data");
    for i in 0..20 {
        let plain = dir.path().join(format!("{i}.txt"));
        std::fs::write(&plain, format!("record {i}")).expect("write");
        cmke()
            .args(["encrypt", "--key", "branch:fleet", "-o"])
            .arg(data.join(format!("{i}.cmke")))
            .arg(&plain)
            .assert()
            .success();
    }
    vault.reset_calls();
    cmke().arg("verify").arg(&data).assert().success();
    assert_eq!(vault.calls("unwrapKey"), 1, "{:?}", vault.all_calls());

    vault.set_enabled("cmk", false);
    cmke()
        .arg("decrypt")
        .arg(data.join("0.cmke"))
        .assert()
        .code(3);
}

#[test]
fn branch_records_sealed_under_a_second_cmk() {
    let site = Site::new();
    site.cmke()
        .args(["key", "create", "cmk-west"])
        .assert()
        .success();
    site.cmke()
        .args([
            "branch",
            "create",
            "regions",
            "--cmk",
            "cmk",
            "--also-cmk",
            "cmk-west",
        ])
        .assert()
        .success();
    let record_kids = |site: &Site| -> Vec<String> {
        let version = std::fs::read_to_string(site.path("branches/regions/current"))
            .expect("current")
            .trim()
            .to_owned();
        let record =
            std::fs::read(site.path(&format!("branches/regions/{version}.cmke"))).expect("record");
        let (header, _) = Header::parse_prefix(&record).expect("header");
        header
            .slots()
            .iter()
            .map(|s: &KeySlot| s.kid().to_owned())
            .collect()
    };
    let kids = record_kids(&site);
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids[0].starts_with("local:cmk/") && kids[1].starts_with("local:cmk-west/"));
    let sealed = site.encrypt("branch:regions", "two", b"under a branch key of two CMKs");
    site.decrypts_to(&sealed, b"under a branch key of two CMKs");

    // A rotation with both CMKs named keeps both slots; --also-cmk needs --cmk.
    site.cmke()
        .args(["branch", "rotate", "regions", "--also-cmk", "cmk-west"])
        .assert()
        .failure();
    site.cmke()
        .args([
            "branch",
            "rotate",
            "regions",
            "--cmk",
            "cmk",
            "--also-cmk",
            "cmk-west",
        ])
        .assert()
        .success();
    assert_eq!(record_kids(&site).len(), 2);
    site.decrypts_to(&sealed, b"under a branch key of two CMKs");
}
