//! `cmke` as someone who can plant files would attack it, and as an operator expects it to
//! behave: what rewrap keeps and refuses, which temporary files it removes, where its
//! configuration and keyring come from, which files it trusts, honest verify reports, and
//! file-derived text escaped on the terminal.
#![cfg(all(feature = "cli", feature = "aws-lc"))]

use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// A keyring with key `orders` in a temporary directory, and `cmke` run there with a
/// home of its own.
struct Scene {
    dir: tempfile::TempDir,
    envelope: Envelope,
    runtime: tokio::runtime::Runtime,
}

impl Scene {
    fn new() -> Self {
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
        Self {
            dir,
            envelope,
            runtime,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Seals `plain` under `orders` (its version at the time the scene was made).
    fn write_sealed(&self, name: &str, plain: &[u8]) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        let sealed = self
            .runtime
            .block_on(self.envelope.seal(plain, b""))
            .expect("seal");
        std::fs::write(&path, sealed).expect("write");
        path
    }

    fn cmke(&self) -> Command {
        let mut cmd = support::cmke(&self.path("home"), &self.path("keyring"));
        cmd.current_dir(self.dir.path());
        cmd
    }

    fn rotate(&self) {
        self.cmke()
            .args(["key", "rotate", "orders"])
            .assert()
            .success();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").mode() & 0o7777
}

#[test]
fn rewrap_keeps_owner_group_and_mode_and_refuses_set_id_files_and_hard_links() {
    let scene = Scene::new();
    let owned = scene.write_sealed("data/owned.cmke", b"theirs");
    std::fs::set_permissions(&owned, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    if is_root() {
        std::os::unix::fs::chown(&owned, Some(4242), Some(4343)).expect("chown");
    }
    let setuid = scene.write_sealed("data/setuid.cmke", b"odd");
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4644)).expect("chmod");
    let linked = scene.write_sealed("data/linked.cmke", b"twice");
    let other_link = scene.path("elsewhere.cmke");
    std::fs::hard_link(&linked, &other_link).expect("link");
    let (setuid_before, linked_before) = (
        std::fs::read(&setuid).expect("read"),
        std::fs::read(&linked).expect("read"),
    );
    scene.rotate();

    scene
        .cmke()
        .arg("rewrap")
        .arg(scene.path("data"))
        .assert()
        .code(1)
        .stdout(contains("owned.cmke: re-wrapped"))
        .stderr(
            contains("setuid.cmke: a set-user-ID or set-group-ID file")
                .and(contains("linked.cmke: has 2 hard links"))
                .and(contains("--break-hard-links"))
                .and(contains("1 re-wrapped"))
                .and(contains("2 refused")),
        );
    let meta = std::fs::metadata(&owned).expect("stat");
    assert_eq!(meta.mode() & 0o7777, 0o640, "mode kept");
    if is_root() {
        assert_eq!(
            (meta.uid(), meta.gid()),
            (4242, 4343),
            "owner and group kept"
        );
    }
    assert_eq!(std::fs::read(&setuid).expect("read"), setuid_before);
    assert_eq!(mode(&setuid), 0o4644);
    assert_eq!(std::fs::read(&linked).expect("read"), linked_before);
    assert_eq!(std::fs::metadata(&linked).expect("stat").nlink(), 2);

    // Asked for, the link is broken: this name gets the re-wrapped file, the other keeps
    // the old one, which still opens.
    scene
        .cmke()
        .args(["rewrap", "--break-hard-links"])
        .arg(&linked)
        .assert()
        .success()
        .stdout(contains("re-wrapped"));
    assert_ne!(std::fs::read(&linked).expect("read"), linked_before);
    assert_eq!(std::fs::read(&other_link).expect("read"), linked_before);
    for path in [&owned, &linked, &other_link] {
        scene.cmke().arg("decrypt").arg(path).assert().success();
    }
}

/// The pid of a process that has ended.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

#[test]
fn leftover_temporary_files_are_removed_only_when_provably_cmkes() {
    let scene = Scene::new();
    let object = scene.write_sealed("data/a.cmke", b"object");
    let pid = dead_pid();
    let sealed = std::fs::read(&object).expect("read");
    let dir = scene.path("data");
    // Named as older cmke versions named their temporary files, but a user's.
    let text = dir.join(format!(".a.cmke.tmp-{pid}-1f-0"));
    std::fs::write(&text, b"my notes\n").expect("write");
    let sqlite = dir.join(format!(".a.cmke.tmp-{pid}-2e-1"));
    std::fs::write(&sqlite, b"SQLite format 3\0rest of a database").expect("write");
    // cmke's own name, but not an envelope inside: not provably ours either.
    let marked_text = dir.join(format!(".a.cmke.cmke-tmp-{pid}-3d-0"));
    std::fs::write(&marked_text, b"SQLite format 3\0").expect("write");
    // cmke's own name beside its target, an envelope inside, its process gone: ours.
    let ours = dir.join(format!(".a.cmke.cmke-tmp-{pid}-4c-0"));
    std::fs::write(&ours, &sealed).expect("write");
    // cmke's name and content, but no target beside it.
    let orphan = dir.join(format!(".gone.cmke.cmke-tmp-{pid}-5b-0"));
    std::fs::write(&orphan, &sealed).expect("write");

    scene
        .cmke()
        .arg("inventory")
        .arg(&dir)
        .assert()
        .success()
        .stdout(
            contains("1 temporary files left by an interrupted cmke").and(contains(
                "named like a temporary file, not provably cmke's (never removed)",
            )),
        );
    scene.rotate();
    scene
        .cmke()
        .arg("rewrap")
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains(
            "removed: a temporary file left by an interrupted cmke",
        ))
        .stderr(contains("1 leftover temporary files removed"));
    assert!(!ours.exists(), "ours is removed");
    for kept in [&text, &sqlite, &marked_text, &orphan] {
        assert!(kept.exists(), "{} is kept", kept.display());
    }
    assert_eq!(std::fs::read(&text).expect("read"), b"my notes\n");
}

#[test]
fn the_working_directory_never_chooses_the_configuration_or_the_keyring() {
    let scene = Scene::new();
    let cwd = scene.path("shared");
    std::fs::create_dir_all(&cwd).expect("mkdir");
    // Planted in a shared directory: a configuration naming the attacker's keyring and
    // module, and a keyring where the old default was.
    std::fs::write(
        cwd.join("cmke.toml"),
        "keyring = \"attacker-keyring\"\npkcs11_module = \"evil.so\"\n",
    )
    .expect("toml");
    let planted = Keyring::create(cwd.join("cmke-keyring")).expect("keyring");
    planted.create_key("orders").expect("key");
    let planted_before = planted.list().expect("list");

    let plain = cwd.join("p.txt");
    std::fs::write(&plain, b"customer data").expect("write");
    let cmke = || {
        let mut cmd = Command::cargo_bin("cmke").expect("binary");
        cmd.current_dir(&cwd)
            .env("HOME", scene.path("home"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("CMKE_KEYRING")
            .env_remove("CMKE_CONFIG");
        cmd
    };
    cmke()
        .args(["key", "create", "orders"])
        .assert()
        .success()
        .stdout(contains("local:orders/"));
    let home_keyring = scene.path("home/.local/share/cmke/keyring");
    assert!(
        home_keyring.join("orders/current").is_file(),
        "the user's data directory"
    );
    cmke()
        .args(["encrypt", "--key", "orders", "-o", "p.cmke", "p.txt"])
        .assert()
        .success();
    // The planted keyring cannot open it; the user's can.
    let planted_envelope = Envelope::builder()
        .open_with_all(planted.openers().expect("keyring"))
        .build()
        .expect("envelope");
    let sealed = std::fs::read(cwd.join("p.cmke")).expect("read");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    assert!(runtime
        .block_on(planted_envelope.open(&sealed, b""))
        .is_err());
    assert_eq!(planted.list().expect("list"), planted_before);
    assert!(!cwd.join("attacker-keyring").exists());
    cmke()
        .args(["decrypt", "p.cmke"])
        .assert()
        .success()
        .stdout("customer data");
    // XDG_DATA_HOME moves the default keyring; a relative one is ignored.
    cmke()
        .env("XDG_DATA_HOME", scene.path("xdg-data"))
        .args(["key", "create", "elsewhere"])
        .assert()
        .success();
    assert!(scene.path("xdg-data/cmke/keyring/elsewhere").is_dir());
    cmke()
        .env("XDG_DATA_HOME", "relative")
        .args(["key", "list"])
        .assert()
        .success()
        .stdout(contains("orders"));
    assert!(!cwd.join("relative").exists());
}

#[test]
fn files_that_others_can_change_are_refused_with_the_fix() {
    let scene = Scene::new();
    let object = scene.write_sealed("a.cmke", b"x");
    // A group-writable configuration.
    let config = scene.path("cmke.toml");
    std::fs::write(&config, "jobs = 2\n").expect("toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    scene
        .cmke()
        .arg("--config")
        .arg(&config)
        .arg("decrypt")
        .arg(&object)
        .assert()
        .code(1)
        .stderr(
            contains("configuration file")
                .and(contains("writable by its group"))
                .and(contains("chmod go-w")),
        );
    // A keyring directory others can write to.
    let keyring = scene.path("keyring");
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    scene
        .cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .failure()
        .stdout("")
        .stderr(contains("keyring directory").and(contains("chmod go-w")));
    std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // A key file someone in the group can rewrite.
    let current = std::fs::read_to_string(keyring.join("orders/current")).expect("current");
    let key_file = keyring.join(format!("orders/{}.pem", current.trim()));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o660)).expect("chmod");
    scene
        .cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .failure()
        .stderr(contains("key file").and(contains("chmod go-w")));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if is_root() {
        std::os::unix::fs::chown(&key_file, Some(4242), None).expect("chown");
        scene
            .cmke()
            .arg("decrypt")
            .arg(&object)
            .assert()
            .failure()
            .stderr(contains("owned by uid 4242"));
        std::os::unix::fs::chown(&key_file, Some(0), None).expect("chown");
    }
    scene
        .cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .success()
        .stdout("x");
}

#[cfg(feature = "pkcs11")]
#[test]
fn a_pkcs11_module_others_can_change_is_never_loaded() {
    let scene = Scene::new();
    let module = scene.path("module.so");
    std::fs::write(&module, b"not really a module").expect("write");
    std::fs::set_permissions(&module, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    scene
        .cmke()
        .arg("--pkcs11-module")
        .arg(&module)
        .env("CMKE_PKCS11_PIN", "1234")
        .args(["key", "create", "pkcs11:token=t;object=k"])
        .assert()
        .code(1)
        .stderr(contains("PKCS#11 module").and(contains("writable by its group and everyone")));
}

#[test]
fn the_keyring_is_read_per_key_and_broken_keys_are_listed() {
    let scene = Scene::new();
    let object = scene.write_sealed("a.cmke", b"orders data");
    let keyring = scene.path("keyring");
    // A stray directory, a key whose `current` is garbage, a key being created (no
    // `current` yet), a stray file, and a symlink posing as a second key.
    std::fs::create_dir(keyring.join("stray")).expect("mkdir");
    scene
        .cmke()
        .args(["key", "create", "other"])
        .assert()
        .success();
    std::fs::write(keyring.join("other/current"), "not a version\n").expect("garbage");
    std::fs::create_dir(keyring.join("halfmade")).expect("mkdir");
    std::fs::write(keyring.join("README"), "hello").expect("write");
    std::os::unix::fs::symlink(keyring.join("orders"), keyring.join("alias")).expect("symlink");

    scene
        .cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .success()
        .stdout("orders data");
    scene.cmke().arg("verify").arg(&object).assert().success();
    scene
        .cmke()
        .args(["key", "list"])
        .assert()
        .success()
        .stdout(
            contains("orders")
                .and(contains("local:orders/"))
                .and(contains("alias"))
                .and(contains("symlink"))
                .and(contains("other"))
                .and(contains("does not name a version"))
                .and(contains("halfmade"))
                .and(contains("BROKEN"))
                .and(contains("local:alias").not()),
        );
    // A broken key fails only when it is used.
    scene
        .cmke()
        .args(["encrypt", "--key", "other", "a.cmke"])
        .assert()
        .code(3)
        .stderr(contains("does not name a version"));
}

#[test]
fn verify_verifies_or_fails() {
    let scene = Scene::new();
    let good = scene.write_sealed("tree/good.cmke", b"fine");
    // A header alone: proves nothing without its body.
    let sealed = scene
        .runtime
        .block_on(scene.envelope.seal_detached(b"split", b""))
        .expect("seal");
    let headers = scene.path("headers");
    std::fs::create_dir_all(&headers).expect("mkdir");
    std::fs::write(headers.join("split.cmkh"), &sealed.header).expect("header");
    scene
        .cmke()
        .arg("verify")
        .arg(&headers)
        .assert()
        .code(2)
        .stderr(
            contains("split.cmkh: a header without its body")
                .and(contains("--detached"))
                .and(contains("0 verified, 1 failed")),
        );
    // Headers kept apart, said so, with the body missing: unverifiable.
    scene
        .cmke()
        .args(["verify", "--detached", "--body-ext", "body"])
        .arg(&headers)
        .assert()
        .failure()
        .stderr(contains("split.body").and(contains("not there to verify")));
    // With the body beside it: verified with it, and the body is not a failure of its own.
    std::fs::write(headers.join("split.body"), &sealed.body).expect("body");
    scene
        .cmke()
        .args(["verify", "--detached", "--body-ext", "body"])
        .arg(&headers)
        .assert()
        .success()
        .stdout(contains("split.cmkh: ok").and(contains("split.body: body of a detached header")))
        .stderr(contains("1 verified").and(contains(" 0 failed")));
    // A tampered body is found out.
    let mut body = sealed.body.clone();
    if let Some(last) = body.last_mut() {
        *last ^= 1;
    }
    std::fs::write(headers.join("split.body"), &body).expect("body");
    scene
        .cmke()
        .args(["verify", "--detached", "--body-ext", "body"])
        .arg(&headers)
        .assert()
        .code(2)
        .stderr(contains("decryption failed"));

    // Symlinks named on the command line are followed; those inside a tree are listed.
    let links = scene.path("links");
    std::fs::create_dir_all(&links).expect("mkdir");
    std::os::unix::fs::symlink(&good, links.join("to-file.cmke")).expect("symlink");
    std::os::unix::fs::symlink(scene.path("tree"), scene.path("to-dir")).expect("symlink");
    for named in [links.join("to-file.cmke"), scene.path("to-dir")] {
        scene
            .cmke()
            .arg("verify")
            .arg(named)
            .assert()
            .success()
            .stderr(contains("1 verified, 0 failed"));
    }
    scene
        .cmke()
        .arg("verify")
        .arg(&links)
        .assert()
        .code(1)
        .stdout(contains("a symlink inside the tree: skipped"))
        .stderr(contains("0 verified").and(contains("nothing was verified")));
    // Nothing to verify is not a pass.
    let empty = scene.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    scene
        .cmke()
        .arg("verify")
        .arg(&empty)
        .assert()
        .code(1)
        .stderr(contains("nothing was verified"));
}

/// A wrapper whose kid is whatever a planted file would carry; its slot opens nowhere.
struct PlantedKid(String);

#[cmk_envelope::async_trait]
impl KeyWrapper for PlantedKid {
    async fn current_kid(&self) -> cmk_envelope::Result<String> {
        Ok(self.0.clone())
    }
    async fn wrap_key(
        &self,
        _: &cmk_envelope::DataKey,
        _: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::format::KeySlot> {
        Ok(cmk_envelope::format::KeySlot::new(
            self.0.clone(),
            cmk_envelope::format::WrapAlgorithm::RsaOaepSha256,
            vec![7u8; 256],
        )?)
    }
    async fn unwrap_key(
        &self,
        _: &cmk_envelope::format::KeySlot,
        _: cmk_envelope::SlotContext<'_>,
    ) -> cmk_envelope::Result<cmk_envelope::Unwrapped> {
        Ok(cmk_envelope::Unwrapped::NotMine)
    }
    fn key_facts(&self) -> cmk_envelope::KeyFacts<'_> {
        cmk_envelope::KeyFacts::new(cmk_envelope::ProtectionLevel::Software, "planted")
    }
}

#[test]
fn text_from_files_never_reaches_the_terminal_raw() {
    let scene = Scene::new();
    let forged = "local:x\u{1b}[2K\r\u{1b}[32mcmke: all objects current\u{1b}[0m\nmore";
    let envelope = Envelope::builder()
        .seal_with(Arc::new(PlantedKid(forged.to_owned())))
        .build()
        .expect("envelope");
    let sealed = scene
        .runtime
        .block_on(envelope.seal(b"x", b""))
        .expect("seal");
    let dir = scene.path("data");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("evil\u{1b}[1A\n.cmke"), &sealed).expect("write");
    // And a real object at a path like it, stale after a rotation, for `--stale`.
    scene.write_sealed("data/stale\u{1b}[1A\n.cmke", b"y");
    scene.rotate();
    for args in [
        &["inventory", "--stale"][..],
        &["inventory"],
        &["verify"],
        &["rewrap"],
    ] {
        let out = scene.cmke().args(args).arg(&dir).output().expect("run");
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.contains(&0x1b) && !bytes.contains(&b'\r'),
                "{args:?} {stream} carries a raw control character: {:?}",
                String::from_utf8_lossy(bytes)
            );
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("more") || l.starts_with(".cmke")),
                "{args:?} {stream}: a file started a line: {text}"
            );
        }
        let all = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            all.contains("\\x1b"),
            "{args:?}: escaped, still visible: {all}"
        );
    }
    // JSON stays exact: serde escapes, and the kid round-trips.
    let out = scene
        .cmke()
        .args(["inventory", "--json"])
        .arg(&dir)
        .output()
        .expect("run");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kids: Vec<&str> = json["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|k| k["versions"].as_array().into_iter().flatten())
        .filter_map(|v| v["kid"].as_str())
        .collect();
    assert!(kids.contains(&forged), "{kids:?}");
}

#[test]
fn rsa_keys_with_another_public_exponent_are_refused() {
    let scene = Scene::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa-2048-e3.pem");
    scene
        .cmke()
        .args(["key", "import", "small-e"])
        .arg(fixture)
        .assert()
        .code(3)
        .stderr(contains("exponent 3").and(contains("65537")));
}
