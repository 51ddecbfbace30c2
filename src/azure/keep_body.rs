//! Keeps a request's body through the SDK's challenge handling.
//!
//! Until a client has learned its vault's token scope, the Key Vault SDK
//! (`azure_security_keyvault_keys` 1.0) takes the body off each request it sends
//! unauthenticated, and puts it back only when the vault answers with a challenge. When that
//! try fails in transport instead (a keep-alive connection closed under it, a timeout), the
//! body is lost: the retry goes out authorized and empty, and for `unwrapKey` the vault's
//! 400 would read as a failed decryption. Seen with 16 concurrent first requests against
//! the test double; Key Vault closes idle connections too.
//!
//! [`RememberBody`] (per call, outside the retries) remembers the body, and [`RestoreBody`]
//! (per try, after the SDK's authorization) puts it back on an authorized try that lost it.
//! The remembered body is the same buffer (`Bytes` is shared, not copied), so a request
//! body that is wiped after the call stays one buffer to wipe.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Body, Context, Request};

/// The body a call started with.
struct OriginalBody(Body);

/// Per call: remembers the request body for [`RestoreBody`].
#[derive(Debug)]
pub(crate) struct RememberBody;

/// Per try: restores a remembered body on an authorized try that has none.
#[derive(Debug)]
pub(crate) struct RestoreBody;

#[async_trait]
impl Policy for RememberBody {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (first, rest) = super::next_policy::split(next, "body")?;
        if request.body().is_empty() == Some(false) {
            let ctx = ctx.clone().with_value(OriginalBody(request.body().clone()));
            return first.send(&ctx, request, rest).await;
        }
        first.send(ctx, request, rest).await
    }
}

#[async_trait]
impl Policy for RestoreBody {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (first, rest) = super::next_policy::split(next, "body")?;
        let authorized = request.headers().get_optional_str(&AUTHORIZATION).is_some();
        if authorized && request.body().is_empty() != Some(false) {
            if let Some(OriginalBody(body)) = ctx.value::<OriginalBody>() {
                if let Some(len) = body.len() {
                    request.set_body(body.clone());
                    request.insert_header(CONTENT_LENGTH, len.to_string());
                    request.insert_header(CONTENT_TYPE, "application/json");
                }
            }
        }
        first.send(ctx, request, rest).await
    }
}
