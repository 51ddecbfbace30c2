//! A `cmke` site with branch keys over the software keyring: a keyring holding the CMK
//! `cmk`, a branch store holding the branch key `orders` under it, and a data directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use predicates::str::contains;

pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Self {
        let site = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::create_dir(site.path("data")).expect("data dir");
        site.cmke()
            .args(["key", "create", "cmk"])
            .assert()
            .success();
        site.cmke()
            .args(["branch", "create", "orders", "--cmk", "cmk"])
            .assert()
            .success()
            .stdout(contains("branch:orders/"));
        site
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmke(&self) -> assert_cmd::Command {
        let mut cmd = super::cmke(self.dir.path(), &self.path("keyring"));
        cmd.arg("--branch-store").arg(self.path("branches"));
        cmd
    }

    pub fn encrypt(&self, key: &str, name: &str, plain: &[u8]) -> PathBuf {
        let input = self.path(&format!("{name}.plain"));
        std::fs::write(&input, plain).expect("plain");
        let output = self.path(&format!("data/{name}.cmke"));
        self.cmke()
            .args(["encrypt", "--key", key, "-o"])
            .arg(&output)
            .arg(&input)
            .assert()
            .success();
        output
    }

    pub fn decrypts_to(&self, file: &Path, plain: &[u8]) {
        let out = self.cmke().arg("decrypt").arg(file).output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, plain);
    }

    pub fn current_branch_kid(&self) -> String {
        let version =
            std::fs::read_to_string(self.path("branches/orders/current")).expect("current");
        format!("branch:orders/{}", version.trim())
    }

    /// The current version of `orders`, as its `current` file says.
    pub fn current_version(&self) -> String {
        std::fs::read_to_string(self.path("branches/orders/current"))
            .expect("current")
            .trim()
            .to_owned()
    }
}
