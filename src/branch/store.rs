//! Where branch key records live: the trait every store implements.

use async_trait::async_trait;

use crate::error::Result;
use crate::kid::{KeyName, KeyVersion};

/// A record as read from a store, with the tag a conditional replace needs.
pub struct StoredRecord {
    /// The record: a CMKE envelope of the branch key under a CMK.
    pub bytes: Vec<u8>,
    /// What the store knows this content by (an ETag, a digest): passed back to
    /// [`BranchStore::replace_record`] so that a concurrent change is not overwritten.
    pub tag: String,
}

/// The current version of a branch key, as read from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCurrent {
    /// The version new objects are wrapped under.
    pub version: KeyVersion,
    /// What the store knows this content by; [`BranchStore::set_current`] moves `current`
    /// only if it still has this tag.
    pub tag: String,
}

/// A branch key store: `{name}/{version}.cmke` records and a `{name}/current` pointer
/// (docs/FORMAT.md, "Branch keys").
///
/// Implementations: [`DirectoryStore`](super::DirectoryStore) and, with feature `azure-blob`,
/// an Azure Blob Storage container. Every write is conditional, so two writers at once
/// cannot both win: one gets [`Error::Conflict`](crate::Error::Conflict) and nothing is lost.
#[async_trait]
pub trait BranchStore: Send + Sync {
    /// Where the store is (a directory, a container URL), for messages and listings.
    fn location(&self) -> String;

    /// Reads the record of one version.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound) when there is none; I/O and
    /// service errors as they come.
    async fn read_record(&self, name: &KeyName, version: &KeyVersion) -> Result<StoredRecord>;

    /// Writes the record of a new version, failing if one exists.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) when the version exists.
    async fn create_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
    ) -> Result<()>;

    /// Replaces a record (a re-wrap after a CMK rotation), only if it still has `tag`.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) when it changed since it was read.
    async fn replace_record(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        record: &[u8],
        tag: &str,
    ) -> Result<()>;

    /// Reads `{name}/current`.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`](crate::Error::KeyNotFound) when the branch key does not exist.
    async fn read_current(&self, name: &KeyName) -> Result<StoredCurrent>;

    /// Points `{name}/current` at `version`: only if it does not exist yet (`expected` is
    /// `None`) or still has the tag `expected` was read with.
    ///
    /// # Errors
    /// [`Error::Conflict`](crate::Error::Conflict) when someone else moved it first.
    async fn set_current(
        &self,
        name: &KeyName,
        version: &KeyVersion,
        expected: Option<&StoredCurrent>,
    ) -> Result<()>;

    /// The names of the branch keys in the store, sorted.
    ///
    /// # Errors
    /// I/O and service errors.
    async fn names(&self) -> Result<Vec<KeyName>>;

    /// The versions that have a record, sorted.
    ///
    /// # Errors
    /// I/O and service errors.
    async fn versions(&self, name: &KeyName) -> Result<Vec<KeyVersion>>;
}
