//! What a name on the command line is, from its text alone: a branch key, a blob
//! container store. A leaf: every command module may ask.

use cmk_envelope::kid::BRANCH_KID_PREFIX;

/// Whether a branch store the operator named is a blob container URL.
pub fn is_store_url(location: &str) -> bool {
    location.starts_with("https://")
}

/// A key named on the command line as `branch:NAME`: its name.
pub fn branch_name_in(key: &str) -> Option<&str> {
    key.strip_prefix(BRANCH_KID_PREFIX)
}
