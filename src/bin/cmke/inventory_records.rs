//! `cmke inventory URL`: a blob-container branch store's records per CMK version. (A
//! directory store is walked like any tree: its records are envelopes, counted per CMK
//! version in the ordinary table.)

use std::collections::{BTreeMap, BTreeSet};

use cmk_envelope::branch::{BranchWrapper, BRANCH_KID_PREFIX};
use cmk_envelope::Result;
use serde::Serialize;

use crate::escape;
use crate::inventory::{current_versions, CurrentVersions};
use crate::sources::{key_of, KeySources};

#[derive(Serialize)]
struct RecordCount {
    kid: String,
    records: u64,
    current: bool,
}

#[derive(Serialize)]
struct CmkReport {
    key: String,
    /// Null when the key could not be asked (see `current_error`).
    current_kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_error: Option<String>,
    versions: Vec<RecordCount>,
}

/// One store, as `--json` prints it.
#[derive(Serialize)]
pub struct StoreReport {
    store: String,
    records: u64,
    cmk_keys: Vec<CmkReport>,
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
    let (stale_records, unknown_records) = sort_records(&records, &current);
    Ok(StoreReport {
        store: location.to_owned(),
        records: u64::try_from(records.len() + unreadable_records.len()).unwrap_or(u64::MAX),
        cmk_keys: per_key(per_kid, &current),
        stale_records,
        unknown_records,
        unreadable_records,
    })
}

/// The records under an old CMK version, and those whose CMKs could not be asked.
fn sort_records(
    records: &[(String, Vec<String>)],
    current: &CurrentVersions,
) -> (Vec<String>, Vec<String>) {
    let (mut stale, mut unknown) = (Vec::new(), Vec::new());
    for (kid, cmk_kids) in records {
        let mut is_stale = false;
        let mut is_unknown = false;
        for cmk_kid in cmk_kids {
            match current.get(&key_of(cmk_kid)) {
                Some(Ok(now)) => is_stale |= now != cmk_kid,
                _ => is_unknown = true,
            }
        }
        if is_stale {
            stale.push(kid.clone());
        } else if is_unknown {
            unknown.push(kid.clone());
        }
    }
    (stale, unknown)
}

fn per_key(per_kid: BTreeMap<String, u64>, current: &CurrentVersions) -> Vec<CmkReport> {
    let mut keys: BTreeMap<String, CmkReport> = BTreeMap::new();
    for (kid, records) in per_kid {
        let key = key_of(&kid);
        let answer = current.get(&key);
        let is_current = matches!(answer, Some(Ok(now)) if *now == kid);
        keys.entry(key.clone())
            .or_insert_with(|| CmkReport {
                key,
                current_kid: answer.and_then(|a| a.as_ref().ok().cloned()),
                current_error: answer.and_then(|a| a.as_ref().err().cloned()),
                versions: Vec::new(),
            })
            .versions
            .push(RecordCount {
                kid,
                records,
                current: is_current,
            });
    }
    keys.into_values().collect()
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
        let status = match (&key.current_kid, &key.current_error) {
            (Some(now), _) => format!("current: {}", escape::text(now)),
            (None, Some(why)) => format!("current version unknown: {}", escape::text(why)),
            (None, None) => String::new(),
        };
        out.push_str(&format!("{}  ({status})\n", escape::text(&key.key)));
        for version in &key.versions {
            let mark = if version.current {
                "current"
            } else if key.current_kid.is_some() {
                "OLD"
            } else {
                "?"
            };
            out.push_str(&format!(
                "  {:<70} {:>10}  {mark}\n",
                escape::text(&version.kid),
                version.records
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
