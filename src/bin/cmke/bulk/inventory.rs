//! `cmke inventory`: what is under which key version, from headers alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use cmk_envelope::Error;
use cmk_envelope::Result;
use serde::Serialize;

use crate::bulk::inventory_records::{self, StoreReport};
use crate::bulk::walk::{self, Found, Kind, Temp};
use crate::cli::escape;
use crate::cli::shard::Shard;
use crate::keys::report::{current_versions, group_by_key, stale_and_unknown, KeyReport};
use crate::keys::sources::{key_of, KeySources};

#[derive(Default, Serialize)]
struct VersionCount {
    kid: String,
    objects: u64,
    bytes: u64,
    current: bool,
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

#[derive(Serialize)]
struct ClientSideObject {
    path: PathBuf,
    /// "2.0" or "2.1".
    protocol: &'static str,
    key_id: String,
    algorithm: cmk_envelope::format::WrapAlgorithm,
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
    /// Blobs of the Azure Storage SDKs' client-side encryption v2 (counted above with the
    /// envelopes, under their `KeyId`): their format, key and algorithm.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    client_side_encryption: Vec<ClientSideObject>,
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

/// Reads the headers of every file under `paths` and asks each key named for its current
/// version; a blob container URL among `paths` is a branch store, whose records are listed
/// per CMK version.
///
/// # Errors
/// [`Error::Io`] for a path that cannot be walked; a store that cannot be listed; a file
/// that cannot be read is listed as corrupt with the reason.
pub async fn take(
    sources: &KeySources,
    paths: &[PathBuf],
    shard: Option<Shard>,
) -> crate::cli::failure::Result<Inventory> {
    use crate::keys::names::{is_blob_container, is_named_store};
    let mut inventory = Inventory::default();
    let named_store = sources.branch_store.as_deref();
    let mut files = Vec::new();
    let mut containers = Vec::new();
    for path in paths {
        match path.to_str() {
            Some(text) if is_named_store(text, named_store) => inventory
                .branch_stores
                .push(inventory_records::take(sources, text).await?),
            Some(text) if is_blob_container(text, named_store) => containers.push(text.to_owned()),
            _ => files.push(path.clone()),
        }
    }
    if containers.is_empty() && shard.is_some() {
        return Err(crate::cli::failure::UsageError::new(
            "--shard splits a blob container's listing; name a container".to_owned(),
        )
        .into());
    }
    let paths = files;
    let mut per_kid: BTreeMap<String, VersionCount> = BTreeMap::new();
    let mut objects: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for url in &containers {
        blob_headers(
            sources,
            url,
            shard,
            &mut inventory,
            &mut per_kid,
            &mut objects,
        )
        .await?;
    }
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
                count_envelope(
                    &mut inventory,
                    &mut per_kid,
                    &mut objects,
                    path,
                    &header,
                    len,
                );
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

/// Counts one envelope under each key version its slots name.
fn count_envelope(
    inventory: &mut Inventory,
    per_kid: &mut BTreeMap<String, VersionCount>,
    objects: &mut Vec<(PathBuf, Vec<String>)>,
    path: PathBuf,
    header: &cmk_envelope::format::Header,
    len: u64,
) {
    inventory.objects += 1;
    inventory.bytes = inventory.bytes.saturating_add(len);
    let mut kids: Vec<String> = header.slots().iter().map(|s| s.kid().to_owned()).collect();
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

/// The headers of the blobs under `url` (in `shard`), a few at once, each blob's URL in
/// place of a path: the same report as for files.
#[cfg(feature = "azure-blob")]
async fn blob_headers(
    sources: &KeySources,
    url: &str,
    shard: Option<Shard>,
    inventory: &mut Inventory,
    per_kid: &mut BTreeMap<String, VersionCount>,
    objects: &mut Vec<(PathBuf, Vec<String>)>,
) -> crate::cli::failure::Result<()> {
    use futures::StreamExt;
    const HEADS_AT_ONCE: usize = 16;
    let (container, prefix) = crate::bulk::blobs::open_container(sources, url)?;
    let mut heads = container
        .list(&prefix)
        .filter(|entry| {
            std::future::ready(match entry {
                Ok(entry) => shard.is_none_or(|s| s.holds(&entry.name)),
                Err(_) => true,
            })
        })
        .map(|entry| {
            let container = std::sync::Arc::clone(&container);
            async move {
                let entry = entry?;
                let head = if entry.block_blob {
                    container.head(&entry.name).await
                } else {
                    Err(Error::Malformed(cmk_envelope::format::Malformed::BadMagic))
                };
                Ok::<_, Error>((container.blob_url(&entry.name), entry.len, head))
            }
        })
        .buffered(HEADS_AT_ONCE);
    while let Some(item) = heads.next().await {
        let (shown, len, head) = match item {
            Ok(item) => item,
            Err(error) => {
                inventory.unreadable.push(Corrupt {
                    path: PathBuf::from(url),
                    error: error.to_string(),
                });
                break;
            }
        };
        let path = PathBuf::from(shown);
        match head {
            Ok(head) => {
                if let (Some(protocol), Some(slot)) =
                    (head.client_side_encryption(), head.header().slots().first())
                {
                    inventory.client_side_encryption.push(ClientSideObject {
                        path: path.clone(),
                        protocol,
                        key_id: slot.kid().to_owned(),
                        algorithm: slot.algorithm(),
                    });
                }
                count_envelope(inventory, per_kid, objects, path, head.header(), len)
            }
            // As for files: no magic, not ours; the magic and a bad header, corrupt.
            Err(Error::Malformed(cmk_envelope::format::Malformed::BadMagic)) => {
                inventory.not_cmke.push(Foreign { path, bytes: len })
            }
            Err(Error::Malformed(_)) if len < cmk_envelope::format::MAGIC.len() as u64 => {
                inventory.not_cmke.push(Foreign { path, bytes: len })
            }
            Err(error) => inventory.corrupt.push(Corrupt {
                path,
                error: error.to_string(),
            }),
        }
    }
    Ok(())
}

#[cfg(not(feature = "azure-blob"))]
async fn blob_headers(
    _: &KeySources,
    url: &str,
    _: Option<Shard>,
    _: &mut Inventory,
    _: &mut BTreeMap<String, VersionCount>,
    _: &mut Vec<(PathBuf, Vec<String>)>,
) -> crate::cli::failure::Result<()> {
    Err(crate::cli::failure::UsageError::new(format!(
        "{url} is a blob container, and this cmke was built without feature `azure-blob`"
    ))
    .into())
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
