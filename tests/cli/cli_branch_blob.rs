//! `cmke` with its branch key store in an Azure Blob Storage container (Azurite over HTTPS,
//! `--oauth basic`): the token comes from `--azure-credential client-secret`, which logs in
//! against the loopback Entra ID double; create, encrypt, decrypt, list, a CMK rotation
//! followed by `cmke rewrap URL`, and two processes rotating at once.
#![cfg(all(
    feature = "cli",
    feature = "azure-blob",
    feature = "insecure-loopback-vault",
    feature = "aws-lc"
))]

use crate::support;

use std::path::PathBuf;
use std::process::Output;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;
use support::azurite::{azurite, TENANT};
use support::keyvault_double::entra::EntraDouble;

const CLIENT: &str = "5d3c1f0e-8a2b-4c6d-9e7f-0a1b2c3d4e5f";
const SECRET: &str = "branch-store~s3cr3t";

struct Site {
    dir: tempfile::TempDir,
    entra: EntraDouble,
    store: String,
}

impl Site {
    async fn new(container: &str) -> Self {
        let store = azurite().new_container(container).await;
        let entra = EntraDouble::start(TENANT, &support::azurite::token());
        entra.register_secret(CLIENT, SECRET);
        let site = Self {
            dir: tempfile::tempdir().expect("tempdir"),
            entra,
            store: format!("{store}/fleet"),
        };
        site.cmke()
            .args(["key", "create", "cmk"])
            .assert()
            .success();
        site
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// cmke naming the container store; its token comes from the client secret credential.
    fn cmke(&self) -> assert_cmd::Command {
        let mut cmd = support::cmke(self.dir.path(), &self.path("keyring"));
        cmd.args(["--branch-store", &self.store]);
        self.entra
            .log_in_with_secret(&mut cmd, TENANT, CLIENT, SECRET);
        cmd.timeout(std::time::Duration::from_secs(120));
        cmd
    }

    /// `cmke inventory --json URL`: the store's part.
    fn store_inventory(&self) -> Value {
        let out = self
            .cmke()
            .args(["inventory", "--json"])
            .arg(&self.store)
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let json: Value = serde_json::from_slice(&out.stdout).expect("json");
        json["branch_stores"][0].clone()
    }

    fn current_branch_kid(&self) -> String {
        let listing = self.listing();
        listing[0]["current_kid"].as_str().expect("kid").to_owned()
    }

    fn listing(&self) -> Value {
        let out = self
            .cmke()
            .args(["branch", "list", "--json"])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("json")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn branch_keys_in_a_container_from_create_to_a_cmk_rotation() {
    let site = Site::new("cli-lifecycle").await;
    site.cmke()
        .args(["branch", "create", "orders", "--cmk", "cmk"])
        .assert()
        .success()
        .stdout(contains("branch:orders/"));
    let plain = site.path("a.txt");
    std::fs::write(&plain, b"kept in the container's care").expect("write");
    let sealed = site.path("a.cmke");
    site.cmke()
        .args(["encrypt", "--key", "branch:orders", "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success();
    site.cmke()
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("kept in the container's care");
    let before = std::fs::read(&sealed).expect("read");

    // A CMK rotation: the inventory of the store shows the record under the old version.
    site.cmke()
        .args(["key", "rotate", "cmk"])
        .assert()
        .success();
    let stale = site.store_inventory();
    assert_eq!(stale["records"], 1, "{stale}");
    assert_eq!(
        stale["stale_records"][0],
        site.current_branch_kid(),
        "{stale}"
    );
    let versions = &stale["cmk_keys"][0]["versions"];
    assert_eq!(versions[0]["records"], 1, "{stale}");
    assert_eq!(versions[0]["current"], false, "{stale}");
    site.cmke()
        .args(["inventory"])
        .arg(&site.store)
        .assert()
        .success()
        .stdout(contains("OLD").and(contains("record under an old CMK version")));

    // The records re-wrapped where they are: the object is untouched.
    site.cmke()
        .arg("rewrap")
        .arg(&site.store)
        .assert()
        .success()
        .stdout(contains("record re-wrapped under local:cmk/"))
        .stderr(contains("1 records re-wrapped, 0 already current"));
    site.cmke()
        .arg("rewrap")
        .arg(&site.store)
        .assert()
        .success()
        .stderr(contains("0 records re-wrapped, 1 already current"));
    let listing = site.listing();
    let keys = site
        .cmke()
        .args(["key", "list", "--json"])
        .output()
        .expect("run");
    let keys: Value = serde_json::from_slice(&keys.stdout).expect("json");
    assert_eq!(
        listing[0]["versions"][0]["cmk_kids"][0], keys[0]["current_kid"],
        "{listing}"
    );
    let current = site.store_inventory();
    assert_eq!(current["stale_records"].as_array().map(Vec::len), Some(0));
    assert_eq!(current["cmk_keys"][0]["versions"][0]["current"], true);
    assert_eq!(std::fs::read(&sealed).expect("read"), before);
    site.cmke()
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .success()
        .stdout("kept in the container's care");

    // Options that make no sense for a store are refused, not ignored.
    site.cmke()
        .args(["rewrap", "--dry-run"])
        .arg(&site.store)
        .assert()
        .code(1)
        .stderr(contains("--dry-run"));
    // Without a credential that can log in, nothing is read: access denied, exit 3.
    site.cmke()
        .env("AZURE_CLIENT_SECRET", "not-the-secret")
        .arg("decrypt")
        .arg(&sealed)
        .assert()
        .code(3)
        .stderr(contains("access denied").and(contains("not-the-secret").not()));
}

fn rotate_both_at_once(site: &Site) -> [Output; 2] {
    let start = std::sync::Barrier::new(2);
    let rotate = || {
        let mut cmd = site.cmke();
        cmd.args(["branch", "rotate", "orders"]);
        start.wait();
        cmd.output().expect("run")
    };
    std::thread::scope(|scope| {
        let a = scope.spawn(rotate);
        let b = scope.spawn(rotate);
        [a.join().expect("a"), b.join().expect("b")]
    })
}

#[tokio::test]
async fn two_processes_rotating_at_once_one_wins_and_no_record_is_lost() {
    let site = Site::new("cli-race").await;
    site.cmke()
        .args(["branch", "create", "orders", "--cmk", "cmk"])
        .assert()
        .success();
    let mut records = 1;
    let mut races = 0;
    // Two processes started together usually both read `current` before either moves
    // it; a round where one finished first is not a race, and is tried again.
    for round in 1..=10 {
        let [a, b] = rotate_both_at_once(&site);
        records += 2;
        let winners: Vec<&Output> = [&a, &b]
            .into_iter()
            .filter(|o| o.status.success())
            .collect();
        let losers: Vec<&Output> = [&a, &b]
            .into_iter()
            .filter(|o| !o.status.success())
            .collect();
        for loser in &losers {
            assert_eq!(loser.status.code(), Some(1), "{}", text(&loser.stderr));
            assert!(
                text(&loser.stderr).contains("another rotation moved it first"),
                "{}",
                text(&loser.stderr)
            );
        }
        assert!(!winners.is_empty(), "someone must win: {a:?} {b:?}");
        let listing = site.listing();
        let versions = listing[0]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), records, "every record is kept: {listing}");
        let current = listing[0]["current_kid"].as_str().expect("current");
        assert!(
            winners.iter().any(|w| text(&w.stdout).trim() == current),
            "current is a winner's version: {current}"
        );
        if losers.len() == 1 {
            eprintln!("the two rotations overlapped in round {round}");
            races += 1;
            break;
        }
    }
    assert_eq!(races, 1, "no round of ten made the two rotations overlap");

    // Every record opens, the loser's too: after a CMK rotation each one is re-wrapped,
    // and a re-wrap is confirmed to open before it replaces a record.
    site.cmke()
        .args(["key", "rotate", "cmk"])
        .assert()
        .success();
    site.cmke()
        .arg("rewrap")
        .arg(&site.store)
        .assert()
        .success()
        .stderr(contains(format!(
            "{records} records re-wrapped, 0 already current"
        )));
}
