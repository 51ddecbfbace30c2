//! What a name on the command line is, from its text alone: a branch key, a blob
//! container store. A leaf: every command module may ask.

use cmk_envelope::kid::BRANCH_KID_PREFIX;

/// Whether a branch store the operator named is a blob container URL.
pub fn is_store_url(location: &str) -> bool {
    location.starts_with("https://")
}

/// Whether `path`, given to a bulk command, is the branch store the operator named with
/// `--branch-store` (any other `https://` URL is a blob container of envelopes).
pub fn is_named_store(path: &str, branch_store: Option<&str>) -> bool {
    is_store_url(path)
        && branch_store
            .is_some_and(|store| store.trim_end_matches('/') == path.trim_end_matches('/'))
}

/// Whether `path`, given to a bulk command, is a blob container (or a prefix in one).
pub fn is_blob_container(path: &str, branch_store: Option<&str>) -> bool {
    is_store_url(path) && !is_named_store(path, branch_store)
}

/// A key named on the command line as `branch:NAME`: its name.
pub fn branch_name_in(key: &str) -> Option<&str> {
    key.strip_prefix(BRANCH_KID_PREFIX)
}
