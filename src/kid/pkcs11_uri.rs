//! RFC 7512 `pkcs11:` URIs, as far as kids need them: `token`, `object` and `id`.
//!
//! A kid is `pkcs11:token={label};object={label};id={bytes}`, every value percent-encoded
//! except RFC 3986's unreserved characters, so one key version has exactly one kid. Parsing
//! accepts the attributes in any order and any percent-encoding, and refuses what it does
//! not understand rather than guessing.

use crate::error::{Error, Result};

/// The scheme prefix of every PKCS#11 kid.
pub const PKCS11_SCHEME: &str = "pkcs11:";

/// The attributes of a `pkcs11:` URI this crate uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `object`: the key's `CKA_LABEL`.
    pub object: Option<String>,
    /// `id`: the key version's `CKA_ID`.
    pub id: Option<Vec<u8>>,
}

impl Pkcs11Uri {
    /// Parses `pkcs11:token=…;object=…;id=…` (each attribute optional, any order).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another scheme, a query part, an unknown or repeated
    /// attribute, bad percent-encoding, or a label that is not UTF-8.
    pub fn parse(text: &str) -> Result<Self> {
        // Never echo a query part: it may hold a PIN (`pin-value=`).
        let shown = text.split('?').next().unwrap_or_default();
        let bad = |why: &str| {
            Error::InvalidArgument(format!("{shown:?} is not a usable pkcs11: URI: {why}"))
        };
        let path = text
            .strip_prefix(PKCS11_SCHEME)
            .ok_or_else(|| bad("it does not start with pkcs11:"))?;
        if path.contains('?') {
            return Err(bad(
                "query attributes (module, PIN) are not taken from a URI; give them in the \
                 configuration or the environment",
            ));
        }
        let mut uri = Self::default();
        for attribute in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attribute
                .split_once('=')
                .ok_or_else(|| bad("an attribute has no '='"))?;
            let bytes = percent_decode(value).ok_or_else(|| bad("bad percent-encoding"))?;
            let text_value =
                || String::from_utf8(bytes.clone()).map_err(|_| bad("a label is not UTF-8"));
            let repeated = match name {
                "token" => uri.token.replace(text_value()?).is_some(),
                "object" => uri.object.replace(text_value()?).is_some(),
                "id" => uri.id.replace(bytes).is_some(),
                "type" if value == "private" || value == "public" => false,
                _ => return Err(bad(&format!("attribute {name:?} is not supported here"))),
            };
            if repeated {
                return Err(bad(&format!("attribute {name:?} appears twice")));
            }
        }
        Ok(uri)
    }

    /// The canonical text: `pkcs11:token=…;object=…;id=…`, attributes that are set only.
    #[must_use]
    pub fn to_uri(&self) -> String {
        let mut parts = Vec::new();
        if let Some(token) = &self.token {
            parts.push(format!("token={}", percent_encode(token.as_bytes())));
        }
        if let Some(object) = &self.object {
            parts.push(format!("object={}", percent_encode(object.as_bytes())));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", percent_encode(id)));
        }
        format!("{PKCS11_SCHEME}{}", parts.join(";"))
    }
}

impl std::fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_uri())
    }
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = hex_digit(bytes.next()?)?;
            let low = hex_digit(bytes.next()?)?;
            out.push(high << 4 | low);
        } else if b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b';') {
            out.push(b);
        } else {
            return None;
        }
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kid_round_trips_in_its_canonical_form() {
        let uri = Pkcs11Uri {
            token: Some("prod hsm".into()),
            object: Some("orders".into()),
            id: Some(vec![0, 0, 0, 1]),
        };
        let text = uri.to_uri();
        assert_eq!(
            text,
            "pkcs11:token=prod%20hsm;object=orders;id=%00%00%00%01"
        );
        assert_eq!(Pkcs11Uri::parse(&text).expect("parse"), uri);
    }

    #[test]
    fn any_order_and_lowercase_escapes_parse_to_the_same_uri() {
        let a = Pkcs11Uri::parse("pkcs11:id=%0a%FF;object=k;token=t;type=private").expect("a");
        assert_eq!(a.id.as_deref(), Some(&[0x0a, 0xff][..]));
        assert_eq!(a.to_uri(), "pkcs11:token=t;object=k;id=%0A%FF");
    }

    #[test]
    fn what_is_not_understood_is_refused() {
        for bad in [
            "pkcs11",
            "https://vault/keys/x",
            "pkcs11:token=a;token=b",
            "pkcs11:token=a?pin-value=1234",
            "pkcs11:slot-id=3",
            "pkcs11:id=%G1",
            "pkcs11:id=%1",
            "pkcs11:object=a b",
            "pkcs11:object=%FF%FE",
            "pkcs11:token",
        ] {
            assert!(Pkcs11Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_pin_in_a_uri_is_refused_without_being_echoed() {
        let e = Pkcs11Uri::parse("pkcs11:token=a?pin-value=8811").expect_err("refused");
        assert!(!e.to_string().contains("8811"), "{e}");
    }
}
