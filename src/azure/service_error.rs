//! Key Vault's error responses, mapped to what the caller must do.
//!
//! Key Vault answers errors with a status and a JSON body
//! `{"error": {"code": "...", "message": "...", "innererror": {"code": "..."}}}`; the inner
//! code tells access denied (`AccessDenied`, `ForbiddenByRbac`, `ForbiddenByPolicy`) from a
//! disabled key (`KeyDisabled`), both under status 403. This module reads only those fields
//! and never echoes the request (which may hold a wrapped key).

use crate::azure_sdk_errors::with_causes;
use std::time::Duration;

use super::backend::BACKEND;
use super::tls;
use crate::error::Error;

/// The fields of an error response that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceError {
    pub(crate) status: u16,
    pub(crate) code: Option<String>,
    pub(crate) inner_code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) retry_after: Option<Duration>,
    /// The token issuer a 401's `WWW-Authenticate` challenge names
    /// (`https://login.microsoftonline.com/{tenant}`).
    pub(crate) authority: Option<String>,
    /// An OAuth error (`{"error": "invalid_client", "error_description": …}`): the answer
    /// of the identity provider to the credential, not of the vault.
    pub(crate) login_error: Option<(String, String)>,
}

impl ServiceError {
    /// Reads a response body; a body that is not Key Vault's JSON leaves the fields empty.
    pub(crate) fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let error = &json["error"];
        let text = |v: &serde_json::Value| v.as_str().map(|s| truncate(s, 300));
        Self {
            status,
            code: text(&error["code"]),
            inner_code: text(&error["innererror"]["code"]),
            message: text(&error["message"]),
            retry_after,
            authority: None,
            login_error: json["error"].as_str().map(|error| {
                (
                    truncate(error, 100),
                    json["error_description"]
                        .as_str()
                        .map(|d| truncate(d, 300))
                        .unwrap_or_default(),
                )
            }),
        }
    }

    /// Adds the issuer named by a `WWW-Authenticate: Bearer authorization="…"` header.
    pub(crate) fn with_challenge(mut self, www_authenticate: Option<&str>) -> Self {
        self.authority = www_authenticate.and_then(challenge_authority);
        self
    }

    /// The crate's error for this response to `operation` (`get`, `wrapKey`, `unwrapKey`)
    /// on `kid` (the versioned kid, or the key URL when no version is known). Every message
    /// names the operation and the kid, which names the vault, the key and the version.
    pub(crate) fn into_error(self, kid: &str, operation: &str) -> Error {
        let code = self
            .inner_code
            .as_deref()
            .or(self.code.as_deref())
            .unwrap_or("");
        let said = self.message.clone().unwrap_or_default();
        let answered = |what: &str| {
            let mut text = format!("{operation}: Key Vault answered HTTP {}", self.status);
            if !code.is_empty() {
                text.push(' ');
                text.push_str(code);
            }
            if !said.is_empty() {
                text.push_str(": ");
                text.push_str(&said);
            }
            if !what.is_empty() {
                text.push_str("; ");
                text.push_str(what);
            }
            text
        };
        if let Some((error, description)) = &self.login_error {
            return Error::AccessDenied {
                kid: kid.to_owned(),
                detail: format!(
                    "{operation}: no token: the identity provider refused the credential \
                     (HTTP {} {error}: {description}); check the tenant, the client id and \
                     the secret or certificate of --azure-credential",
                    self.status
                ),
            };
        }
        match (self.status, code) {
            (_, "KeyDisabled") => Error::KeyDisabled {
                kid: kid.to_owned(),
                detail: answered(""),
            },
            (401, _) => Error::AccessDenied {
                kid: kid.to_owned(),
                detail: format!(
                    "the token was rejected: {}",
                    answered(&login_hint(kid, self.authority.as_deref()))
                ),
            },
            (403, _) => Error::AccessDenied {
                kid: kid.to_owned(),
                detail: answered(&format!(
                    "{operation} needs the keys/{} permission (or a role granting it)",
                    permission(operation)
                )),
            },
            (404, _) => Error::KeyNotFound {
                kid: kid.to_owned(),
                detail: answered(""),
            },
            (429, _) => Error::Throttled {
                kid: kid.to_owned(),
                detail: answered("still throttled after the retries"),
                retry_after: self.retry_after,
            },
            // A wrapped key that does not decrypt: tampering or the wrong key. Opaque, as
            // for every other backend.
            (400, _) if operation == "unwrapKey" => Error::DecryptionFailed,
            (408 | 500..=599, _) => Error::Unavailable {
                kid: kid.to_owned(),
                detail: answered("still failing after the retries"),
            },
            _ => Error::Backend {
                backend: "azure-keyvault",
                message: format!("{kid}: {}", answered("")),
            },
        }
    }
}

/// How to get a token this vault takes: which tenant it expects and how to log in again.
fn login_hint(kid: &str, authority: Option<&str>) -> String {
    let vault = kid
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(kid);
    match authority.and_then(|a| a.trim_end_matches('/').rsplit('/').next()) {
        Some(tenant) if !tenant.is_empty() => format!(
            "{vault} takes tokens issued by tenant {tenant}: log in to that tenant again \
             (`az login --tenant {tenant}` for the developer credential) or use a credential \
             of that tenant (--azure-credential)"
        ),
        _ => format!(
            "log in again (`az login` for the developer credential) or use a credential of \
             the tenant that holds {vault} (--azure-credential)"
        ),
    }
}

/// `authorization="…"` (or `authorization_uri="…"`) of a Bearer challenge.
fn challenge_authority(header: &str) -> Option<String> {
    header
        .split([',', ' '])
        .filter_map(|part| part.trim().split_once('='))
        .find(|(name, _)| {
            name.eq_ignore_ascii_case("authorization")
                || name.eq_ignore_ascii_case("authorization_uri")
        })
        .map(|(_, value)| truncate(value.trim_matches('"'), 200))
}

/// The Key Vault permission an operation needs (`keys/get`, `keys/wrapKey`, ...).
fn permission(operation: &str) -> &str {
    match operation {
        "wrapKey" => "wrapKey",
        "unwrapKey" => "unwrapKey",
        _ => "get",
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An answer that is not what the operation returns: names the operation, never echoes
/// the body (an unwrap answer carries a data key).
pub(super) fn malformed(kid: &str, operation: &str, why: &str) -> Error {
    Error::Backend {
        backend: BACKEND,
        message: format!("{operation} on {kid}: malformed answer from the vault: {why}"),
    }
}

/// Maps an SDK error: service answers by status and Key Vault error code; a refused TLS
/// certificate as itself (it was not retried); other transport failures, after the retries,
/// as [`Error::Unavailable`]; a credential that gives no token as access denied, saying how
/// to log in.
pub(super) fn service_error(error: azure_core::Error, kid: &str, operation: &str) -> Error {
    use azure_core::error::ErrorKind;
    if let Some(refused) = tls::certificate_refusal(&error) {
        return Error::Backend {
            backend: BACKEND,
            message: format!("{refused}; {operation} on {kid} was not sent and not retried"),
        };
    }
    match error.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response,
            ..
        } => {
            let status = u16::from(*status);
            let (body, retry_after, challenge) = raw_response
                .as_ref()
                .map(|raw| {
                    (
                        raw.body().to_vec(),
                        retry_after(raw.headers()),
                        raw.headers()
                            .get_optional_str(&azure_core::http::headers::WWW_AUTHENTICATE)
                            .map(str::to_owned),
                    )
                })
                .unwrap_or_default();
            ServiceError::from_response(status, &body, retry_after)
                .with_challenge(challenge.as_deref())
                .into_error(kid, operation)
        }
        ErrorKind::Credential => Error::AccessDenied {
            kid: kid.to_owned(),
            detail: format!(
                "{operation}: no token from the credential ({}); log in again (`az login` for \
                 the developer credential) or check the tenant, client id, secret or \
                 certificate of the credential in use (cmke: --azure-credential)",
                with_causes(&error)
            ),
        },
        ErrorKind::Io | ErrorKind::Connection => Error::Unavailable {
            kid: kid.to_owned(),
            detail: format!(
                "{operation}: {} (still failing after the retries)",
                with_causes(&error)
            ),
        },
        _ => Error::Backend {
            backend: BACKEND,
            message: format!("{operation} on {kid}: {}", with_causes(&error)),
        },
    }
}

fn retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    headers
        .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str =
        "https://contoso.vault.azure.net/keys/orders/0123456789abcdef0123456789abcdef";

    fn map(status: u16, body: &str) -> Error {
        ServiceError::from_response(status, body.as_bytes(), Some(Duration::from_secs(7)))
            .into_error(KID, "unwrapKey")
    }

    #[test]
    fn forbidden_variants_are_access_denied_naming_the_permission() {
        for inner in ["AccessDenied", "ForbiddenByRbac", "ForbiddenByPolicy"] {
            let body = format!(
                r#"{{"error":{{"code":"Forbidden","message":"Caller is not authorized","innererror":{{"code":"{inner}"}}}}}}"#
            );
            match map(403, &body) {
                Error::AccessDenied { kid, detail } => {
                    assert_eq!(kid, KID);
                    assert!(
                        detail.contains("keys/unwrapKey")
                            && detail.contains(inner)
                            && detail.starts_with("unwrapKey:"),
                        "{detail}"
                    );
                }
                other => panic!("{inner}: {other:?}"),
            }
        }
    }

    #[test]
    fn disabled_missing_throttled_tampered_and_outage() {
        let disabled = r#"{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}"#;
        assert!(matches!(map(403, disabled), Error::KeyDisabled { .. }));
        let missing = r#"{"error":{"code":"KeyNotFound","message":"A key with (name/id) orders was not found in this key vault."}}"#;
        assert!(matches!(map(404, missing), Error::KeyNotFound { .. }));
        let throttled = r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#;
        assert!(matches!(
            map(429, throttled),
            Error::Throttled { retry_after: Some(d), ref kid, ref detail }
                if d.as_secs() == 7 && kid == KID && detail.starts_with("unwrapKey:")
        ));
        let bad = r#"{"error":{"code":"BadParameter","message":"Bad Request"}}"#;
        assert!(matches!(map(400, bad), Error::DecryptionFailed));
        assert!(matches!(map(503, "<html>"), Error::Unavailable { .. }));
        assert!(map(503, "<html>").is_transient());
    }

    #[test]
    fn a_rejected_token_is_not_called_a_permission_problem() {
        let rejected = r#"{"error":{"code":"Unauthorized","message":"AKV10032: Invalid issuer."}}"#;
        let error = ServiceError::from_response(401, rejected.as_bytes(), None)
            .with_challenge(Some(
                r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-0000", resource="https://vault.azure.net""#,
            ))
            .into_error(KID, "get");
        let text = error.to_string();
        assert!(matches!(error, Error::AccessDenied { .. }));
        for said in [
            "token was rejected",
            "contoso.vault.azure.net",
            "tenant 72f988bf-0000",
            "az login --tenant 72f988bf-0000",
            "AKV10032",
            "get:",
        ] {
            assert!(text.contains(said), "{said}: {text}");
        }
        assert!(!text.contains("needs the keys/"), "{text}");
    }

    #[test]
    fn an_oauth_error_is_the_login_refused_not_the_vault() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        let error = ServiceError::from_response(401, body.as_bytes(), None).into_error(KID, "get");
        let text = error.to_string();
        assert!(matches!(error, Error::AccessDenied { .. }));
        assert!(
            text.contains("identity provider refused the credential")
                && text.contains("invalid_client")
                && text.contains("AADSTS7000215")
                && !text.contains("Key Vault answered"),
            "{text}"
        );
    }
}
