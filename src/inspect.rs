//! What a header says, without any key.

use serde::Serialize;

use crate::error::Result;
use crate::format::{BodyLayout, Header, Malformed, WrapAlgorithm};

/// A description of an envelope or detached header, for operators and audits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderInfo {
    /// Format version (1).
    pub format_version: u8,
    /// Cipher suite (1: AES-256-GCM, HKDF-SHA-256, key commitment).
    pub suite: &'static str,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// The random message id, hex.
    pub message_id: String,
    /// Header length in bytes.
    pub header_len: usize,
    /// The key slots.
    pub slots: Vec<SlotInfo>,
    /// The body, when the bytes include one (attached envelope).
    pub body: Option<BodyInfo>,
}

/// One key slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotInfo {
    /// The full kid.
    pub kid: String,
    /// The key version the kid names ([`Kid::version`](crate::kid::Kid::version)): a keyring or
    /// Key Vault version, a PKCS#11 `CKA_ID` in hex; `None` for a kid of another kind.
    pub version: Option<String>,
    /// The wrap algorithm.
    pub algorithm: WrapAlgorithm,
    /// Length of the wrapped key (the RSA modulus size in bytes).
    pub wrapped_len: usize,
}

/// The body's geometry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BodyInfo {
    /// Body length in bytes.
    pub len: u64,
    /// Number of segments.
    pub segments: u64,
    /// Plaintext length.
    pub plaintext_len: u64,
}

/// Describes an envelope (or a detached header) without any key: kids, versions,
/// algorithms, segment size and body geometry.
///
/// # Errors
/// [`Error::Malformed`](crate::Error::Malformed) when the header does not parse or an attached
/// body has an impossible length.
pub fn inspect(bytes: &[u8]) -> Result<HeaderInfo> {
    let (header, header_len) = Header::parse_prefix(bytes)?;
    describe(
        &header,
        header_len,
        bytes.len().saturating_sub(header_len) as u64,
    )
}

/// Describes the envelope in a file (or any `Read + Seek`) without reading its body: the
/// header is read field by field and the body's length taken from the end position.
///
/// # Errors
/// As [`inspect`]; [`Error::Io`](crate::Error::Io) when the source cannot be read.
pub fn inspect_reader(mut source: impl std::io::Read + std::io::Seek) -> Result<HeaderInfo> {
    use std::io::SeekFrom;
    source.seek(SeekFrom::Start(0))?;
    let (header, header_len) = crate::stream::read_header(&mut source)?;
    let end = source.seek(SeekFrom::End(0))?;
    describe(&header, header_len, end.saturating_sub(header_len as u64))
}

/// Describes the envelope a non-seekable stream (a pipe) yields, in constant memory: the
/// header is parsed and the rest only counted.
///
/// # Errors
/// As [`inspect`]; [`Error::Io`](crate::Error::Io) when the source cannot be read.
pub fn inspect_stream(mut source: impl std::io::Read) -> Result<HeaderInfo> {
    let (header, header_len) = crate::stream::read_header(&mut source)?;
    let body_len = std::io::copy(&mut source, &mut std::io::sink())?;
    describe(&header, header_len, body_len)
}

pub(crate) fn describe(header: &Header, header_len: usize, body_len: u64) -> Result<HeaderInfo> {
    let preamble = header.preamble();
    let body = if body_len == 0 {
        None
    } else {
        let layout =
            BodyLayout::for_ciphertext(preamble.segment_size(), body_len).map_err(|e| match e {
                Malformed::BodyMissing => Malformed::BodyLength,
                other => other,
            })?;
        Some(BodyInfo {
            len: body_len,
            segments: layout.segments(),
            plaintext_len: layout.plaintext_len(),
        })
    };
    Ok(HeaderInfo {
        format_version: crate::format::VERSION,
        suite: "AES-256-GCM/HKDF-SHA-256/commit",
        segment_size: preamble.segment_size(),
        message_id: hex(&preamble.message_id()),
        header_len,
        slots: header
            .slots()
            .iter()
            .map(|s| SlotInfo {
                kid: s.kid().to_owned(),
                version: crate::kid::Kid::parse(s.kid()).version(),
                algorithm: s.algorithm(),
                wrapped_len: s.wrapped().len(),
            })
            .collect(),
        body,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
