//! Branch key records: a branch key sealed as an ordinary CMKE envelope under a CMK.
//!
//! The associated data is `"CMKE v1 branch key" ‖ 0x00 ‖ branch kid`, so a record copied
//! over another version's file, or under another branch name, does not open. A record is
//! wrapped by a CMK (an RSA slot), never by another branch key.

use zeroize::Zeroizing;

use super::BranchKey;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::format::Header;
use crate::kid::BranchKid;

const RECORD_AAD_LABEL: &[u8] = b"CMKE v1 branch key\0";

/// The associated data a record of `kid` is sealed with.
pub(crate) fn record_aad(kid: &BranchKid) -> Vec<u8> {
    let mut aad = RECORD_AAD_LABEL.to_vec();
    aad.extend_from_slice(kid.to_string().as_bytes());
    aad
}

/// Seals `key` as the record of `kid` with `records` (an envelope that seals under the CMK).
pub(crate) async fn seal_record(
    records: &Envelope,
    kid: &BranchKid,
    key: &BranchKey,
) -> Result<Vec<u8>> {
    records.seal(key.expose_secret(), &record_aad(kid)).await
}

/// Refuses a record any of whose slots is not a CMK's (a branch key wrapping a branch key).
pub(crate) fn check_record_slots(kid: &BranchKid, record: &[u8]) -> Result<()> {
    let (header, _) = Header::parse_prefix(record)?;
    match header
        .slots()
        .iter()
        .find(|slot| !slot.algorithm().is_rsa())
    {
        Some(slot) => Err(Error::PolicyRefused(format!(
            "the record of {kid} is wrapped by {} ({}): a branch key record must be wrapped \
             by a customer-managed key, never by another branch key",
            slot.kid(),
            slot.algorithm().name()
        ))),
        None => Ok(()),
    }
}

/// Opens the record of `kid` with `records` (an envelope that opens with the CMK): one
/// unwrap by the CMK's wrapper.
pub(crate) async fn open_record(
    records: &Envelope,
    kid: &BranchKid,
    record: &[u8],
) -> Result<BranchKey> {
    check_record_slots(kid, record)?;
    let mut plaintext = Zeroizing::new(Vec::new());
    records
        .open_into(record, &record_aad(kid), &mut plaintext)
        .await?;
    BranchKey::from_slice(&plaintext).ok_or_else(|| {
        Error::InvalidKey(format!(
            "the record of {kid} holds {} bytes, not a {}-byte branch key",
            plaintext.len(),
            super::BRANCH_KEY_LEN
        ))
    })
}
