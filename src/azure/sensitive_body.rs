//! The two Key Vault bodies that carry a data key: the `wrapKey` request (remote wrapping)
//! and the `unwrapKey` answer. Both are handled here in buffers we own and wipe, rather than
//! through the SDK's models, whose intermediate strings and vectors would be freed unwiped.
//!
//! What stays out of reach: TLS and HTTP buffers inside rustls, hyper and reqwest, which
//! hold the same bytes briefly and are not wiped (README, Security).

use std::borrow::Cow;

use base64ct::{Base64UrlUnpadded, Encoding};
use bytes::Bytes;
use zeroize::{Zeroize, Zeroizing};

use crate::data_key::{DataKey, DATA_KEY_LEN};

/// Room for `{"alg":"RSA-OAEP-256","value":"…"}` with up to 64 key bytes: no
/// reallocation, so no stray copy is left behind in freed memory.
const WRAP_REQUEST_CAPACITY: usize = 160;

/// The JSON body of a `wrapKey` request for `key_bytes` (a data key, with the slot's
/// prefix if any; at most 64 bytes) under RSA-OAEP-256.
pub(super) fn wrap_request(key_bytes: &[u8]) -> Bytes {
    let mut encoded = Zeroizing::new([0u8; 96]);
    let value = Base64UrlUnpadded::encode(key_bytes, &mut encoded[..])
        .unwrap_or_default()
        .as_bytes();
    let mut body = Vec::with_capacity(WRAP_REQUEST_CAPACITY);
    body.extend_from_slice(br#"{"alg":"RSA-OAEP-256","value":""#);
    body.extend_from_slice(value);
    body.extend_from_slice(br#""}"#);
    Bytes::from(body)
}

/// Wipes a body once every other holder (the SDK) has dropped its share. A share still
/// held elsewhere cannot be written to, and is left.
pub(super) fn wipe(body: Bytes) {
    if let Ok(mut owned) = body.try_into_mut() {
        owned.as_mut().zeroize();
    }
}

#[derive(serde::Deserialize)]
struct UnwrapAnswer<'a> {
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    /// Borrowed from the body: base64url has nothing to unescape, so there is no copy.
    #[serde(borrow, default)]
    value: Option<&'a str>,
}

/// Reads an `unwrapKey` answer: the data key (`None` when the value is not one), and the
/// kid the vault answered for. The body is wiped before returning.
pub(super) fn read_unwrap_answer(
    body: impl Into<Bytes>,
    context: crate::SlotContext<'_>,
) -> Result<(Option<DataKey>, Option<String>), String> {
    let body: Bytes = body.into();
    let parsed = serde_json::from_slice::<UnwrapAnswer<'_>>(&body)
        .map_err(|e| e.to_string())
        .map(|answer| {
            let data_key = answer.value.and_then(|v| decode_data_key(v, context));
            (data_key, answer.kid.map(Cow::into_owned))
        });
    wipe(body);
    parsed
}

fn decode_data_key(value: &str, context: crate::SlotContext<'_>) -> Option<DataKey> {
    // Room for a prefix of up to 32 bytes, and one byte more to refuse anything longer.
    let mut decoded = Zeroizing::new([0u8; DATA_KEY_LEN + 33]);
    let key = Base64UrlUnpadded::decode(value.trim_end_matches('='), &mut decoded[..]).ok()?;
    context.unwrap_output(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrap_request_round_trips_through_an_unwrap_answer() {
        let key = DataKey::from_slice(&[7u8; DATA_KEY_LEN]).expect("key");
        let request = wrap_request(key.expose_secret());
        let text = std::str::from_utf8(&request).expect("utf-8").to_owned();
        assert!(
            text.starts_with(r#"{"alg":"RSA-OAEP-256","value":""#),
            "{text}"
        );
        assert!(request.len() <= WRAP_REQUEST_CAPACITY);
        let answer = text.replace(r#""alg":"RSA-OAEP-256""#, r#""kid":"https://v/keys/k/1""#);
        let id = [0u8; 32];
        let (back, kid) =
            read_unwrap_answer(answer.into_bytes(), crate::SlotContext::new(&id)).expect("answer");
        assert_eq!(kid.as_deref(), Some("https://v/keys/k/1"));
        assert_eq!(
            back.expect("key").expose_secret(),
            key.expose_secret(),
            "same key"
        );
    }

    #[test]
    fn wrong_sizes_and_junk_are_no_data_key() {
        let id = [0u8; 32];
        let context = crate::SlotContext::new(&id);
        let (key, _) =
            read_unwrap_answer(br#"{"kid":"k","value":"AAAA"}"#.to_vec(), context).expect("answer");
        assert!(key.is_none());
        assert!(read_unwrap_answer(b"{".to_vec(), context).is_err());
    }

    #[test]
    fn a_prefixed_key_round_trips_and_a_missing_prefix_is_no_data_key() {
        let id = [0u8; 32];
        let key = DataKey::from_slice(&[9u8; DATA_KEY_LEN]).expect("key");
        let framed = crate::SlotContext::new(&id).with_key_prefix(b"2.0\0\0\0\0\0");
        let request = wrap_request(&framed.wrap_input(&key));
        assert!(request.len() <= WRAP_REQUEST_CAPACITY);
        let answer = std::str::from_utf8(&request)
            .expect("utf-8")
            .replace(r#""alg":"RSA-OAEP-256""#, r#""kid":"k""#);
        let (back, _) = read_unwrap_answer(answer.clone().into_bytes(), framed).expect("answer");
        assert_eq!(back.expect("key").expose_secret(), key.expose_secret());
        let (plain, _) =
            read_unwrap_answer(answer.into_bytes(), crate::SlotContext::new(&id)).expect("answer");
        assert!(
            plain.is_none(),
            "40 bytes are not a data key without the prefix"
        );
    }
}
