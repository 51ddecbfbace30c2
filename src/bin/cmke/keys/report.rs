//! One key's report, shared by the objects' inventory and the branch store's: its current
//! version (asked once per key), the counts per version, and the split into stale and
//! unknown.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::cli::escape;
use crate::keys::sources::{key_of, KeySources};

/// One key with its current version and a count per version: of objects here, of branch
/// records in `inventory_records`.
#[derive(Serialize)]
pub struct KeyReport<V> {
    key: String,
    /// Null when the key could not be asked (see `current_error`).
    current_kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_error: Option<String>,
    versions: Vec<V>,
}

impl<V> KeyReport<V> {
    /// The key's line of the table: its name and current version, or why it is unknown.
    pub fn heading(&self) -> String {
        let status = match (&self.current_kid, &self.current_error) {
            (Some(now), _) => format!("current: {}", escape::text(now)),
            (None, Some(why)) => format!("current version unknown: {}", escape::text(why)),
            (None, None) => String::new(),
        };
        format!("{}  ({status})\n", escape::text(&self.key))
    }

    /// The mark of a version's line: current, old, or unknown when the key was not asked.
    pub fn mark(&self, current: bool) -> &'static str {
        if current {
            "current"
        } else if self.current_kid.is_some() {
            "OLD"
        } else {
            "?"
        }
    }

    /// The counts per version.
    pub fn versions(&self) -> &[V] {
        &self.versions
    }
}

/// Groups counts per kid into keys: `version(kid, count, is_current)` makes each version's
/// entry.
pub fn group_by_key<C, V>(
    per_kid: BTreeMap<String, C>,
    current: &CurrentVersions,
    version: impl Fn(String, C, bool) -> V,
) -> Vec<KeyReport<V>> {
    let mut keys: BTreeMap<String, KeyReport<V>> = BTreeMap::new();
    for (kid, count) in per_kid {
        let key = key_of(&kid);
        let answer = current.get(&key);
        let is_current = matches!(answer, Some(Ok(now)) if *now == kid);
        keys.entry(key.clone())
            .or_insert_with(|| KeyReport {
                key,
                current_kid: answer.and_then(|a| a.as_ref().ok().cloned()),
                current_error: answer.and_then(|a| a.as_ref().err().cloned()),
                versions: Vec::new(),
            })
            .versions
            .push(version(kid, count, is_current));
    }
    keys.into_values().collect()
}

/// Splits `items` (each with the kids of its slots) into those with a slot under an old
/// version and those, otherwise current, with a key that could not be asked.
pub fn stale_and_unknown<T>(
    items: Vec<(T, Vec<String>)>,
    current: &CurrentVersions,
) -> (Vec<T>, Vec<T>) {
    let (mut stale, mut unknown) = (Vec::new(), Vec::new());
    for (item, kids) in items {
        let mut is_stale = false;
        let mut is_unknown = false;
        for kid in &kids {
            match current.get(&key_of(kid)) {
                Some(Ok(now)) => is_stale |= now != kid,
                _ => is_unknown = true,
            }
        }
        if is_stale {
            stale.push(item);
        } else if is_unknown {
            unknown.push(item);
        }
    }
    (stale, unknown)
}

/// Each key's current version, or why it could not be asked.
pub type CurrentVersions = BTreeMap<String, std::result::Result<String, String>>;

/// Asks every key in `keys` for its current version: one question per key, the keys asked
/// together (bounded by the pool), so that one slow or unreachable service does not hold
/// up the others.
pub async fn current_versions(sources: &KeySources, keys: BTreeSet<String>) -> CurrentVersions {
    let pool = sources.pool();
    let mut asking = tokio::task::JoinSet::new();
    for key in keys {
        let pool = std::sync::Arc::clone(&pool);
        asking.spawn(async move {
            let answer = pool.current_kid_of(&key).await.map_err(|e| e.to_string());
            (key, answer)
        });
    }
    let mut current = CurrentVersions::new();
    while let Some(done) = asking.join_next().await {
        if let Ok((key, answer)) = done {
            current.insert(key, answer);
        }
    }
    current
}
