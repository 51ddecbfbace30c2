//! A deadline on each try of a request, so that a vault that accepts the connection and then
//! never answers costs one bounded wait per try instead of the HTTP client's read timeout.
//!
//! It runs as a per-try policy, inside the SDK's retry policy: a try that runs out of time
//! fails as an I/O error, which the retry policy retries with backoff like any other
//! transport failure, within its own total bound.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

/// Fails a try that has not produced a response within `limit`.
#[derive(Debug)]
pub(crate) struct TryTimeout {
    pub(crate) limit: Duration,
}

#[async_trait]
impl Policy for TryTimeout {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (first, rest) = super::next_policy::split(next, "try-timeout")?;
        super::tries::count_in(ctx);
        let limit = azure_core::time::Duration::try_from(self.limit)
            .unwrap_or(azure_core::time::Duration::MAX);
        let url = request.url().clone();
        let response = first.send(ctx, request, rest);
        let deadline = azure_core::sleep::sleep(limit);
        match first_of(response, deadline).await {
            Some(result) => result,
            None => Err(azure_core::Error::with_message(
                ErrorKind::Io,
                format!(
                    "no answer from {} within {} ms",
                    url.host_str().unwrap_or("the vault"),
                    self.limit.as_millis()
                ),
            )),
        }
    }
}

/// The output of `work` if it finishes before `deadline`, else `None`.
async fn first_of<T>(
    work: impl Future<Output = T>,
    deadline: impl Future<Output = ()>,
) -> Option<T> {
    let mut work = pin!(work);
    let mut deadline = pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::first_of;
    use std::future::{pending, ready};

    #[tokio::test]
    async fn work_that_finishes_wins() {
        assert_eq!(first_of(ready(7), pending::<()>()).await, Some(7));
    }

    #[tokio::test]
    async fn the_deadline_wins_over_work_that_never_finishes() {
        assert_eq!(first_of(pending::<u8>(), ready(())).await, None);
    }
}
