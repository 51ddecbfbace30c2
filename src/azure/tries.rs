//! Counting the tries of one key-service call: the SDK retries inside its pipeline, so the
//! call's span ([`crate::observe::key_call_with_tries`]) learns how many tries it took from
//! a counter the call's context carries to the per-try policies.

use azure_core::http::{ClientMethodOptions, Context};

use crate::observe::Tries;

/// Method options whose context carries `tries`.
pub(crate) fn method_options(tries: &Tries) -> ClientMethodOptions<'static> {
    ClientMethodOptions {
        context: Context::new().with_value(tries.clone()),
    }
}

/// Counts one try of the call `ctx` belongs to (from a per-try policy).
pub(crate) fn count_in(ctx: &Context<'_>) {
    if let Some(tries) = ctx.value::<Tries>() {
        tries.count_one();
    }
}
