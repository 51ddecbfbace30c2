//! What goes around any key wrapper: the data-key cache and the key-operation budget. (The
//! [`KeyWrapper`] trait itself is at the crate root, the backends in
//! [`software`](crate::software), `azure` and `pkcs11`.)

mod cache;
mod failover;
mod key_ops_limit;
pub(crate) mod key_wrapper;
mod resolver;

pub use cache::{CacheConfig, CacheStats, CachingWrapper};
pub use failover::FailoverState;
pub use key_ops_limit::KeyOpsLimit;
pub(crate) use key_wrapper::{KeyFacts, KeyWrapper, SlotContext, Unwrapped};
pub(crate) use resolver::KeyResolver;
pub(crate) use resolver::Recovered;
pub use resolver::SlotOrder;
