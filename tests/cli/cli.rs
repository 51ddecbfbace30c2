//! `cmke` driven as an operator would: files, pipes, exit codes, nothing on stdout on failure.
#![cfg(feature = "cli")]

use crate::support;

use assert_cmd::Command;

fn cmke(keyring: &std::path::Path) -> Command {
    let home = keyring.parent().unwrap_or(keyring).join("home");
    support::cmke(&home, keyring)
}

/// A keyring at `{dir}/keys` with key `k`, and `plaintext` sealed under it by `cmke`.
fn keyring_and_sealed(dir: &std::path::Path, plaintext: &str) -> (std::path::PathBuf, Vec<u8>) {
    let ring = dir.join("keys");
    cmke(&ring).args(["key", "create", "k"]).assert().success();
    let sealed = cmke(&ring)
        .args(["encrypt", "--key", "k", "-"])
        .write_stdin(plaintext.to_owned())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    (ring, sealed)
}

#[test]
fn encrypt_rotate_decrypt_rewrap_inspect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keys");
    let plain = dir.path().join("a.txt");
    let sealed = dir.path().join("a.cmke");
    std::fs::write(&plain, b"quarterly numbers").expect("write");

    cmke(&ring)
        .args(["key", "create", "orders"])
        .assert()
        .success();
    cmke(&ring)
        .args(["encrypt", "--key", "orders", "--aad", "t=1", "-o"])
        .arg(&sealed)
        .arg(&plain)
        .assert()
        .success()
        .stdout("");
    cmke(&ring)
        .args(["decrypt", "--aad", "t=1"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout("quarterly numbers");

    // Wrong associated data: exit 2, nothing on stdout.
    cmke(&ring)
        .args(["decrypt", "--aad", "t=2"])
        .arg(&sealed)
        .assert()
        .code(2)
        .stdout("");

    cmke(&ring)
        .args(["key", "rotate", "orders"])
        .assert()
        .success();
    cmke(&ring)
        .args(["decrypt", "--aad", "t=1"])
        .arg(&sealed)
        .assert()
        .success()
        .stdout("quarterly numbers")
        .stderr(predicates::str::contains("old key version"));
    let before = std::fs::read(&sealed).expect("read");
    cmke(&ring)
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(predicates::str::contains("re-wrapped"));
    let after = std::fs::read(&sealed).expect("read");
    // Same body bytes at the end, same preamble at the start.
    assert_eq!(&before[before.len() - 33..], &after[after.len() - 33..]);
    assert_eq!(&before[..74], &after[..74]);
    cmke(&ring)
        .arg("rewrap")
        .arg(&sealed)
        .assert()
        .success()
        .stdout(predicates::str::contains("already current"));

    let out = cmke(&ring).arg("inspect").arg(&sealed).assert().success();
    let info: serde_json::Value =
        serde_json::from_slice(&out.get_output().stdout).expect("inspect prints JSON");
    assert_eq!(info["slots"][0]["algorithm"], "RSA-OAEP-256");
    assert_eq!(info["body"]["plaintext_len"], 17);
}

#[test]
fn pipes_and_exit_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ring, sealed) = keyring_and_sealed(dir.path(), "from a pipe");
    cmke(&ring)
        .args(["decrypt", "-"])
        .write_stdin(sealed.clone())
        .assert()
        .success()
        .stdout("from a pipe");

    // Malformed: 2. Missing keyring or unknown key: 3. Usage: 1.
    cmke(&ring)
        .arg("decrypt")
        .write_stdin("not an envelope")
        .assert()
        .code(2)
        .stdout("");
    cmke(&dir.path().join("nowhere"))
        .arg("decrypt")
        .write_stdin(sealed)
        .assert()
        .code(3)
        .stdout("");
    cmke(&ring)
        .args(["encrypt", "--key", "ghost", "-"])
        .write_stdin("x")
        .assert()
        .code(3)
        .stdout("");
    cmke(&ring).arg("--no-such-flag").assert().code(1);
    cmke(&ring).arg("--help").assert().success();
    cmke(&ring)
        .args(["key", "import", "small"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/rsa-1024.pem"
        ))
        .assert()
        .code(3)
        .stderr(predicates::str::contains("RSA-1024"));
}

#[test]
fn failed_decrypt_to_a_file_leaves_no_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ring, mut sealed) = keyring_and_sealed(dir.path(), "payload");
    let last = sealed.len() - 1;
    sealed[last] ^= 1;
    let out = dir.path().join("out.txt");
    cmke(&ring)
        .args(["decrypt", "-o"])
        .arg(&out)
        .write_stdin(sealed)
        .assert()
        .code(2);
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        1,
        "no temp files"
    );
}

/// `-o /dev/null` once renamed a regular file over the device. Checked through a symlink
/// to `/dev/null` and a FIFO in a temporary directory, so that a regression replaces only
/// those, never the machine's `/dev/null`.
#[cfg(unix)]
#[test]
fn output_to_a_device_or_fifo_is_written_in_place_not_replaced() {
    use std::os::unix::fs::FileTypeExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keys");
    cmke(&ring).args(["key", "create", "k"]).assert().success();
    let plaintext = vec![0x5a_u8; 300_000];
    let sealed = cmke(&ring)
        .args(["encrypt", "--key", "k", "-"])
        .write_stdin(plaintext.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();

    let null_link = dir.path().join("null");
    std::os::unix::fs::symlink("/dev/null", &null_link).expect("symlink");
    cmke(&ring)
        .args(["decrypt", "-o"])
        .arg(&null_link)
        .write_stdin(sealed.clone())
        .assert()
        .success();
    let link = std::fs::symlink_metadata(&null_link).expect("link");
    assert!(link.file_type().is_symlink(), "the link was replaced");
    let target = std::fs::metadata(&null_link).expect("target");
    assert!(target.file_type().is_char_device());

    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).expect("read fifo"))
    };
    cmke(&ring)
        .args(["decrypt", "-o"])
        .arg(&fifo)
        .write_stdin(sealed)
        .assert()
        .success();
    assert!(reader.join().expect("reader") == plaintext);
    let kind = std::fs::symlink_metadata(&fifo).expect("fifo").file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced");
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        3,
        "no temp files"
    );
}

#[test]
fn decrypt_a_range_and_stream_through_pipes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keys");
    cmke(&ring).args(["key", "create", "k"]).assert().success();
    let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let input = dir.path().join("in.bin");
    let sealed = dir.path().join("in.cmke");
    std::fs::write(&input, &plain).expect("write");
    cmke(&ring)
        .args(["encrypt", "--key", "k", "--segment-size", "4096", "-o"])
        .arg(&sealed)
        .arg(&input)
        .assert()
        .success();
    for (a, b) in [
        (0usize, 1usize),
        (4095, 4097),
        (100_000, 200_000),
        (299_999, 300_000),
        (7, 7),
    ] {
        cmke(&ring)
            .args(["decrypt", "--range", &format!("{a}..{b}")])
            .arg(&sealed)
            .assert()
            .success()
            .stdout(predicates::ord::eq(plain[a..b].to_vec()));
    }
    cmke(&ring)
        .args(["decrypt", "--range", "0..300001"])
        .arg(&sealed)
        .assert()
        .code(1)
        .stdout("");
    cmke(&ring)
        .args(["decrypt", "--range", "5..4", "-"])
        .assert()
        .code(1);
    cmke(&ring)
        .args(["decrypt", "--range", "0..4", "-"])
        .write_stdin(std::fs::read(&sealed).expect("read"))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("give a file"));
    // Whole-file streaming through a pipe.
    cmke(&ring)
        .args(["decrypt", "-"])
        .write_stdin(std::fs::read(&sealed).expect("read"))
        .assert()
        .success()
        .stdout(predicates::ord::eq(plain.clone()));
}

/// Runs `cmke` under `script`, which gives it a pseudo-terminal, and returns what the
/// terminal showed.
fn on_a_terminal(args: &[&std::path::Path]) -> String {
    let quoted: Vec<String> = std::iter::once(assert_cmd::cargo::cargo_bin("cmke").as_path())
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.display()))
        .collect();
    // `script` is in util-linux (Debian's essential bsdutils), so it is always there.
    let shown = std::process::Command::new("script")
        .args(["-qec", &quoted.join(" "), "/dev/null"])
        .output()
        .expect("`script` (util-linux) runs cmke on a pseudo-terminal");
    assert!(shown.status.success(), "{shown:?}");
    String::from_utf8_lossy(&shown.stdout).into_owned()
}

#[test]
fn progress_bar_on_a_terminal_for_large_inputs_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keys");
    cmke(&ring)
        .args(["key", "create", "bulk"])
        .assert()
        .success();
    let (big, small) = (dir.path().join("big"), dir.path().join("small"));
    std::fs::write(&big, vec![7u8; 12 << 20]).expect("write");
    std::fs::write(&small, vec![7u8; 1 << 20]).expect("write");
    let path = std::path::Path::new;
    let (keyring, sealed, opened) = (
        ring.as_path(),
        dir.path().join("big.cmke"),
        dir.path().join("big.out"),
    );

    let shown = on_a_terminal(&[
        path("--keyring"),
        keyring,
        path("encrypt"),
        path("--key"),
        path("bulk"),
        path("-o"),
        &sealed,
        &big,
    ]);
    assert!(shown.contains("MiB/12.00 MiB"), "encrypt showed {shown:?}");
    let shown = on_a_terminal(&[
        path("--keyring"),
        keyring,
        path("decrypt"),
        path("-o"),
        &opened,
        &sealed,
    ]);
    assert!(shown.contains("MiB/12."), "decrypt showed {shown:?}");
    assert!(std::fs::read(&opened).expect("opened") == std::fs::read(&big).expect("big"));

    // Small inputs, and stderr that is not a terminal: no bar.
    let shown = on_a_terminal(&[
        path("--keyring"),
        keyring,
        path("encrypt"),
        path("--key"),
        path("bulk"),
        path("-o"),
        &dir.path().join("small.cmke"),
        &small,
    ]);
    assert!(!shown.contains("MiB"), "small input showed {shown:?}");
    cmke(&ring)
        .args(["encrypt", "--key", "bulk", "-o"])
        .arg(dir.path().join("again.cmke"))
        .arg(&big)
        .assert()
        .success()
        .stderr("");
}

/// `cmke inspect` on files an attacker wrote: every one ends promptly with a clean error
/// (exit 2, nothing on stdout, one short line on stderr) or a correct description, and a
/// huge sparse file is described from its header alone.
#[test]
fn inspect_survives_hostile_files() {
    use cmk_envelope::format::{Header, MAGIC};
    use cmk_envelope::format::{KeySlot, WrapAlgorithm};

    let dir = tempfile::tempdir().expect("tempdir");
    let (ring, sealed) = keyring_and_sealed(dir.path(), "payload");
    let (header, header_len) = Header::parse_prefix(&sealed).expect("header");
    let slot = KeySlot::new(
        "k".repeat(1024),
        WrapAlgorithm::RsaOaepSha256,
        vec![1; 1024],
    )
    .expect("slot");
    let maximal = header.with_slots(vec![slot; 8]).expect("slots").to_bytes();

    let mut garbage = MAGIC.to_vec();
    garbage.extend((0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let mut length_claims_max = sealed[..header_len].to_vec();
    // The first slot's kid length, raised to the most two bytes can say.
    length_claims_max[75] = 0xff;
    length_claims_max[76] = 0xff;
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("magic only", MAGIC.to_vec()),
        ("garbage", garbage),
        ("header cut mid-slot", sealed[..header_len - 40].to_vec()),
        ("maximal header cut", maximal[..maximal.len() - 1].to_vec()),
        ("kid length 65535", length_claims_max),
    ];
    for (name, bytes) in &hostile {
        let path = dir.path().join("hostile.cmke");
        std::fs::write(&path, bytes).expect("write");
        for from_stdin in [false, true] {
            let mut cmd = cmke(&ring);
            cmd.arg("inspect")
                .timeout(std::time::Duration::from_secs(30));
            if from_stdin {
                cmd.arg("-").write_stdin(bytes.clone());
            } else {
                cmd.arg(&path);
            }
            let out = cmd.assert().code(2).stdout("").get_output().clone();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.starts_with("cmke: ") && stderr.len() < 400 && !stderr.contains("panick"),
                "{name} (stdin: {from_stdin}): {stderr}"
            );
        }
    }

    // A header alone (as `rewrap` and header stores keep them) is described, body null.
    let header_only = dir.path().join("header.cmke");
    std::fs::write(&header_only, &sealed[..header_len]).expect("write");
    for from_stdin in [false, true] {
        let mut cmd = cmke(&ring);
        cmd.arg("inspect");
        if from_stdin {
            cmd.arg("-").write_stdin(sealed[..header_len].to_vec());
        } else {
            cmd.arg(&header_only);
        }
        let out = cmd.assert().success().get_output().stdout.clone();
        let json: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert!(json["body"].is_null(), "{json}");
    }

    // A 16 GiB sparse file behind a valid header: described from the header, at once.
    let sparse = dir.path().join("sparse.cmke");
    std::fs::write(&sparse, &sealed).expect("write");
    let len = 16u64 << 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .and_then(|f| f.set_len(len))
        .expect("extend");
    let out = cmke(&ring)
        .arg("inspect")
        .arg(&sparse)
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let text = json.to_string();
    assert!(
        text.contains(&(len - header_len as u64).to_string()),
        "{text}"
    );

    // Not a file at all.
    cmke(&ring)
        .arg("inspect")
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout("");
}

/// A command line to fix is a usage error of `cmke`'s own: it says `usage:`, how to fix
/// it, touches nothing, and exits 1; the library's errors keep their own words and codes.
#[test]
fn a_usage_error_says_usage_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ring, sealed) = keyring_and_sealed(dir.path(), "numbers");
    let out = cmke(&ring)
        .args(["decrypt", "--range", "0..3", "-"])
        .write_stdin(sealed.clone())
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("cmke: usage: --range reads only the segments it needs"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Not a usage error: a tampered envelope is still bad input (exit 2).
    let mut tampered = sealed;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let out = cmke(&ring)
        .args(["decrypt", "-"])
        .write_stdin(tampered)
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("usage:"));
}

#[test]
fn stats_show_the_key_service_calls_of_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (keyring, sealed) = keyring_and_sealed(dir.path(), "counted");
    let file = dir.path().join("s.cmke");
    std::fs::write(&file, &sealed).expect("write");
    let out = cmke(&keyring)
        .args(["--stats", "decrypt"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"counted", "stdout stays the plaintext");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cmke_key_service_calls_total backend=software key=local:k operation=unwrap outcome=ok 1"),
        "{stderr}"
    );
    // With `inventory --json`, one JSON object; no call is made to count headers.
    let out = cmke(&keyring)
        .args(["--stats", "inventory", "--json"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success());
    let stats: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("stats as JSON on stderr");
    assert!(stats["stats"].is_array(), "{stats}");
    // Without --stats, nothing is printed.
    let out = cmke(&keyring)
        .arg("decrypt")
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn encrypt_with_also_key_seals_one_slot_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keys");
    for name in ["east", "west"] {
        cmke(&ring).args(["key", "create", name]).assert().success();
    }
    let sealed = cmke(&ring)
        .args(["encrypt", "--key", "east", "--also-key", "west", "-"])
        .write_stdin("two regions")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let info = cmk_envelope::inspect::inspect(&sealed).expect("inspect");
    let kids: Vec<&str> = info.slots.iter().map(|s| s.kid.as_str()).collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids[0].starts_with("local:east/") && kids[1].starts_with("local:west/"));
    cmke(&ring)
        .args(["decrypt", "-"])
        .write_stdin(sealed)
        .assert()
        .success()
        .stdout("two regions");

    // A second key that does not exist: nothing is written.
    let out = dir.path().join("never.cmke");
    cmke(&ring)
        .args(["encrypt", "--key", "east", "--also-key", "ghost", "-o"])
        .arg(&out)
        .arg("-")
        .write_stdin("x")
        .assert()
        .failure()
        .stdout("");
    assert!(!out.exists());
}

#[test]
fn cmke_log_prints_a_span_per_file_with_its_key_service_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ring, sealed) = keyring_and_sealed(dir.path(), "PLAINTEXT-MARKER-51c2");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for name in ["a.cmke", "b.cmke"] {
        std::fs::write(data.join(name), &sealed).expect("write");
    }
    cmke(&ring).args(["key", "rotate", "k"]).assert().success();
    let output = cmke(&ring)
        .env("CMKE_LOG", "info")
        .arg("rewrap")
        .arg(&data)
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["a.cmke", "b.cmke"] {
        let closed = stderr.lines().find(|l| {
            l.contains("cmke.file{path=")
                && l.contains(name)
                && l.contains("outcome=\"rewrapped\"")
                && l.contains("close")
        });
        assert!(closed.is_some(), "no closed span of {name}:\n{stderr}");
        assert!(
            stderr.lines().any(|l| l.contains(name)
                && l.contains("cmke.key_service{")
                && l.contains("operation=\"unwrap\"")),
            "no key-service call under {name}:\n{stderr}"
        );
    }
    assert!(!stderr.contains("PLAINTEXT-MARKER-51c2"), "{stderr}");

    // Not a level: a usage error, before anything is done.
    cmke(&ring)
        .env("CMKE_LOG", "loud")
        .arg("inventory")
        .arg(&data)
        .assert()
        .failure()
        .stdout("")
        .stderr(predicates::str::contains("CMKE_LOG=loud: not a level"));
    // Unset: nothing of it.
    let quiet = cmke(&ring)
        .env_remove("CMKE_LOG")
        .arg("verify")
        .arg(&data)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("cmke.file"));
}
