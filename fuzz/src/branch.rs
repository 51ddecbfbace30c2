//! Branch keys for the fuzz targets: the shared branch vectors' keyring and store (an RSA
//! CMK and records under it), and a store that answers with fuzz bytes as its record.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cmk_envelope::branch::{
    BranchStore, BranchWrapper, DirectoryStore, StoredCurrent, StoredRecord,
};
use cmk_envelope::kid::{KeyName, KeyVersion};
use cmk_envelope::software::Keyring;
use cmk_envelope::{async_trait, Envelope, Error, Result};

use crate::InsecureCleartextWrapper;

/// The branch key of the vectors' store, and of [`RecordStore`].
pub const BRANCH_NAME: &str = "pub-br";
/// The version [`RecordStore`] says is current.
pub const RECORD_VERSION: &str = "00112233445566778899aabbccddeeff";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/branch")
}

/// A copy of `from` (one level of subdirectories) that only this user can write: the
/// keyring and the store refuse files others could change.
fn private_copy(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let private = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    private(to);
    for entry in std::fs::read_dir(from).expect("vectors").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            private_copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
                .expect("mode");
        }
    }
}

/// An envelope that opens the shared branch vectors: branch slots through the vectors'
/// store and its RSA CMK, CMK slots through the vectors' keyring. Made once per process.
pub fn vectors_envelope() -> &'static Envelope {
    static ENVELOPE: OnceLock<Envelope> = OnceLock::new();
    ENVELOPE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cmke-fuzz-vectors-{}", std::process::id()));
        private_copy(&vectors().join("keyring"), &dir.join("keyring"));
        private_copy(&vectors().join("branches"), &dir.join("branches"));
        let keyring = Keyring::open(dir.join("keyring")).expect("vector keyring");
        let cmk = Arc::new(keyring.key("pub-cmk").expect("cmk"));
        let store = Arc::new(DirectoryStore::open(dir.join("branches")).expect("store"));
        let branch = BranchWrapper::new(store, BRANCH_NAME, cmk).expect("branch");
        Envelope::builder()
            .open_with(Arc::new(branch))
            .open_with_all(keyring.openers().expect("keys"))
            .build()
            .expect("envelope")
    })
}

/// A store whose one branch key's current version is [`RECORD_VERSION`] and whose record
/// of it is whatever the fuzzer gave: the record is read, parsed and opened (under
/// [`InsecureCleartextWrapper`], so that valid records open) by the branch wrapper.
pub struct RecordStore {
    pub record: Vec<u8>,
}

#[async_trait]
impl BranchStore for RecordStore {
    fn location(&self) -> String {
        "fuzz".to_owned()
    }

    async fn read_record(&self, _: &KeyName, _: &KeyVersion) -> Result<StoredRecord> {
        Ok(StoredRecord {
            bytes: self.record.clone(),
            tag: "fuzz".to_owned(),
        })
    }

    async fn create_record(&self, _: &KeyName, _: &KeyVersion, _: &[u8]) -> Result<()> {
        Err(read_only())
    }

    async fn replace_record(&self, _: &KeyName, _: &KeyVersion, _: &[u8], _: &str) -> Result<()> {
        Err(read_only())
    }

    async fn read_current(&self, _: &KeyName) -> Result<StoredCurrent> {
        Ok(StoredCurrent {
            version: KeyVersion::new(RECORD_VERSION)?,
            tag: "fuzz".to_owned(),
        })
    }

    async fn set_current(
        &self,
        _: &KeyName,
        _: &KeyVersion,
        _: Option<&StoredCurrent>,
    ) -> Result<()> {
        Err(read_only())
    }

    async fn names(&self) -> Result<Vec<KeyName>> {
        Ok(vec![KeyName::new(BRANCH_NAME)?])
    }

    async fn versions(&self, _: &KeyName) -> Result<Vec<KeyVersion>> {
        Ok(vec![KeyVersion::new(RECORD_VERSION)?])
    }
}

fn read_only() -> Error {
    Error::Conflict {
        what: "fuzz store".to_owned(),
        detail: "read-only".to_owned(),
    }
}

/// An envelope sealing and opening under the branch key [`RecordStore`] holds.
pub fn record_envelope(record: Vec<u8>) -> Envelope {
    let store = Arc::new(RecordStore { record });
    let branch =
        BranchWrapper::new(store, BRANCH_NAME, Arc::new(InsecureCleartextWrapper)).expect("branch");
    Envelope::builder()
        .seal_with(Arc::new(branch))
        .segment_size(64)
        .build()
        .expect("envelope")
}
