//! The shared [`KeyOpsLimit`] as a per-try policy: each try of each request waits for its
//! turn, and a 429 pauses every request that shares the limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, StatusCode};

use crate::wrap::KeyOpsLimit;

/// How long everyone pauses after a 429 that names no `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct KeyOpsBudget {
    pub(crate) limit: KeyOpsLimit,
}

#[async_trait]
impl Policy for KeyOpsBudget {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (first, rest) = super::next_policy::split(next, "key-operations budget")?;
        let wait = self.limit.reserve_at(Instant::now());
        if !wait.is_zero() {
            crate::observe::key_ops_wait(wait);
            azure_core::sleep::sleep(
                azure_core::time::Duration::try_from(wait)
                    .unwrap_or(azure_core::time::Duration::MAX),
            )
            .await;
        }
        let result = first.send(ctx, request, rest).await;
        if let Ok(response) = &result {
            if response.status() == StatusCode::TooManyRequests {
                let pause = response
                    .headers()
                    .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map_or(DEFAULT_PAUSE, Duration::from_secs);
                crate::observe::key_service_pause(pause);
                self.limit.pause_for(pause, Instant::now());
            }
        }
        result
    }
}
