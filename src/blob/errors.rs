//! What Azure Storage's answers mean for a caller, shared by the blob client and the blob
//! branch store: 401/403 access denied, 404 not found, 409/412 conflict, 429 and 503
//! throttled, other 5xx and timeouts unavailable. The service's words are kept; no token
//! ever is (the SDK's errors carry none).

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;

use crate::azure_sdk_errors::with_causes;
use crate::error::Error;

const BACKEND: &str = "azure-blob";

/// Whether a 404 says the container, not the blob, is missing.
pub(crate) fn container_missing(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "ContainerNotFound")
}

/// What a failed call on `url` means for the caller; `role_hint` says which role the
/// identity needs, for the access-denied message.
pub(crate) fn storage_error(
    error: azure_core::Error,
    url: &str,
    doing: &str,
    role_hint: &str,
) -> Error {
    let detail = format!("{doing}: {}", with_causes(&error));
    let kid = url.to_owned();
    match error.http_status() {
        Some(StatusCode::Unauthorized | StatusCode::Forbidden) => Error::AccessDenied {
            kid,
            detail: format!("{detail} ({role_hint})"),
        },
        Some(StatusCode::NotFound) => Error::NotFound { what: kid, detail },
        Some(StatusCode::Conflict | StatusCode::PreconditionFailed) => Error::Conflict {
            what: kid,
            detail: format!("{detail} (it changed since it was read; nothing was written)"),
        },
        Some(StatusCode::TooManyRequests | StatusCode::ServiceUnavailable) => Error::Throttled {
            kid,
            detail,
            retry_after: None,
        },
        Some(status) if u16::from(status) >= 500 || status == StatusCode::RequestTimeout => {
            Error::Unavailable { kid, detail }
        }
        Some(_) => Error::Backend {
            backend: BACKEND,
            message: format!("{url}: {detail}"),
        },
        None => match error.kind() {
            ErrorKind::Credential => Error::AccessDenied {
                kid,
                detail: format!(
                    "{detail}: no token from the credential; check the credential in use \
                     (cmke: --azure-credential) and its tenant, client id, secret or certificate"
                ),
            },
            ErrorKind::Io | ErrorKind::Connection => Error::Unavailable {
                kid,
                detail: format!("{detail} (still failing after the retries)"),
            },
            _ => Error::Backend {
                backend: BACKEND,
                message: format!("{url}: {detail}"),
            },
        },
    }
}
