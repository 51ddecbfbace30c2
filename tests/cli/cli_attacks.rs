//! The attacks of issue 23 against `cmke`, each by name: weakened branch stores with a
//! planted record, files swapped between check and use, secrets others can read, one bad
//! record or directory stopping everything, unbounded reads, memory across jobs, and what
//! reaches a terminal or a log.
#![cfg(all(feature = "cli", feature = "aws-lc", unix))]

use crate::support;
use support::branch_site::Site;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cmk_envelope::format::{Header, KeySlot};
use predicates::prelude::*;
use predicates::str::contains;

/// `name` sealed under `key` as `data/{name}.cmke`, its plaintext its own name.
fn encrypt(site: &Site, key: &str, name: &str) -> PathBuf {
    site.encrypt(key, name, name.as_bytes())
}

/// `file` opens to its own name.
fn decrypts(site: &Site, file: &Path) {
    let name = file.file_stem().and_then(|s| s.to_str()).expect("stem");
    site.decrypts_to(file, name.as_bytes());
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A record made by someone who can write the store: a branch key they know, wrapped under
/// the victim's CMK (which needs only its public key). Returns its version.
fn plant_record(site: &Site, into: &Path) -> String {
    let attacker = tempfile::tempdir().expect("tempdir");
    let store = attacker.path().join("branches");
    support::cmke(site.dir.path(), &site.path("keyring"))
        .arg("--branch-store")
        .arg(&store)
        .args(["branch", "create", "orders", "--cmk", "cmk"])
        .assert()
        .success();
    let version = std::fs::read_to_string(store.join("orders/current"))
        .expect("current")
        .trim()
        .to_owned();
    std::fs::create_dir_all(into).expect("mkdir");
    std::fs::copy(
        store.join(format!("orders/{version}.cmke")),
        into.join(format!("{version}.cmke")),
    )
    .expect("copy record");
    version
}

/// `encrypt --key branch:orders` is refused and writes nothing.
fn sealing_is_refused(site: &Site, why: &str) {
    let input = site.path("secret.plain");
    std::fs::write(&input, "new data").expect("plain");
    let output = site.path("data/new.cmke");
    site.cmke()
        .args(["encrypt", "--key", "branch:orders", "-o"])
        .arg(&output)
        .arg(&input)
        .assert()
        .failure()
        .stderr(contains("refusing").and(contains(why)));
    assert!(!output.exists(), "nothing may be sealed");
}

#[test]
fn a_planted_record_with_a_moved_current_is_refused_in_every_weakened_store_path() {
    type Weaken = fn(&Site, &str);
    let cases: [(&str, Weaken, &str); 7] = [
        (
            "group-writable key directory",
            |site, _| {
                set_mode(&site.path("branches/orders"), 0o770);
            },
            "writable by its group",
        ),
        (
            "world-writable key directory",
            |site, _| {
                set_mode(&site.path("branches/orders"), 0o777);
            },
            "and everyone",
        ),
        (
            "key directory is a symlink",
            |site, _| {
                let real = site.path("elsewhere");
                std::fs::rename(site.path("branches/orders"), &real).expect("move");
                std::os::unix::fs::symlink(&real, site.path("branches/orders")).expect("link");
            },
            "symlink",
        ),
        (
            "current is a symlink",
            |site, version| {
                let evil = site.path("evil-current");
                std::fs::write(&evil, format!("{version}\n")).expect("write");
                let current = site.path("branches/orders/current");
                std::fs::remove_file(&current).expect("rm");
                std::os::unix::fs::symlink(&evil, &current).expect("link");
            },
            "symlink",
        ),
        (
            "current is a hard link",
            |site, version| {
                let evil = site.path("evil-current");
                std::fs::write(&evil, format!("{version}\n")).expect("write");
                let current = site.path("branches/orders/current");
                std::fs::remove_file(&current).expect("rm");
                std::fs::hard_link(&evil, &current).expect("link");
            },
            "hard links",
        ),
        (
            "record is a symlink",
            |site, version| {
                let record = site.path(&format!("branches/orders/{version}.cmke"));
                let evil = site.path("evil-record");
                std::fs::rename(&record, &evil).expect("move");
                std::os::unix::fs::symlink(&evil, &record).expect("link");
                move_current(site, version);
            },
            "symlink",
        ),
        (
            "record is a hard link",
            |site, version| {
                let record = site.path(&format!("branches/orders/{version}.cmke"));
                std::fs::hard_link(&record, site.path("evil-record")).expect("link");
                move_current(site, version);
            },
            "hard links",
        ),
    ];
    fn move_current(site: &Site, version: &str) {
        std::fs::write(site.path("branches/orders/current"), format!("{version}\n"))
            .expect("move current");
    }
    for (attack, weaken, why) in cases {
        let site = Site::new();
        let version = plant_record(&site, &site.path("branches/orders"));
        if !attack.starts_with("record") && !attack.starts_with("current") {
            move_current(&site, &version);
        }
        weaken(&site, &version);
        eprintln!("attack: {attack}");
        sealing_is_refused(&site, why);
    }
    // The store itself owned by someone else: only root can make that.
    if rustix::process::geteuid().is_root() {
        let site = Site::new();
        let version = plant_record(&site, &site.path("branches/orders"));
        move_current(&site, &version);
        std::os::unix::fs::chown(site.path("branches/orders"), Some(4242), None).expect("chown");
        sealing_is_refused(&site, "uid 4242");
    }
}

#[test]
fn a_dangling_lock_symlink_makes_branch_rotate_create_nothing() {
    let site = Site::new();
    let target = site.path("created-through-the-lock");
    let _ = std::fs::remove_file(site.path("branches/orders/.lock"));
    std::os::unix::fs::symlink(&target, site.path("branches/orders/.lock")).expect("link");
    site.cmke()
        .args(["branch", "rotate", "orders"])
        .assert()
        .failure()
        .stderr(contains("symlink"));
    assert!(!target.exists());
}

/// Runs `tries` attempts while another thread swaps `path` between `good` and `evil`;
/// returns how many attempts' stderr shows the evil file was used.
fn race(
    path: &Path,
    good: &[u8],
    evil: &[u8],
    tries: usize,
    attempt: impl Fn() -> String,
) -> usize {
    let dir = path.parent().expect("parent").to_path_buf();
    let (good_file, evil_file) = (dir.join("good"), dir.join("evil"));
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, path) = (Arc::clone(&stop), path.to_path_buf());
        let (good, evil) = (good.to_vec(), evil.to_vec());
        let (good_file, evil_file) = (good_file.clone(), evil_file.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (file, bytes) in [(&good_file, &good), (&evil_file, &evil)] {
                    let _ = std::fs::write(file, bytes);
                    let _ = std::fs::rename(file, &path);
                }
            }
        })
    };
    let wins = (0..tries).filter(|_| attempt().contains("EVIL")).count();
    stop.store(true, Ordering::Relaxed);
    swapper.join().expect("swapper");
    wins
}

#[test]
fn a_config_swapped_between_check_and_use_is_never_read() {
    let home = tempfile::tempdir().expect("tempdir");
    // Anyone may write here: the attacker swaps their file in after the check.
    let shared = home.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    set_mode(&shared, 0o777);
    let config = shared.join("cmke.toml");
    let wins = race(&config, b"jobs = 2\n", b"EVIL_was_read = 1\n", 200, || {
        let out = support::cmke(home.path(), &home.path().join("keyring"))
            .arg("--config")
            .arg(&config)
            .args(["key", "list"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() || stderr.is_empty(), "{stderr}");
        stderr
    });
    assert_eq!(wins, 0, "the attacker's configuration was read");
    // And the refusal says why and how to fix it.
    support::cmke(home.path(), &home.path().join("keyring"))
        .arg("--config")
        .arg(&config)
        .args(["key", "list"])
        .assert()
        .code(1)
        .stderr(contains("writable by").and(contains("chmod go-w")));
}

#[cfg(feature = "pkcs11")]
#[test]
fn a_pkcs11_module_swapped_between_check_and_load_never_runs() {
    let home = tempfile::tempdir().expect("tempdir");
    let shared = home.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    set_mode(&shared, 0o777);
    let module = shared.join("module.so");
    let real = std::fs::read(support::softhsm::module()).expect("softhsm module");
    // The attacker's "module": whatever it is, loading it is the win; it is not an ELF
    // file, so dlopen names it in its error ("EVIL" is in its path).
    let wins = race(&module, &real, b"EVIL", 200, || {
        let out = support::cmke(home.path(), &home.path().join("keyring"))
            .env("CMKE_PKCS11_MODULE", &module)
            .env("CMKE_PKCS11_PIN", "1234")
            .args(["key", "create", "pkcs11:token=none;object=x"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("refusing"), "{stderr}");
        if stderr.contains("cannot load") {
            "EVIL".to_owned()
        } else {
            stderr
        }
    });
    assert_eq!(
        wins, 0,
        "a module was loaded from a directory others can write"
    );
}

#[test]
fn key_files_others_can_read_are_refused_like_ssh_keys() {
    let site = Site::new();
    let object = encrypt(&site, "cmk", "plainly");
    let key_dir = site.path("keyring/cmk");
    let pem = std::fs::read_dir(&key_dir)
        .expect("key dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pem"))
        .expect("a key file");
    set_mode(&pem, 0o644);
    site.cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .failure()
        .stderr(contains("readable by other users").and(contains("chmod go-rwx")));
    set_mode(&pem, 0o600);
    decrypts(&site, &object);
}

#[test]
fn a_damaged_current_or_another_versions_bad_record_affects_only_sealing() {
    let site = Site::new();
    let v1 = site.current_version();
    let first = encrypt(&site, "branch:orders", "first");
    site.cmke()
        .args(["branch", "rotate", "orders"])
        .assert()
        .success();
    let v2 = site.current_version();
    let second = encrypt(&site, "branch:orders", "second");
    let current = site.path("branches/orders/current");

    // `current` names a version that has no record.
    std::fs::write(&current, "0123456789abcdef0123456789abcdef\n").expect("write");
    decrypts(&site, &first);
    decrypts(&site, &second);
    site.cmke()
        .args(["encrypt", "--key", "branch:orders"])
        .arg(site.path("first.plain"))
        .assert()
        .failure()
        .stderr(contains("0123456789abcdef0123456789abcdef"));

    // `current` is garbage.
    std::fs::write(&current, "not a version").expect("write");
    decrypts(&site, &first);
    decrypts(&site, &second);

    // The current version's record is truncated: objects under v1 still open.
    std::fs::write(&current, format!("{v2}\n")).expect("write");
    let record = site.path(&format!("branches/orders/{v2}.cmke"));
    let bytes = std::fs::read(&record).expect("record");
    std::fs::write(&record, &bytes[..bytes.len() / 2]).expect("truncate");
    decrypts(&site, &first);
    site.cmke().arg("decrypt").arg(&second).assert().failure();
    assert!(v1 != v2);
}

#[test]
fn objects_stay_openable_after_branch_rotate_to_another_cmk() {
    let site = Site::new();
    let first = encrypt(&site, "branch:orders", "first");
    site.cmke()
        .args(["key", "create", "cmk2"])
        .assert()
        .success();
    site.cmke()
        .args(["branch", "rotate", "orders", "--cmk", "cmk2"])
        .assert()
        .success();
    let second = encrypt(&site, "branch:orders", "second");
    decrypts(&site, &first);
    decrypts(&site, &second);
    site.cmke()
        .arg("verify")
        .arg(site.path("data"))
        .assert()
        .success();
}

#[test]
fn unbounded_store_entries_cost_nothing_dev_zero_huge_records_and_fifos() {
    let site = Site::new();
    let version = site.current_version();
    let object = encrypt(&site, "branch:orders", "bounded");
    let record = site.path(&format!("branches/orders/{version}.cmke"));
    let saved = std::fs::read(&record).expect("record");

    std::fs::remove_file(&record).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &record).expect("link");
    site.cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .failure()
        .stderr(contains("symlink"));

    std::fs::remove_file(&record).expect("rm");
    let huge = std::fs::File::create(&record).expect("create");
    huge.set_len(300 << 20).expect("sparse 300 MiB");
    set_mode(&record, 0o600);
    site.cmke()
        .arg("decrypt")
        .arg(&object)
        .assert()
        .failure()
        .stderr(contains("larger than"));

    std::fs::write(&record, &saved).expect("restore");
    let current = site.path("branches/orders/current");
    std::fs::remove_file(&current).expect("rm");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        current.as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    // Would hang forever if `current` were opened for reading as it is.
    site.cmke()
        .args(["encrypt", "--key", "branch:orders"])
        .arg(site.path("bounded.plain"))
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .failure()
        .stderr(contains("FIFO"));
    decrypts(&site, &object);
}

/// The peak RSS of a command, polled from `/proc` while it runs (`VmHWM` only grows).
fn peak_rss_mib(mut command: std::process::Command) -> (u64, std::process::ExitStatus) {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(exit) = child.try_wait().expect("wait") {
            return (peak_kib / 1024, exit);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn sixteen_sparse_files_declaring_64_mib_segments_stay_within_the_memory_budget() {
    let site = Site::new();
    let plain = site.path("tiny.plain");
    std::fs::write(&plain, "x").expect("plain");
    let seed = site.path("seed.cmke");
    site.cmke()
        .args([
            "encrypt",
            "--key",
            "cmk",
            "--segment-size",
            "67108864",
            "-o",
        ])
        .arg(&seed)
        .arg(&plain)
        .assert()
        .success();
    for i in 0..16 {
        let file = site.path(&format!("data/f{i}.cmke"));
        std::fs::copy(&seed, &file).expect("copy");
        // 200 MiB that take no disk: three 64 MiB segments of zeros.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(200 << 20))
            .expect("sparse");
    }
    let mut verify = std::process::Command::new(assert_cmd::cargo::cargo_bin("cmke"));
    verify
        .env("HOME", site.dir.path())
        .env_remove("CMKE_CONFIG")
        .arg("--keyring")
        .arg(site.path("keyring"))
        .args(["verify", "-q"])
        .arg(site.path("data"));
    let (peak, status) = peak_rss_mib(verify);
    eprintln!("verify of 16 sparse files with 64 MiB segments: peak RSS {peak} MiB");
    assert_eq!(status.code(), Some(2), "every file fails authentication");
    assert!(peak <= 512, "peak RSS {peak} MiB with the default budget");

    // A budget smaller than one file's segments: each fails alone, with the reason.
    site.cmke()
        .args(["verify", "-q", "--max-memory", "64MiB"])
        .arg(site.path("data"))
        .assert()
        .code(1)
        .stderr(contains("more than the whole --max-memory budget").count(16));
}

/// A directory whose path is longer than PATH_MAX, made by descriptors (no path could).
fn too_deep_tree(root: &Path) {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let mut dir = openat(
        rustix::fs::CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .expect("open root");
    let name = "d".repeat(200);
    for _ in 0..24 {
        mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o700)).expect("mkdirat");
        dir = openat(
            &dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .expect("openat");
    }
    let file = openat(
        &dir,
        "lost.cmke",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o600),
    )
    .expect("create deep file");
    drop(file);
}

#[test]
fn one_too_deep_or_unreadable_directory_is_one_failure_and_the_rest_is_processed() {
    let site = Site::new();
    let fine = encrypt(&site, "cmk", "fine");
    too_deep_tree(&site.path("data"));
    let unreadable = site.path("data/closed");
    let as_user = !rustix::process::geteuid().is_root();
    if as_user {
        // Root reads any directory; for everyone else mode 000 closes it.
        std::fs::create_dir(&unreadable).expect("mkdir");
        set_mode(&unreadable, 0o000);
    }
    site.cmke()
        .args(["verify"])
        .arg(site.path("data"))
        .assert()
        .code(1)
        .stdout(contains("fine.cmke"))
        .stderr(contains("too deep"));
    site.cmke()
        .args(["inventory"])
        .arg(site.path("data"))
        .assert()
        .code(1)
        .stdout(contains("1 objects").and(contains("not walked")));
    site.cmke()
        .args(["key", "rotate", "cmk"])
        .assert()
        .success();
    site.cmke()
        .args(["rewrap"])
        .arg(site.path("data"))
        .assert()
        .code(1)
        .stderr(contains("1 re-wrapped"));
    decrypts(&site, &fine);
    if as_user {
        set_mode(&unreadable, 0o700);
    }
}

#[test]
fn branch_list_escapes_record_kids_and_no_message_echoes_a_sas_or_a_password() {
    let site = Site::new();
    let version = site.current_version();
    let record = site.path(&format!("branches/orders/{version}.cmke"));
    let bytes = std::fs::read(&record).expect("record");
    let (header, len) = Header::parse_prefix(&bytes).expect("header");
    let slot = &header.slots()[0];
    let forged = KeySlot::new(
        "local:\u{1b}[2Jcmk\r\n\u{202e}/x".to_owned(),
        slot.algorithm(),
        slot.wrapped().to_vec(),
    )
    .expect("slot");
    let mut forged_record = header.with_slots(vec![forged]).expect("header").to_bytes();
    forged_record.extend_from_slice(&bytes[len..]);
    std::fs::write(&record, forged_record).expect("write");
    let out = site.cmke().args(["branch", "list"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r') && !stdout.contains('\u{202e}'),
        "{stdout}"
    );
    assert!(stdout.contains("\\x1b[2J"), "{stdout}");

    for url in [
        "https://acct.blob.core.windows.net/branches?sv=2024&sig=SECRETSIG",
        "https://user:SECRETPW@acct.blob.core.windows.net/branches",
        "ftp://user:SECRETPW@host/x?sig=SECRETSIG",
    ] {
        let out = support::cmke(site.dir.path(), &site.path("keyring"))
            .arg("--branch-store")
            .arg(url)
            .args(["branch", "list"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            !stderr.contains("SECRETSIG") && !stderr.contains("SECRETPW"),
            "{stderr}"
        );
    }
}

#[test]
fn temporary_files_of_a_killed_branch_or_key_write_are_removed_by_the_next_one() {
    let site = Site::new();
    // pid 4194304 is above the kernel's largest pid: a process that is surely gone.
    let branch_temp = site.path("branches/orders/.current.cmke-tmp-4194304-1f-0");
    let key_temp = site.path("keyring/cmk/.current.cmke-tmp-4194304-2a-1");
    let not_ours = site.path("branches/orders/.current.cmke-tmp-notapid");
    for file in [&branch_temp, &key_temp, &not_ours] {
        std::fs::write(file, "").expect("plant");
    }
    site.cmke()
        .args(["branch", "rotate", "orders"])
        .assert()
        .success();
    site.cmke()
        .args(["key", "rotate", "cmk"])
        .assert()
        .success();
    assert!(!branch_temp.exists() && !key_temp.exists());
    assert!(not_ours.exists(), "only provably ours is removed");
}
