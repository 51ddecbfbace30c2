//! What `get key` says about a key, read from Key Vault's JSON, and the CMK checks on it.
//!
//! The response is read as JSON rather than through the SDK's model so that every field the
//! rules need is checked by name, as the REST API documents it: `key.kid`, `key.kty`,
//! `key.key_ops`, `key.n`, `key.e`, `attributes.enabled`, `attributes.nbf`,
//! `attributes.exp`, `attributes.recoveryLevel`.

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::error::{Error, Result};
use crate::policy::KeyRules;

/// Recovery levels that mean soft delete with purge protection (README, "What the vault and the identity need").
pub(crate) const PURGE_PROTECTED_LEVELS: [&str; 4] = [
    "Recoverable",
    "Recoverable+ProtectedSubscription",
    "CustomizedRecoverable",
    "CustomizedRecoverable+ProtectedSubscription",
];

/// The facts of one key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaultKeyFacts {
    pub(crate) kid: String,
    pub(crate) kty: String,
    pub(crate) key_ops: Vec<String>,
    pub(crate) modulus: Vec<u8>,
    pub(crate) exponent: Vec<u8>,
    pub(crate) enabled: bool,
    pub(crate) not_before: Option<i64>,
    pub(crate) expires: Option<i64>,
    pub(crate) recovery_level: Option<String>,
}

/// What the checks may relax.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    pub(crate) key_rules: KeyRules,
    pub(crate) require_purge_protection: bool,
}

impl VaultKeyFacts {
    /// Reads a `get key` response body.
    ///
    /// # Errors
    /// [`Error::Backend`] when the body is not a key bundle.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::Backend {
            backend: "azure-keyvault",
            message: format!("get key answered without {what}"),
        };
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| bad("a JSON body"))?;
        let key = &json["key"];
        let attributes = &json["attributes"];
        let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
        let bytes = |v: &serde_json::Value, what: &str| {
            v.as_str()
                .and_then(|s| Base64UrlUnpadded::decode_vec(s.trim_end_matches('=')).ok())
                .ok_or_else(|| bad(what))
        };
        let kty = text(&key["kty"]).ok_or_else(|| bad("key.kty"))?;
        let is_rsa = kty == "RSA" || kty == "RSA-HSM";
        Ok(Self {
            kid: text(&key["kid"]).ok_or_else(|| bad("key.kid"))?,
            key_ops: key["key_ops"]
                .as_array()
                .map(|ops| {
                    ops.iter()
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            modulus: if is_rsa {
                bytes(&key["n"], "key.n")?
            } else {
                Vec::new()
            },
            exponent: if is_rsa {
                bytes(&key["e"], "key.e")?
            } else {
                Vec::new()
            },
            kty,
            enabled: attributes["enabled"].as_bool().unwrap_or(true),
            not_before: attributes["nbf"].as_i64(),
            expires: attributes["exp"].as_i64(),
            recovery_level: text(&attributes["recoveryLevel"]),
        })
    }

    /// The modulus length in bits, leading zero bytes ignored.
    pub(crate) fn bits(&self) -> usize {
        let significant: Vec<u8> = self
            .modulus
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        match significant.first() {
            Some(first) => significant.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        }
    }

    /// Applies the CMK rules; `now` is Unix time in seconds. Each broken rule is its own
    /// error, naming the kid and what to change.
    ///
    /// # Errors
    /// [`Error::PolicyRefused`] for the key type, size, operations and recovery level;
    /// [`Error::KeyDisabled`] for a disabled key or one outside `nbf`..`exp`.
    pub(crate) fn check(&self, rules: &Rules, now: i64) -> Result<()> {
        let kid = &self.kid;
        if self.kty != "RSA" && self.kty != "RSA-HSM" {
            return Err(Error::PolicyRefused(format!(
                "{kid} is a {} key: customer-managed keys must be RSA or RSA-HSM",
                self.kty
            )));
        }
        rules
            .key_rules
            .check_rsa_size(self.bits())
            .map_err(|e| match e {
                Error::PolicyRefused(why) => Error::PolicyRefused(format!("{kid}: {why}")),
                other => other,
            })?;
        for needed in ["wrapKey", "unwrapKey"] {
            if !self.key_ops.iter().any(|op| op == needed) {
                return Err(Error::PolicyRefused(format!(
                    "{kid} does not permit {needed} (key_ops: [{}]); add it with \
                     `az keyvault key set-attributes --ops wrapKey unwrapKey ...`",
                    self.key_ops.join(", ")
                )));
            }
        }
        if !self.enabled {
            return Err(Error::KeyDisabled {
                kid: kid.clone(),
                detail: "disabled in the vault".to_owned(),
            });
        }
        if let Some(nbf) = self.not_before.filter(|&nbf| now < nbf) {
            return Err(Error::KeyDisabled {
                kid: kid.clone(),
                detail: format!("not valid before {nbf} (Unix time; now {now})"),
            });
        }
        if let Some(exp) = self.expires.filter(|&exp| now >= exp) {
            return Err(Error::KeyDisabled {
                kid: kid.clone(),
                detail: format!("expired at {exp} (Unix time; now {now})"),
            });
        }
        if rules.require_purge_protection {
            let level = self.recovery_level.as_deref().unwrap_or("(none)");
            if !PURGE_PROTECTED_LEVELS.contains(&level) {
                return Err(Error::PolicyRefused(format!(
                    "{kid} is in a vault with recoveryLevel {level}: customer-managed keys \
                     need soft delete and purge protection (`az keyvault update \
                     --enable-purge-protection true`)"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: &str =
        "https://contoso.vault.azure.net/keys/orders/0123456789abcdef0123456789abcdef";

    fn bundle(edit: impl FnOnce(&mut serde_json::Value)) -> VaultKeyFacts {
        let mut json = serde_json::json!({
            "key": {
                "kid": KID,
                "kty": "RSA-HSM",
                "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"],
                "n": Base64UrlUnpadded::encode_string(&[0xc5; 256]),
                "e": "AQAB"
            },
            "attributes": {
                "enabled": true,
                "nbf": 1_000,
                "exp": 2_000,
                "recoveryLevel": "Recoverable"
            }
        });
        edit(&mut json);
        VaultKeyFacts::from_json(json.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn rules() -> Rules {
        Rules {
            key_rules: KeyRules::default(),
            require_purge_protection: true,
        }
    }

    #[test]
    fn a_compliant_key_passes() {
        let facts = bundle(|_| {});
        assert_eq!(facts.bits(), 2048);
        assert_eq!(facts.exponent, [1, 0, 1]);
        assert!(facts.check(&rules(), 1_500).is_ok());
    }

    #[test]
    fn each_broken_rule_is_its_own_error() {
        let refused =
            |facts: VaultKeyFacts, now: i64, needle: &str| match facts.check(&rules(), now) {
                Err(Error::PolicyRefused(why)) => assert!(why.contains(needle), "{why}"),
                other => panic!("{needle}: {other:?}"),
            };
        refused(bundle(|j| j["key"]["kty"] = "EC".into()), 1_500, "EC key");
        refused(
            bundle(|j| j["key"]["n"] = Base64UrlUnpadded::encode_string(&[0xc5; 384]).into()),
            1_500,
            "RSA-3072",
        );
        refused(
            bundle(|j| j["key"]["key_ops"] = serde_json::json!(["wrapKey"])),
            1_500,
            "unwrapKey",
        );
        refused(
            bundle(|j| j["attributes"]["recoveryLevel"] = "Purgeable".into()),
            1_500,
            "recoveryLevel Purgeable",
        );
        refused(
            bundle(|j| j["attributes"]["recoveryLevel"] = "Recoverable+Purgeable".into()),
            1_500,
            "purge protection",
        );
        let disabled =
            |facts: VaultKeyFacts, now: i64, needle: &str| match facts.check(&rules(), now) {
                Err(Error::KeyDisabled { kid, detail }) => {
                    assert_eq!(kid, KID);
                    assert!(detail.contains(needle), "{detail}");
                }
                other => panic!("{needle}: {other:?}"),
            };
        disabled(
            bundle(|j| j["attributes"]["enabled"] = false.into()),
            1_500,
            "disabled",
        );
        disabled(bundle(|_| {}), 999, "not valid before 1000");
        disabled(bundle(|_| {}), 2_000, "expired at 2000");
    }

    #[test]
    fn purge_protection_can_be_waived() {
        let facts = bundle(|j| j["attributes"]["recoveryLevel"] = "Purgeable".into());
        let waived = Rules {
            require_purge_protection: false,
            ..rules()
        };
        assert!(facts.check(&waived, 1_500).is_ok());
    }

    #[test]
    fn malformed_bundles_are_backend_errors() {
        for body in [
            &b"not json"[..],
            br#"{"key":{}}"#,
            br#"{"key":{"kid":"x","kty":"RSA"}}"#,
        ] {
            assert!(matches!(
                VaultKeyFacts::from_json(body),
                Err(Error::Backend { .. })
            ));
        }
    }
}
