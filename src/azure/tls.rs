//! TLS certificate failures are final: a vault whose certificate does not verify (wrong
//! host, unknown issuer, expired) is not retried, and is reported by its cause.
//!
//! The HTTP client reports a refused certificate as a connection error, which the SDK's
//! retry policy retries like a network blip (five tries, seconds of backoff, and then
//! "retry policy expired"). A per-try policy, inside the retry policy, turns it into an
//! error the retry policy does not retry, carrying [`CertificateRefused`] so that the
//! error mapping can name it.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

/// Stops retries of a request whose TLS certificate was refused.
#[derive(Debug)]
pub(crate) struct CertificateFailuresAreFinal;

/// A refused server certificate, and why.
#[derive(Debug)]
pub(crate) struct CertificateRefused {
    host: String,
    cause: String,
}

impl std::fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the TLS certificate of {} was refused: {}",
            self.host, self.cause
        )
    }
}

impl std::error::Error for CertificateRefused {}

#[async_trait]
impl Policy for CertificateFailuresAreFinal {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let (first, rest) = super::next_policy::split(next, "certificate")?;
        let host = request.url().host_str().unwrap_or("the vault").to_owned();
        match first.send(ctx, request, rest).await {
            Err(error) if matches!(error.kind(), ErrorKind::Io | ErrorKind::Connection) => {
                match certificate_cause(&error) {
                    Some(cause) => Err(azure_core::Error::new(
                        ErrorKind::Other,
                        CertificateRefused { host, cause },
                    )),
                    None => Err(error),
                }
            }
            other => other,
        }
    }
}

/// The refused certificate somewhere in `error`'s chain, if any.
pub(crate) fn certificate_refusal(error: &azure_core::Error) -> Option<&CertificateRefused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if let Some(refused) = inner.downcast_ref::<CertificateRefused>() {
            return Some(refused);
        }
        cause = inner.source();
    }
    None
}

/// The innermost message that says a certificate was refused. rustls words these as
/// "invalid peer certificate: …" (unknown issuer, not valid for the name, expired).
fn certificate_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut found = None;
    let mut cause = Some(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if said.to_ascii_lowercase().contains("certificate") {
            found = Some(said);
        }
        cause = inner.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Rustls;
    impl std::fmt::Display for Rustls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("invalid peer certificate: UnknownIssuer")
        }
    }
    impl std::error::Error for Rustls {}

    #[test]
    fn the_innermost_certificate_message_is_the_cause() {
        let error = azure_core::Error::new(ErrorKind::Connection, Rustls);
        assert_eq!(
            certificate_cause(&error).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let plain = azure_core::Error::with_message(ErrorKind::Connection, "connection refused");
        assert_eq!(certificate_cause(&plain), None);
    }
}
