//! `cmke` as an operator uses it after a key rotation, driven as a process: inventory, bulk
//! re-wrap (10,000 files; killed mid-way and resumed; corrupt and foreign files among good
//! ones), verify, dry runs, detached headers, the configuration file, help and completions.
#![cfg(all(feature = "cli", feature = "aws-lc"))]

use crate::support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use assert_cmd::Command;
use cmk_envelope::format::Header;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

/// A keyring with key `orders`, and a tree of `count` small envelopes under it, 100 per
/// directory. Sealed through the library: only the operations under test go through the
/// binary.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(count: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let keyring = Keyring::create(dir.path().join("keyring")).expect("keyring");
        keyring.create_key("orders").expect("key");
        let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
        let envelope = Envelope::builder()
            .seal_with(key)
            .build()
            .expect("envelope");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for i in 0..count {
            let sub = dir.path().join("tree").join(format!("d{:03}", i / 100));
            std::fs::create_dir_all(&sub).expect("mkdir");
            let sealed = runtime
                .block_on(envelope.seal(format!("object {i}").as_bytes(), b""))
                .expect("seal");
            std::fs::write(sub.join(format!("f{i:05}.cmke")), sealed).expect("write");
        }
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn cmke(&self) -> Command {
        let mut cmd = support::cmke(
            &self.dir.path().join("home"),
            &self.dir.path().join("keyring"),
        );
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn rotate(&self) {
        self.cmke()
            .args(["key", "rotate", "orders"])
            .assert()
            .success();
    }

    fn inventory(&self) -> Value {
        let out = self
            .cmke()
            .args(["inventory", "--json"])
            .arg(self.root())
            .output()
            .expect("inventory");
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// Every file in the tree whose name marks a temporary file.
    fn temporary_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.root()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("tmp-"))
                {
                    found.push(path);
                }
            }
        }
        found
    }
}

fn body(bytes: &[u8]) -> Vec<u8> {
    let (_, len) = Header::parse_prefix(bytes).expect("header");
    bytes[len..].to_vec()
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(usize::MAX, Vec::len)
}

#[test]
fn ten_thousand_objects_migrate_after_a_rotation() {
    let tree = Tree::new(10_000);
    let sample = tree.root().join("d042/f04242.cmke");
    let before = std::fs::read(&sample).expect("read");
    tree.rotate();

    let inventory = tree.inventory();
    assert_eq!(inventory["objects"], 10_000);
    assert_eq!(len(&inventory["stale"]), 10_000);
    let versions = &inventory["keys"][0]["versions"];
    assert_eq!(len(versions), 1);
    assert_eq!(versions[0]["objects"], 10_000);
    assert_eq!(versions[0]["current"], false);

    tree.cmke()
        .args(["rewrap", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stdout("")
        .stderr(contains("10000 re-wrapped, 0 already current").and(contains("0 failed")));

    let inventory = tree.inventory();
    assert_eq!(len(&inventory["stale"]), 0);
    assert_eq!(inventory["keys"][0]["versions"][0]["objects"], 10_000);
    assert_eq!(inventory["keys"][0]["versions"][0]["current"], true);
    let after = std::fs::read(&sample).expect("read");
    assert_ne!(before, after, "the header changed");
    assert_eq!(body(&before), body(&after), "the body did not");
    assert!(tree.temporary_files().is_empty());

    tree.cmke()
        .args(["verify", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stderr(contains("10000 verified, 0 failed"));
    // Resumable by construction: a second run finds nothing to do.
    tree.cmke()
        .args(["rewrap", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stderr(contains("0 re-wrapped, 10000 already current"));
}

#[test]
fn a_migration_killed_midway_leaves_every_file_whole_and_resumes() {
    let tree = Tree::new(2_000);
    tree.rotate();
    let binary = assert_cmd::cargo::cargo_bin("cmke");
    let mut child = std::process::Command::new(binary)
        .current_dir(tree.dir.path())
        .arg("--keyring")
        .arg(tree.dir.path().join("keyring"))
        .args(["rewrap", "--jobs", "2"])
        .arg(tree.root())
        .env_remove("CMKE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut done = 0;
    for line in BufReader::new(stdout).lines() {
        if line.expect("line").contains("re-wrapped") {
            done += 1;
        }
        if done == 500 {
            break;
        }
    }
    child.kill().expect("kill -9"); // SIGKILL: no chance to clean up
    let _ = child.wait();
    assert_eq!(done, 500, "the run was stopped part-way");

    // Every object opens, whichever version it is under; none is half-written.
    let inventory = tree.inventory();
    assert_eq!(inventory["objects"], 2_000);
    assert_eq!(len(&inventory["corrupt"]), 0);
    let stale = len(&inventory["stale"]);
    assert!(stale > 0 && stale <= 1_500, "{stale} still stale");
    tree.cmke()
        .args(["verify", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stderr(contains("2000 verified").and(contains("0 failed")));

    // The second run finishes the job and removes what the first left behind.
    tree.cmke()
        .args(["rewrap", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stderr(contains(format!("{stale} re-wrapped")).and(contains("0 failed")));
    assert!(
        tree.temporary_files().is_empty(),
        "{:?}",
        tree.temporary_files()
    );
    let inventory = tree.inventory();
    assert_eq!(len(&inventory["stale"]), 0);
    assert_eq!(len(&inventory["stale_temporary_files"]), 0);
    tree.cmke()
        .args(["verify", "--quiet"])
        .arg(tree.root())
        .assert()
        .success()
        .stderr(contains("2000 verified"));
}

#[test]
fn corrupt_and_foreign_files_among_good_ones_are_reported_and_left_alone() {
    let tree = Tree::new(50);
    let root = tree.root();
    let foreign = [
        (root.join("README.txt"), b"not encrypted\n".to_vec()),
        (
            root.join("d000/photo.jpg"),
            vec![0xff, 0xd8, 0xff, 0xe0, 0, 16],
        ),
        (root.join("d000/empty"), Vec::new()),
    ];
    let good = std::fs::read(root.join("d000/f00001.cmke")).expect("read");
    let corrupt = [
        (root.join("d000/garbage.cmke"), b"CMKE\x09garbage".to_vec()),
        (root.join("d000/cut.cmke"), good[..40].to_vec()),
    ];
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered_path = root.join("d000/tampered-body.cmke");
    for (path, bytes) in foreign
        .iter()
        .chain(&corrupt)
        .chain(std::iter::once(&(tampered_path.clone(), tampered)))
    {
        std::fs::write(path, bytes).expect("write");
    }
    tree.rotate();

    let out = tree
        .cmke()
        .args(["inventory", "--json"])
        .arg(&root)
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let inventory: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(inventory["objects"], 51);
    assert_eq!(len(&inventory["not_cmke"]), 3);
    assert_eq!(len(&inventory["corrupt"]), 2);
    tree.cmke()
        .arg("inventory")
        .arg(&root)
        .assert()
        .code(2)
        .stdout(
            contains("51 objects")
                .and(contains("3 not CMKE"))
                .and(contains("2 corrupt headers")),
        );

    // The good ones move; the corrupt ones fail (exit 2) without stopping the rest; nothing
    // that is not a good envelope is touched. The tampered body is not noticed here: a
    // re-wrap reads headers only.
    tree.cmke()
        .args(["rewrap", "--quiet"])
        .arg(&root)
        .assert()
        .code(2)
        .stderr(
            contains("51 re-wrapped")
                .and(contains("3 skipped"))
                .and(contains("2 failed"))
                .and(contains("garbage.cmke"))
                .and(contains("cut.cmke")),
        );
    for (path, bytes) in foreign.iter().chain(&corrupt) {
        assert_eq!(
            &std::fs::read(path).expect("read"),
            bytes,
            "{}",
            path.display()
        );
    }
    assert_eq!(len(&tree.inventory()["stale"]), 0);

    // verify opens every object: the tampered body is caught, and named.
    tree.cmke()
        .args(["verify", "--quiet"])
        .arg(&root)
        .assert()
        .code(2)
        .stderr(
            contains("tampered-body.cmke: decryption failed")
                .and(contains("50 verified"))
                .and(contains("6 failed")),
        );
}

#[test]
fn dry_run_changes_nothing_and_detached_mode_rewrites_only_header_files() {
    let tree = Tree::new(3);
    // A detached header beside its body.
    let keyring = Keyring::open(tree.dir.path().join("keyring")).expect("keyring");
    let key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
    let envelope = Envelope::builder()
        .seal_with(key)
        .build()
        .expect("envelope");
    let sealed = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(envelope.seal_detached(b"split", b""))
        .expect("seal");
    let header_path = tree.root().join("d000/split.cmkh");
    let body_path = tree.root().join("d000/split.body");
    std::fs::write(&header_path, &sealed.header).expect("header");
    std::fs::write(&body_path, &sealed.body).expect("body");
    tree.rotate();

    let attached = tree.root().join("d000/f00000.cmke");
    let before = std::fs::read(&attached).expect("read");
    tree.cmke()
        .args(["rewrap", "--dry-run"])
        .arg(tree.root())
        .assert()
        .success()
        .stdout(contains("would re-wrap local:orders/"))
        .stderr(contains("4 would re-wrap"));
    assert_eq!(std::fs::read(&attached).expect("read"), before);
    assert_eq!(std::fs::read(&header_path).expect("read"), sealed.header);

    tree.cmke()
        .args(["rewrap", "--detached"])
        .arg(tree.root())
        .assert()
        .success()
        .stdout(contains("split.cmkh: re-wrapped").and(contains("skipped (--detached)")))
        // Skipped: the three attached envelopes, and the body file (not CMKE on its own).
        .stderr(contains("1 re-wrapped").and(contains("4 skipped")));
    assert_eq!(
        std::fs::read(&attached).expect("read"),
        before,
        "attached: untouched"
    );
    assert_ne!(std::fs::read(&header_path).expect("read"), sealed.header);
    assert_eq!(
        std::fs::read(&body_path).expect("read"),
        sealed.body,
        "body: untouched"
    );
}

#[test]
fn the_user_configuration_sets_defaults_and_flags_win() {
    let tree = Tree::new(1);
    let dir = tree.dir.path();
    let config_dir = dir.join("xdg-config/cmke");
    std::fs::create_dir_all(&config_dir).expect("mkdir");
    // Relative paths in the file are relative to the file, not to the working directory.
    std::fs::write(
        config_dir.join("cmke.toml"),
        "keyring = \"../../keyring\"\njobs = 2\n",
    )
    .expect("toml");
    let plain = dir.join("p.txt");
    std::fs::write(&plain, b"configured").expect("write");
    let cmke = || {
        let mut cmd = Command::cargo_bin("cmke").expect("binary");
        cmd.current_dir(dir)
            .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
            .env("HOME", dir.join("home"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("CMKE_KEYRING")
            .env_remove("CMKE_CONFIG");
        cmd
    };
    // No --keyring: the configuration names it.
    cmke()
        .args(["encrypt", "--key", "local:orders", "-o", "p.cmke", "p.txt"])
        .assert()
        .success();
    cmke()
        .args(["decrypt", "p.cmke"])
        .assert()
        .success()
        .stdout("configured");
    // A flag wins over the file.
    cmke()
        .args(["--keyring", "elsewhere", "decrypt", "p.cmke"])
        .assert()
        .code(3)
        .stderr(contains("elsewhere"));
    // --config names another file; a typo or a PIN in it is refused.
    std::fs::write(dir.join("other.toml"), "keyrnig = \"keyring\"\n").expect("toml");
    cmke()
        .args(["--config", "other.toml", "decrypt", "p.cmke"])
        .assert()
        .code(1)
        .stderr(contains("other.toml").and(contains("keyrnig")));
    std::fs::write(dir.join("pin.toml"), "pkcs11_pin = \"1234\"\n").expect("toml");
    cmke()
        .args(["--config", "pin.toml", "decrypt", "p.cmke"])
        .assert()
        .code(1)
        .stderr(contains("never read from cmke.toml").and(contains("1234").not()));
    // A pinned local version is not a key to seal under.
    cmke()
        .args(["encrypt", "--key", "local:orders/0123", "p.txt"])
        .assert()
        .code(1)
        .stderr(contains("names one version"));
}

#[test]
fn every_command_teaches_by_example_and_completions_are_generated() {
    let commands: [&[&str]; 13] = [
        &[],
        &["key"],
        &["encrypt"],
        &["decrypt"],
        &["inspect"],
        &["rewrap"],
        &["inventory"],
        &["verify"],
        &["completions"],
        &["key", "create"],
        &["key", "rotate"],
        &["key", "list"],
        &["key", "import"],
    ];
    for command in commands {
        Command::cargo_bin("cmke")
            .expect("binary")
            .args(command)
            .arg("--help")
            .assert()
            .success()
            .stdout(contains("Example"));
    }
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        Command::cargo_bin("cmke")
            .expect("binary")
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("rewrap").and(contains("inventory")));
    }
}

#[test]
fn stale_lists_exactly_the_objects_to_move() {
    let tree = Tree::new(4);
    tree.rotate();
    let moved = tree.root().join("d000/f00001.cmke");
    tree.cmke().arg("rewrap").arg(&moved).assert().success();
    let out = tree
        .cmke()
        .args(["inventory", "--stale"])
        .arg(tree.root())
        .output()
        .expect("inventory");
    let listed: Vec<PathBuf> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(listed.len(), 3);
    assert!(!listed.iter().any(|p| p == Path::new(&moved)));
}

#[test]
fn version_names_the_provider_and_the_fips_status() {
    let expected = if cfg!(feature = "fips") {
        "FIPS: enabled (AWS-LC FIPS 140-3 module)"
    } else {
        "FIPS: not built"
    };
    Command::cargo_bin("cmke")
        .expect("binary")
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("provider: aws-lc (AWS-LC ").and(contains(expected)));
    if cfg!(feature = "fips") {
        // Refused, not served by an unvalidated implementation.
        let tree = Tree::new(1);
        tree.cmke()
            .args(["--provider", "rustcrypto", "verify"])
            .arg(tree.root())
            .assert()
            .failure()
            .stderr(contains("left out of this FIPS build"));
    }
}
