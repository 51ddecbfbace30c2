//! `cmke inventory`: what is under which key version, from headers alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cmk_envelope::{Error, Result};
use serde::Serialize;

use crate::escape;
use crate::inventory_records::{self, StoreReport};
use crate::sources::{key_of, KeySources};
use crate::walk::{self, Found, Kind, Temp};

#[derive(Default, Serialize)]
struct VersionCount {
    kid: String,
    objects: u64,
    bytes: u64,
    current: bool,
}

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

#[derive(Serialize)]
struct Foreign {
    path: PathBuf,
    bytes: u64,
}

#[derive(Serialize)]
struct Corrupt {
    path: PathBuf,
    error: String,
}

/// The whole inventory, as `--json` prints it.
#[derive(Default, Serialize)]
pub struct Inventory {
    objects: u64,
    bytes: u64,
    keys: Vec<KeyReport<VersionCount>>,
    /// Objects with a slot not under its key's current version.
    stale: Vec<PathBuf>,
    /// Objects whose keys could not be asked for their current version.
    unknown: Vec<PathBuf>,
    not_cmke: Vec<Foreign>,
    corrupt: Vec<Corrupt>,
    /// Paths and directories that could not be walked (unreadable, too deep): everything
    /// else was still counted (exit code 1 when nothing worse was found).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unreadable: Vec<Corrupt>,
    /// Leftovers of an interrupted cmke (the next rewrap removes them).
    stale_temporary_files: Vec<PathBuf>,
    /// Named like temporary files but not provably cmke's: never removed.
    temporary_lookalikes: Vec<PathBuf>,
    /// Symlinks inside the trees: not followed.
    symlinks: Vec<PathBuf>,
    /// Blob-container branch stores named on the command line: records per CMK version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    branch_stores: Vec<StoreReport>,
}

impl Inventory {
    /// Whether a path or directory could not be walked (exit code 1).
    pub fn has_unreadable(&self) -> bool {
        !self.unreadable.is_empty()
    }

    /// Whether a corrupt header or an unreadable branch record was found (exit code 2).
    pub fn has_corrupt(&self) -> bool {
        !self.corrupt.is_empty() || self.branch_stores.iter().any(StoreReport::has_unreadable)
    }
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

/// Reads the headers of every file under `paths` and asks each key named for its current
/// version; a blob container URL among `paths` is a branch store, whose records are listed
/// per CMK version.
///
/// # Errors
/// [`Error::Io`] for a path that cannot be walked; a store that cannot be listed; a file
/// that cannot be read is listed as corrupt with the reason.
pub async fn take(sources: &KeySources, paths: &[PathBuf]) -> Result<Inventory> {
    let mut inventory = Inventory::default();
    let (stores, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = paths
        .iter()
        .partition(|path| path.to_str().is_some_and(crate::branches::is_store_url));
    for store in stores {
        let location = store.to_str().unwrap_or_default();
        inventory
            .branch_stores
            .push(inventory_records::take(sources, location).await?);
    }
    let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
    let mut per_kid: BTreeMap<String, VersionCount> = BTreeMap::new();
    let mut objects: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for found in walk::files_under(&paths) {
        let path = match found {
            Found::Symlink(path) => {
                inventory.symlinks.push(path);
                continue;
            }
            Found::Unreadable(path, error) => {
                inventory.unreadable.push(Corrupt {
                    path,
                    error: error.to_string(),
                });
                continue;
            }
            Found::File(path) => path,
        };
        match walk::temp_status(&path) {
            Temp::No => {}
            Temp::OursStale => {
                inventory.stale_temporary_files.push(path);
                continue;
            }
            Temp::LeftAlone(_) => {
                inventory.temporary_lookalikes.push(path);
                continue;
            }
        }
        match walk::classify(&path) {
            Ok(Kind::Envelope { header, len, .. }) => {
                inventory.objects += 1;
                inventory.bytes = inventory.bytes.saturating_add(len);
                let mut kids: Vec<String> =
                    header.slots().iter().map(|s| s.kid().to_owned()).collect();
                kids.dedup();
                for kid in &kids {
                    let count = per_kid.entry(kid.clone()).or_insert_with(|| VersionCount {
                        kid: kid.clone(),
                        ..VersionCount::default()
                    });
                    count.objects += 1;
                    count.bytes = count.bytes.saturating_add(len);
                }
                objects.push((path, kids));
            }
            Ok(Kind::Foreign { len }) => inventory.not_cmke.push(Foreign { path, bytes: len }),
            Ok(Kind::Corrupt { error }) => inventory.corrupt.push(Corrupt {
                path,
                error: error.to_string(),
            }),
            Err(error) => inventory.corrupt.push(Corrupt {
                path,
                error: error.to_string(),
            }),
        }
    }

    // One question per key, not per object.
    let keys: BTreeSet<String> = per_kid.keys().map(|k| key_of(k)).collect();
    let current = current_versions(sources, keys).await;
    (inventory.stale, inventory.unknown) = stale_and_unknown(objects, &current);
    inventory.keys = group_by_key(per_kid, &current, |_, mut count: VersionCount, current| {
        count.current = current;
        count
    });
    Ok(inventory)
}

/// `--json`.
pub fn to_json(inventory: &Inventory) -> Result<String> {
    serde_json::to_string_pretty(inventory).map_err(|e| Error::Backend {
        backend: "json",
        message: e.to_string(),
    })
}

/// `--stale`: one path per line.
pub fn stale_paths(inventory: &Inventory) -> String {
    inventory
        .stale
        .iter()
        .map(|p| format!("{}\n", escape::path(p)))
        .collect()
}

/// The table an operator reads.
pub fn to_table(inventory: &Inventory) -> String {
    let only_stores = inventory.objects == 0
        && inventory.not_cmke.is_empty()
        && inventory.corrupt.is_empty()
        && !inventory.branch_stores.is_empty();
    if only_stores {
        return inventory
            .branch_stores
            .iter()
            .map(inventory_records::to_table)
            .collect::<String>()
            .trim_start()
            .to_owned();
    }
    let mut out = format!(
        "{:<72} {:>10} {:>14}\n",
        "KEY / VERSION", "OBJECTS", "BYTES"
    );
    for key in &inventory.keys {
        out.push_str(&key.heading());
        for version in key.versions() {
            out.push_str(&format!(
                "  {:<70} {:>10} {:>14}  {}\n",
                escape::text(&version.kid),
                version.objects,
                version.bytes,
                key.mark(version.current)
            ));
        }
    }
    out.push_str(&format!(
        "\n{} objects, {} bytes; {} not under the current version{}; {} not CMKE; \
         {} corrupt headers{}\n",
        inventory.objects,
        inventory.bytes,
        inventory.stale.len(),
        if inventory.unknown.is_empty() {
            String::new()
        } else {
            format!(
                " ({} with keys that could not be asked)",
                inventory.unknown.len()
            )
        },
        inventory.not_cmke.len(),
        inventory.corrupt.len(),
        if inventory.stale_temporary_files.is_empty() {
            String::new()
        } else {
            format!(
                "; {} temporary files left by an interrupted cmke (the next rewrap removes them)",
                inventory.stale_temporary_files.len()
            )
        },
    ));
    for path in &inventory.temporary_lookalikes {
        out.push_str(&format!(
            "named like a temporary file, not provably cmke's (never removed): {}\n",
            escape::path(path)
        ));
    }
    for path in &inventory.symlinks {
        out.push_str(&format!(
            "symlink inside a tree, not followed: {}\n",
            escape::path(path)
        ));
    }
    for corrupt in &inventory.corrupt {
        out.push_str(&format!(
            "corrupt: {}: {}\n",
            escape::path(&corrupt.path),
            escape::text(&corrupt.error)
        ));
    }
    for unreadable in &inventory.unreadable {
        out.push_str(&format!(
            "not walked: {}: {}\n",
            escape::path(&unreadable.path),
            escape::text(&unreadable.error)
        ));
    }
    if !inventory.stale.is_empty() {
        out.push_str("`cmke rewrap` moves the old ones to the current versions; `cmke inventory --stale` lists them.\n");
    }
    for store in &inventory.branch_stores {
        out.push_str(&inventory_records::to_table(store));
    }
    out
}
