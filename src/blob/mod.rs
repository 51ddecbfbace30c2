//! Envelopes in Azure Blob Storage (feature `azure-blob`): [`BlobContainer`] uploads as it
//! seals, downloads as it verifies, reads plaintext ranges by HTTP range and re-wraps a
//! blob by replacing its header block alone. See README "Blob Storage".

mod body_reader;
mod container;
mod cse;
mod cse_reader;
mod download;
pub(crate) mod errors;
mod rewrap;
mod upload;
pub(crate) mod url;

pub use container::{BlobContainer, BlobEntry, BlobHead, BlobInfo};
pub use download::BlobReader;
pub use rewrap::BlobRewrapped;
pub use upload::{UploadOptions, Uploaded};
pub use url::BlobUrl;
