//! What every policy of this crate does first: take the next policy in the pipeline.

use std::sync::Arc;

use azure_core::error::ErrorKind;
use azure_core::http::policies::Policy;

/// The next policy and the ones after it.
pub(crate) type Next<'a> = (&'a Arc<dyn Policy>, &'a [Arc<dyn Policy>]);

/// Splits `next` into the policy to call and the rest; an error naming `policy` when the
/// pipeline ends there (a policy always has at least the transport after it).
pub(crate) fn split<'a>(next: &'a [Arc<dyn Policy>], policy: &str) -> azure_core::Result<Next<'a>> {
    next.split_first().ok_or_else(|| {
        azure_core::Error::with_message(
            ErrorKind::Other,
            format!("the {policy} policy has no transport after it"),
        )
    })
}
