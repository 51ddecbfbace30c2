//! Blobs written by the Azure Storage SDKs' client-side encryption v2 (`encryption_version
//! "2.0"`, and v2.1's other region sizes): the `encryptiondata` metadata, and the body's
//! regions (nonce ‖ AES-256-GCM ciphertext ‖ tag, no associated data).
//!
//! What v2 does not protect, and so this reader cannot check: the regions carry no index
//! and no end marker. Region order is checked by the nonce, which every SDK derives from
//! the region's index (each in its own encoding; one encoding is held to for the whole
//! blob, as the Python SDK does); a blob cut at a region boundary still opens, shorter.

use std::collections::HashMap;

use base64ct::{Base64, Encoding};
use serde_json::Value;

use crate::crypto::{Provider, SegmentCipher};
use crate::error::{Error, Result};
use crate::format::limits::MAX_KID_LEN;
use crate::format::{KeySlot, WrapAlgorithm};

/// The metadata entry that holds the encryption data (its name is case-insensitive).
pub(super) const METADATA_NAME: &str = "encryptiondata";
/// Anything longer is not encryption data of these SDKs (theirs is under 1 KiB).
const MAX_METADATA_LEN: usize = 8 * 1024;
/// The largest region read: a region is held whole in memory to be verified, so a blob's
/// metadata must not make a reader allocate more (the SDKs write 4 MiB).
pub(crate) const MAX_REGION_LEN: u64 = 16 * 1024 * 1024;
pub(super) const NONCE_LEN: u64 = 12;
pub(super) const TAG_LEN: u64 = 16;

/// The parsed `encryptiondata` of a v2 blob.
#[derive(Debug, Clone)]
pub(crate) struct CseData {
    /// "2.0" or "2.1".
    pub(crate) protocol: &'static str,
    pub(crate) slot: KeySlot,
    /// Plaintext bytes per region.
    pub(crate) region_len: u64,
    /// The whole JSON, to write back with only the wrapped key changed.
    document: Value,
}

fn refused(why: String) -> Error {
    Error::InvalidArgument(format!(
        "client-side encryption data the crate does not read: {why}"
    ))
}

/// The `encryptiondata` entry of `metadata`, whatever the case of its name.
pub(super) fn find(metadata: &HashMap<String, String>) -> Option<(&str, &str)> {
    metadata
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(METADATA_NAME))
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

impl CseData {
    /// Parses encryption data, refusing anything but v2/v2.1 with AES-GCM-256, 12-byte
    /// nonces and an RSA-OAEP or RSA-OAEP-256 wrapped key.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_METADATA_LEN {
            return Err(refused(format!("longer than {MAX_METADATA_LEN} bytes")));
        }
        let document: Value =
            serde_json::from_str(text).map_err(|e| refused(format!("not JSON ({e})")))?;
        let field = |path: &[&str]| -> Option<&Value> {
            path.iter()
                .try_fold(&document, |value, name| value.get(name))
        };
        let text_at = |path: &[&str]| -> Result<&str> {
            field(path)
                .and_then(Value::as_str)
                .ok_or_else(|| refused(format!("no {}", path.join("."))))
        };
        let protocol =
            match text_at(&["EncryptionAgent", "Protocol"])? {
                "2.0" => "2.0",
                "2.1" => "2.1",
                "1.0" => return Err(refused(
                    "protocol 1.0 (AES-CBC, unauthenticated): read it with the SDK that wrote it \
                     and write it again as v2 or as an envelope"
                        .to_owned(),
                )),
                other => return Err(refused(format!("protocol {other:?}"))),
            };
        let cipher = text_at(&["EncryptionAgent", "EncryptionAlgorithm"])?;
        if cipher != "AES_GCM_256" {
            return Err(refused(format!("content algorithm {cipher:?}")));
        }
        let algorithm = match text_at(&["WrappedContentKey", "Algorithm"])? {
            "RSA-OAEP" => WrapAlgorithm::RsaOaepSha1,
            "RSA-OAEP-256" => WrapAlgorithm::RsaOaepSha256,
            other => {
                return Err(refused(format!(
                    "key wrap algorithm {other:?} (RSA-OAEP and RSA-OAEP-256 are read)"
                )))
            }
        };
        let key_id = text_at(&["WrappedContentKey", "KeyId"])?;
        if key_id.is_empty() || key_id.len() > usize::from(MAX_KID_LEN) {
            return Err(refused("a KeyId of 1 to 1024 bytes".to_owned()));
        }
        let wrapped = Base64::decode_vec(text_at(&["WrappedContentKey", "EncryptedKey"])?)
            .map_err(|_| refused("EncryptedKey is not base64".to_owned()))?;
        let slot = KeySlot::new(key_id.to_owned(), algorithm, wrapped)
            .map_err(|e| refused(format!("the wrapped key: {e}")))?;
        let number = |path: &[&str]| -> Result<u64> {
            field(path)
                .and_then(Value::as_u64)
                .ok_or_else(|| refused(format!("no {}", path.join("."))))
        };
        let region_len = number(&["EncryptedRegionInfo", "DataLength"])?;
        if region_len == 0 || region_len > MAX_REGION_LEN {
            return Err(refused(format!(
                "regions of {region_len} bytes (1 to {MAX_REGION_LEN} are read)"
            )));
        }
        let nonce_len = number(&["EncryptedRegionInfo", "NonceLength"])?;
        if nonce_len != NONCE_LEN {
            return Err(refused(format!("{nonce_len}-byte nonces (12 are read)")));
        }
        Ok(Self {
            protocol,
            slot,
            region_len,
            document,
        })
    }

    /// What the wrapped key holds before the content key: the protocol, padded to 8 bytes.
    pub(crate) fn key_prefix(&self) -> [u8; 8] {
        let mut prefix = [0u8; 8];
        for (place, byte) in prefix.iter_mut().zip(self.protocol.bytes()) {
            *place = byte;
        }
        prefix
    }

    /// A header that describes the blob's one key slot, for what chooses keys by kid (it is
    /// never written anywhere).
    pub(crate) fn describing_header(&self) -> Result<crate::format::Header> {
        let preamble = crate::format::Preamble::new(
            crate::format::limits::DEFAULT_SEGMENT_SIZE,
            [0; 32],
            [0; 32],
        )?;
        Ok(crate::format::Header::new(
            preamble,
            vec![self.slot.clone()],
        )?)
    }

    /// Bytes of one whole region on the wire.
    pub(crate) fn region_wire_len(&self) -> u64 {
        NONCE_LEN + self.region_len + TAG_LEN
    }

    /// The plaintext length of a body of `wire_len` bytes, or why it is not one.
    pub(crate) fn plaintext_len(&self, wire_len: u64) -> Result<u64> {
        let whole = wire_len / self.region_wire_len();
        let rest = wire_len % self.region_wire_len();
        if rest != 0 && rest <= NONCE_LEN + TAG_LEN {
            return Err(Error::DecryptionFailed);
        }
        Ok(whole * self.region_len + rest.saturating_sub(NONCE_LEN + TAG_LEN))
    }

    /// The same document with `slot` as its wrapped key.
    pub(crate) fn with_slot(&self, slot: &KeySlot) -> Result<String> {
        let mut document = self.document.clone();
        let key = document
            .get_mut("WrappedContentKey")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| refused("no WrappedContentKey".to_owned()))?;
        key.insert("KeyId".to_owned(), Value::from(slot.kid()));
        key.insert(
            "EncryptedKey".to_owned(),
            Value::from(Base64::encode_string(slot.wrapped())),
        );
        key.insert("Algorithm".to_owned(), Value::from(slot.algorithm().name()));
        serde_json::to_string(&document).map_err(|e| refused(e.to_string()))
    }
}

/// The nonce encodings of the SDKs that write v2 (the Python SDK's list): Python counts
/// from 0, big-endian over all 12 bytes; Java from 0, big-endian in the first 8 bytes;
/// .NET from 1, little-endian in the last 8.
const ENCODINGS: [fn(u64) -> [u8; 12]; 3] = [
    |index| {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&index.to_be_bytes());
        nonce
    },
    |index| {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_be_bytes());
        nonce
    },
    |index| {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&index.wrapping_add(1).to_le_bytes());
        nonce
    },
];

/// Opens regions one at a time, holding to one nonce encoding for the whole blob.
pub(crate) struct RegionOpener {
    cipher: Box<dyn SegmentCipher>,
    /// Which of [`ENCODINGS`] every region so far agreed with.
    candidates: [bool; 3],
}

impl RegionOpener {
    pub(crate) fn new(provider: Provider, content_key: &crate::DataKey) -> Result<Self> {
        let cipher = provider
            .ops()
            .aes256_gcm(content_key.expose_secret())
            .map_err(|_| Error::Backend {
                backend: provider.name(),
                message: "AES-256-GCM key setup failed".to_owned(),
            })?;
        Ok(Self {
            cipher,
            candidates: [true; 3],
        })
    }

    /// Verifies and decrypts region `index` (`wire`: nonce ‖ ciphertext ‖ tag) into `out`.
    /// A nonce that is not the region's own, or a tag that does not verify, is
    /// [`Error::DecryptionFailed`], and `out` is left empty.
    pub(crate) fn open(&mut self, index: u64, wire: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let (nonce, rest) = wire
            .split_first_chunk::<12>()
            .ok_or(Error::DecryptionFailed)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<16>()
            .ok_or(Error::DecryptionFailed)?;
        for (candidate, encode) in self.candidates.iter_mut().zip(ENCODINGS) {
            *candidate = *candidate && encode(index) == *nonce;
        }
        if !self.candidates.iter().any(|c| *c) {
            return Err(Error::DecryptionFailed);
        }
        out.resize(ciphertext.len(), 0);
        if self
            .cipher
            .open_to(nonce, &[], ciphertext, tag, out)
            .is_err()
        {
            zeroize::Zeroize::zeroize(out);
            return Err(Error::DecryptionFailed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON_V2: &str = r#"{"WrappedContentKey": {"KeyId": "local:orders/0123456789abcdef0123456789abcdef", "EncryptedKey": "AAAA", "Algorithm": "RSA-OAEP"}, "EncryptionAgent": {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"}, "EncryptedRegionInfo": {"DataLength": 4194304, "NonceLength": 12}, "KeyWrappingMetadata": {"EncryptionLibrary": "Python 12.31.1"}}"#;

    #[test]
    fn python_v2_data_is_read_and_rewritten_with_only_the_key_changed() {
        let data = CseData::parse(PYTHON_V2).expect("parse");
        assert_eq!(data.protocol, "2.0");
        assert_eq!(&data.key_prefix(), b"2.0\0\0\0\0\0");
        assert_eq!(data.region_len, 4 << 20);
        assert_eq!(data.slot.algorithm(), WrapAlgorithm::RsaOaepSha1);
        let slot = KeySlot::new(
            "local:orders/1".into(),
            WrapAlgorithm::RsaOaepSha256,
            vec![1; 256],
        )
        .expect("slot");
        let again = CseData::parse(&data.with_slot(&slot).expect("write")).expect("parse");
        assert_eq!(again.slot, slot);
        assert!(again.document["KeyWrappingMetadata"].is_object());
    }

    #[test]
    fn anything_unknown_is_refused() {
        for (from, to) in [
            (r#""Protocol": "2.0""#, r#""Protocol": "1.0""#),
            (r#""Protocol": "2.0""#, r#""Protocol": "3.0""#),
            (r#""AES_GCM_256""#, r#""AES_CBC_256""#),
            (r#""RSA-OAEP""#, r#""A256KW""#),
            (r#""NonceLength": 12"#, r#""NonceLength": 16"#),
            (r#""DataLength": 4194304"#, r#""DataLength": 0"#),
            (r#""DataLength": 4194304"#, r#""DataLength": 16777217"#),
            (r#""EncryptedKey": "AAAA""#, r#""EncryptedKey": "!!""#),
        ] {
            let text = PYTHON_V2.replace(from, to);
            assert!(
                matches!(CseData::parse(&text), Err(Error::InvalidArgument(_))),
                "{to}"
            );
        }
        assert!(CseData::parse("{").is_err());
        assert!(CseData::parse(&"x".repeat(10_000)).is_err());
    }

    #[test]
    fn lengths_of_bodies() {
        let data = CseData::parse(&PYTHON_V2.replace("4194304", "100")).expect("parse");
        assert_eq!(data.plaintext_len(0).expect("empty"), 0);
        assert_eq!(data.plaintext_len(128).expect("one"), 100);
        assert_eq!(data.plaintext_len(128 + 29).expect("one and 1"), 101);
        assert!(data.plaintext_len(128 + 28).is_err());
    }
}
