//! A branch store that makes two rotations race: both read `current` before either moves
//! it, as two machines can. Wraps any store, so each store's conditional writes are what
//! decide the race.

use std::sync::Arc;

use cmk_envelope::branch::{BranchStore, StoredCurrent, StoredRecord};
use cmk_envelope::kid::{KeyName, KeyVersion};

/// A store whose `read_current` waits until two readers have read: so both rotations
/// read the same `current` before either moves it, as two machines can.
pub struct BothReadFirst {
    inner: Arc<dyn BranchStore>,
    barrier: tokio::sync::Barrier,
}

impl BothReadFirst {
    pub fn new(inner: Arc<dyn BranchStore>) -> Self {
        Self {
            inner,
            barrier: tokio::sync::Barrier::new(2),
        }
    }
}

#[cmk_envelope::async_trait]
impl BranchStore for BothReadFirst {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read_record(&self, n: &KeyName, v: &KeyVersion) -> cmk_envelope::Result<StoredRecord> {
        self.inner.read_record(n, v).await
    }
    async fn create_record(
        &self,
        n: &KeyName,
        v: &KeyVersion,
        r: &[u8],
    ) -> cmk_envelope::Result<()> {
        self.inner.create_record(n, v, r).await
    }
    async fn replace_record(
        &self,
        n: &KeyName,
        v: &KeyVersion,
        r: &[u8],
        tag: &str,
    ) -> cmk_envelope::Result<()> {
        self.inner.replace_record(n, v, r, tag).await
    }
    async fn read_current(&self, n: &KeyName) -> cmk_envelope::Result<StoredCurrent> {
        let current = self.inner.read_current(n).await;
        self.barrier.wait().await;
        current
    }
    async fn set_current(
        &self,
        n: &KeyName,
        v: &KeyVersion,
        expected: Option<&StoredCurrent>,
    ) -> cmk_envelope::Result<()> {
        self.inner.set_current(n, v, expected).await
    }
    async fn names(&self) -> cmk_envelope::Result<Vec<KeyName>> {
        self.inner.names().await
    }
    async fn versions(&self, n: &KeyName) -> cmk_envelope::Result<Vec<KeyVersion>> {
        self.inner.versions(n).await
    }
}
