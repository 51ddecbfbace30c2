//! `cmke inventory URL`: a blob-container branch store's records per CMK version. (A
//! directory store is walked like any tree: its records are envelopes, counted per CMK
//! version in the ordinary table.)

use std::collections::{BTreeMap, BTreeSet};

use cmk_envelope::branch::BranchWrapper;
use cmk_envelope::kid::BRANCH_KID_PREFIX;
use cmk_envelope::Result;
use serde::Serialize;

use crate::cli::escape;
use crate::keys::report::{current_versions, group_by_key, stale_and_unknown, KeyReport};
use crate::keys::sources::{key_of, KeySources};

#[derive(Serialize)]
struct RecordCount {
    kid: String,
    records: u64,
    current: bool,
}

/// One store, as `--json` prints it.
#[derive(Serialize)]
pub struct StoreReport {
    store: String,
    records: u64,
    cmk_keys: Vec<KeyReport<RecordCount>>,
    /// Branch versions whose record is not under its CMK's current version: `cmke rewrap
    /// URL` re-wraps them.
    stale_records: Vec<String>,
    /// Branch versions whose CMKs could not be asked for their current version.
    unknown_records: Vec<String>,
    /// Branch versions whose record cannot be read or does not parse.
    unreadable_records: Vec<String>,
}

impl StoreReport {
    /// Whether a record could not be read (exit code 2, as for a corrupt header).
    pub fn has_unreadable(&self) -> bool {
        !self.unreadable_records.is_empty()
    }
}

/// Lists every record of the store at `location` with the CMK kids its slots name, and asks
/// each CMK (of the operator's keyring or the services the operator allows) for its current
/// version. Nothing is unwrapped.
///
/// # Errors
/// The store's errors (access denied, not found, unavailable) when it cannot be listed.
pub async fn take(sources: &KeySources, location: &str) -> Result<StoreReport> {
    let store = sources.store_at(location, false)?;
    let listings = BranchWrapper::list(store.as_ref()).await?;
    let mut per_kid: BTreeMap<String, u64> = BTreeMap::new();
    let mut records: Vec<(String, Vec<String>)> = Vec::new();
    let mut unreadable_records = Vec::new();
    for branch in &listings {
        for (version, cmk_kids) in &branch.versions {
            let kid = format!("{BRANCH_KID_PREFIX}{}/{version}", branch.name);
            if cmk_kids.is_empty() {
                unreadable_records.push(kid);
                continue;
            }
            for cmk_kid in cmk_kids {
                *per_kid.entry(cmk_kid.clone()).or_default() += 1;
            }
            records.push((kid, cmk_kids.clone()));
        }
    }
    let keys: BTreeSet<String> = per_kid.keys().map(|k| key_of(k)).collect();
    let current = current_versions(sources, keys).await;
    let record_count = records.len();
    let (stale_records, unknown_records) = stale_and_unknown(records, &current);
    Ok(StoreReport {
        store: location.to_owned(),
        records: u64::try_from(record_count + unreadable_records.len()).unwrap_or(u64::MAX),
        cmk_keys: group_by_key(per_kid, &current, |kid, records, current| RecordCount {
            kid,
            records,
            current,
        }),
        stale_records,
        unknown_records,
        unreadable_records,
    })
}

/// The table an operator reads, after the objects'.
pub fn to_table(report: &StoreReport) -> String {
    let mut out = format!(
        "\nbranch store {}: {} records\n{:<72} {:>10}\n",
        escape::text(&report.store),
        report.records,
        "CMK / VERSION",
        "RECORDS"
    );
    for key in &report.cmk_keys {
        out.push_str(&key.heading());
        for version in key.versions() {
            out.push_str(&format!(
                "  {:<70} {:>10}  {}\n",
                escape::text(&version.kid),
                version.records,
                key.mark(version.current)
            ));
        }
    }
    for kid in &report.stale_records {
        out.push_str(&format!(
            "record under an old CMK version: {}\n",
            escape::text(kid)
        ));
    }
    for kid in &report.unknown_records {
        out.push_str(&format!(
            "record whose CMK could not be asked: {}\n",
            escape::text(kid)
        ));
    }
    for kid in &report.unreadable_records {
        out.push_str(&format!(
            "record that cannot be read: {}\n",
            escape::text(kid)
        ));
    }
    if !report.stale_records.is_empty() {
        out.push_str(&format!(
            "`cmke rewrap {}` re-wraps the old records; objects are not touched.\n",
            escape::text(&report.store)
        ));
    }
    out
}
