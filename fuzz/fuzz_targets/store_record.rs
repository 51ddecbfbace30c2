//! What a branch key store hands back: a record (fuzz bytes, read, parsed and opened under
//! a cleartext CMK by the branch wrapper, then used to seal and open), or a `current` file
//! of the directory store. Neither may panic, and a record that seals must open what it
//! sealed.
#![no_main]

use cmk_envelope::branch::{BranchStore, DirectoryStore};
use cmk_envelope::kid::KeyName;
use cmk_envelope_fuzz::{block_on, branch, Taker};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut t = Taker(data);
    if t.byte() % 2 == 0 {
        let envelope = branch::record_envelope(t.rest().to_vec());
        if let Ok(sealed) = block_on(envelope.seal(b"fuzz", b"")) {
            let opened = block_on(envelope.open(&sealed, b"")).expect("a record that seals opens");
            assert_eq!(opened.plaintext(), b"fuzz");
        }
        return;
    }
    // A `current` file as the directory store reads it.
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cmke-fuzz-current-{}", std::process::id()));
    let branch_dir = dir.join(branch::BRANCH_NAME);
    std::fs::create_dir_all(&branch_dir).expect("dir");
    for path in [&dir, &branch_dir] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).expect("mode");
    }
    let current = branch_dir.join("current");
    let _ = std::fs::remove_file(&current);
    std::fs::write(&current, t.rest()).expect("write");
    std::fs::set_permissions(&current, std::fs::Permissions::from_mode(0o600)).expect("mode");
    let store = DirectoryStore::open(&dir).expect("store");
    let name = KeyName::new(branch::BRANCH_NAME).expect("name");
    if let Ok(current) = block_on(store.read_current(&name)) {
        let text = current.version.to_string();
        assert!(text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()));
    }
});
