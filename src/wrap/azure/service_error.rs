//! Key Vault's error responses, mapped to what the caller must do.
//!
//! Key Vault answers errors with a status and a JSON body
//! `{"error": {"code": "...", "message": "...", "innererror": {"code": "..."}}}`; the inner
//! code tells access denied (`AccessDenied`, `ForbiddenByRbac`, `ForbiddenByPolicy`) from a
//! disabled key (`KeyDisabled`), both under status 403. This module reads only those fields
//! and never echoes the request (which may hold a wrapped key).

use std::time::Duration;

use crate::error::Error;

/// The fields of an error response that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceError {
    pub(crate) status: u16,
    pub(crate) code: Option<String>,
    pub(crate) inner_code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) retry_after: Option<Duration>,
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
        }
    }

    /// The crate's error for this response to `operation` (`get`, `wrapKey`, `unwrapKey`)
    /// on `kid`.
    pub(crate) fn into_error(self, kid: &str, operation: &str) -> Error {
        let code = self
            .inner_code
            .as_deref()
            .or(self.code.as_deref())
            .unwrap_or("");
        let said = self.message.clone().unwrap_or_default();
        match (self.status, code) {
            (403, "KeyDisabled") | (_, "KeyDisabled") => Error::KeyDisabled {
                kid: kid.to_owned(),
                detail: format!("Key Vault refused {operation}: {said}"),
            },
            (401 | 403, _) => Error::AccessDenied {
                kid: kid.to_owned(),
                detail: format!(
                    "{operation} needs the keys/{} permission (or a role granting it); \
                     Key Vault said {}: {said}",
                    permission(operation),
                    if code.is_empty() { "Forbidden" } else { code }
                ),
            },
            (404, _) => Error::KeyNotFound {
                kid: kid.to_owned(),
            },
            (429, _) => Error::Throttled {
                retry_after: self.retry_after,
            },
            // A wrapped key that does not decrypt: tampering or the wrong key. Opaque, as
            // for every other backend.
            (400, _) if operation == "unwrapKey" => Error::DecryptionFailed,
            (status, _) => Error::Backend {
                backend: "azure-keyvault",
                message: format!(
                    "{operation} on {kid}: HTTP {status}{}{}",
                    if code.is_empty() {
                        String::new()
                    } else {
                        format!(" {code}")
                    },
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                ),
            },
        }
    }
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
                        detail.contains("keys/unwrapKey") && detail.contains(inner),
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
            Error::Throttled { retry_after: Some(d) } if d.as_secs() == 7
        ));
        let bad = r#"{"error":{"code":"BadParameter","message":"Bad Request"}}"#;
        assert!(matches!(map(400, bad), Error::DecryptionFailed));
        assert!(matches!(map(503, "<html>"), Error::Backend { .. }));
    }
}
