//! `cmke rewrap` while an application keeps replacing the objects (a rename of a new
//! version over each, the normal way to update a file): every object afterwards opens to a
//! plaintext that was written to it, and none is lost or mixed with another's body.
#![cfg(all(feature = "cli", feature = "aws-lc"))]

use crate::support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};

const FILES: usize = 300;
const RACES_WANTED: usize = 500;
const MOST_ROUNDS: usize = 20;

fn object(root: &std::path::Path, i: usize) -> PathBuf {
    root.join(format!("d{}", i % 3))
        .join(format!("f{i:03}.cmke"))
}

#[test]
fn objects_replaced_during_a_rewrap_are_never_lost_or_mixed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path().join("keyring")).expect("keyring");
    keyring.create_key("orders").expect("key");
    // The application's key handle keeps sealing under the version it loaded, so that what
    // it writes is stale again and rewrap has work on every round.
    let writer_key: Arc<dyn KeyWrapper> = Arc::new(keyring.key("orders").expect("key"));
    let writer = Arc::new(
        Envelope::builder()
            .seal_with(writer_key)
            .build()
            .expect("envelope"),
    );
    let root = dir.path().join("tree");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let written: Arc<Vec<Mutex<HashSet<Vec<u8>>>>> =
        Arc::new((0..FILES).map(|_| Mutex::new(HashSet::new())).collect());
    for i in 0..FILES {
        let plain = format!("object {i} version 0").into_bytes();
        let path = object(&root, i);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let sealed = runtime.block_on(writer.seal(&plain, b"")).expect("seal");
        std::fs::write(&path, sealed).expect("write");
        written[i].lock().expect("lock").insert(plain);
    }
    keyring.rotate_key("orders").expect("rotate");
    let reader = Envelope::builder()
        .open_with_all(keyring.openers().expect("keyring"))
        .build()
        .expect("envelope");

    let races = Arc::new(AtomicUsize::new(0));
    let mut rounds = 0;
    let mut changed = 0;
    while races.load(Ordering::SeqCst) < RACES_WANTED && rounds < MOST_ROUNDS {
        rounds += 1;
        let (running, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let app = {
            let (writer, written, root, staging) = (
                Arc::clone(&writer),
                Arc::clone(&written),
                root.clone(),
                staging.clone(),
            );
            let (running, stop, races) =
                (Arc::clone(&running), Arc::clone(&stop), Arc::clone(&races));
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                let mut version = 0usize;
                // A different stride each round, so that the replacements land all over.
                let mut i = rounds * 7;
                while !stop.load(Ordering::SeqCst) {
                    version += 1;
                    i = (i + 37) % FILES;
                    let plain = format!("object {i} version {rounds}.{version}").into_bytes();
                    let sealed = runtime.block_on(writer.seal(&plain, b"")).expect("seal");
                    let next = staging.join(format!("{i}.next"));
                    std::fs::write(&next, sealed).expect("stage");
                    written[i].lock().expect("lock").insert(plain);
                    std::fs::rename(&next, object(&root, i)).expect("replace");
                    if running.load(Ordering::SeqCst) {
                        races.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        running.store(true, Ordering::SeqCst);
        let out = support::cmke(&dir.path().join("home"), &dir.path().join("keyring"))
            .args(["rewrap", "--quiet"])
            .arg(&root)
            .timeout(std::time::Duration::from_secs(300))
            .output()
            .expect("rewrap");
        running.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        app.join().expect("application");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // 0, or 1 when some files changed under it and were left as the application made
        // them; never a key or data failure.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "round {rounds}: {:?}\n{stderr}",
            out.status
        );
        for line in stderr.lines().filter(|l| !l.contains("re-wrapped")) {
            assert!(
                line.contains("changed during rewrap"),
                "round {rounds}: {line}"
            );
            changed += 1;
        }
        // Every object opens, to one of the plaintexts written to it.
        for i in 0..FILES {
            let bytes = std::fs::read(object(&root, i)).expect("read");
            let opened = runtime
                .block_on(reader.open(&bytes, b""))
                .unwrap_or_else(|e| panic!("round {rounds}: object {i} does not open: {e}"));
            assert!(
                written[i]
                    .lock()
                    .expect("lock")
                    .contains(opened.plaintext()),
                "round {rounds}: object {i} opened to something never written to it"
            );
        }
    }
    let races = races.load(Ordering::SeqCst);
    eprintln!("{races} replacements during {rounds} rewrap runs; {changed} files reported changed");
    assert!(
        races >= RACES_WANTED,
        "{races} replacements during {rounds} rewrap runs"
    );
    // Quiet again: one more run moves everything, and nothing temporary is left.
    support::cmke(&dir.path().join("home"), &dir.path().join("keyring"))
        .args(["rewrap", "--quiet"])
        .arg(&root)
        .assert()
        .success();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                assert!(
                    !path.to_string_lossy().contains("tmp-"),
                    "left behind: {}",
                    path.display()
                );
            }
        }
    }
}
