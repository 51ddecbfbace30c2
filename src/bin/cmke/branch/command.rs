//! Branch keys in cmke: the store the operator names, the CMK of a record reached only
//! through the operator's keyring and the services the operator allows, and the `branch`
//! commands.

use std::process::ExitCode;
use std::sync::Arc;

use cmk_envelope::branch::{BranchStore, BranchWrapper, DirectoryStore, RecordKeys};
use cmk_envelope::format::Header;
use cmk_envelope::kid::{KeyName, Kid, BRANCH_KID_PREFIX};
use cmk_envelope::{Error, KeyWrapper};

use crate::cli::args::BranchCommand;
use crate::cli::escape;
use crate::cli::failure::{Result, UsageError};
pub use crate::keys::names::{branch_name_in, is_store_url};
use crate::keys::sources::KeySources;

impl KeySources {
    /// The branch key store the operator named (`--branch-store`, `CMKE_BRANCH_STORE` or
    /// `branch_store` in cmke.toml); `create` makes a missing directory.
    ///
    /// # Errors
    /// [`UsageError`] when none is named; as [`KeySources::store_at`].
    pub fn branch_store(&self, create: bool) -> Result<Arc<dyn BranchStore>> {
        let Some(store) = self.branch_store.as_deref() else {
            return Err(UsageError::new(
                "branch keys need a store: name it with --branch-store DIR|URL, \
                 CMKE_BRANCH_STORE or branch_store in cmke.toml"
                    .to_owned(),
            )
            .into());
        };
        self.store_at(store, create)
    }

    /// The store at `location`, a directory or a blob container URL the operator named
    /// (its requests carry the `--azure-credential` token); `create` makes a missing
    /// directory (a container must exist).
    ///
    /// # Errors
    /// [`UsageError`] for another kind of URL, or a container URL in a cmke
    /// built without feature `azure-blob`; the store's own errors.
    pub fn store_at(&self, location: &str, create: bool) -> Result<Arc<dyn BranchStore>> {
        if is_store_url(location) {
            return crate::keys::vault::blob_store(location, self.azure_credential);
        }
        if location.contains("://") {
            return Err(UsageError::new(format!(
                "{}: a branch store is a directory or an https:// blob container URL",
                cmk_envelope::redact::urls(location)
            ))
            .into());
        }
        Ok(Arc::new(if create {
            DirectoryStore::create(location)?
        } else {
            DirectoryStore::open(location)?
        }))
    }

    /// The branch key `name`, its records opened by the CMK its current record names: a key
    /// of the operator's keyring, or of a vault or token the operator allows. A record
    /// naming any other service is refused before any call.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when the store has no such branch key; [`Error::NoKeyForKid`]
    /// when its record names a service that is not allowed; the CMK's errors.
    pub async fn branch_key(&self, name: &str) -> Result<Arc<BranchWrapper>> {
        self.branch_wrapper(name, None).await.map(Arc::new)
    }

    /// The branch key `name`, whose own CMK (for sealing and new versions) is the one its
    /// current record names. When `current` or its record cannot be used, any other
    /// readable record names it, so that objects under their own, sound records still open
    /// (sealing still refuses, with the reason). Records under other CMKs (versions made
    /// before a `branch rotate --cmk`) open through `record_keys`.
    pub async fn branch_wrapper(
        &self,
        name: &str,
        record_keys: Option<Arc<dyn RecordKeys>>,
    ) -> Result<BranchWrapper> {
        let store = self.branch_store(false)?;
        let key_name = KeyName::new(name)?;
        let mut candidates = Vec::new();
        let mut first_failure = None;
        match store.read_current(&key_name).await {
            Ok(current) => candidates.push(current.version),
            // Access refused, the service down: the listing would fail the same way.
            Err(
                e @ (Error::AccessDenied { .. }
                | Error::Unavailable { .. }
                | Error::Throttled { .. }),
            ) => return Err(e.into()),
            Err(e) => first_failure = Some(e),
        }
        for version in store.versions(&key_name).await?.into_iter().rev() {
            if !candidates.contains(&version) {
                candidates.push(version);
            }
        }
        for version in candidates {
            match self
                .cmk_of_record(store.as_ref(), name, &key_name, &version)
                .await
            {
                Ok(cmk) => {
                    let mut wrapper =
                        BranchWrapper::new(Arc::clone(&store), name, cmk)?.provider(self.provider);
                    if let Some(keys) = record_keys {
                        wrapper = wrapper.record_keys(keys);
                    }
                    return Ok(wrapper);
                }
                Err(e) => {
                    first_failure.get_or_insert(e.into());
                }
            }
        }
        Err(first_failure
            .unwrap_or_else(|| Error::KeyNotFound {
                kid: format!("{BRANCH_KID_PREFIX}{name}"),
                detail: format!("no record in {}", store.location()),
            })
            .into())
    }

    /// The CMK the record of `version` names, within the operator's allowlist.
    async fn cmk_of_record(
        &self,
        store: &dyn BranchStore,
        name: &str,
        key_name: &KeyName,
        version: &cmk_envelope::kid::KeyVersion,
    ) -> Result<Arc<dyn KeyWrapper>> {
        let record = store.read_record(key_name, version).await?;
        let (header, _) = Header::parse_prefix(&record.bytes)?;
        let kids: Vec<&str> = header.slots().iter().map(|s| s.kid()).collect();
        let allowed = kids.iter().find(|kid| self.allowlist().allows(kid));
        let Some(cmk_kid) = allowed else {
            return Err(Error::NoKeyForKid {
                kids: kids
                    .iter()
                    .map(|kid| match self.allowlist().refusal(kid) {
                        Some(why) => format!("{kid} (the CMK of branch:{name}; {why})"),
                        None => (*kid).to_owned(),
                    })
                    .collect(),
            }
            .into());
        };
        self.cmk_named_by(cmk_kid).await
    }

    /// The CMK a record's (allowed) slot names: the key, not the version, so that records
    /// under any of its versions open and new records go under its current one.
    async fn cmk_named_by(&self, kid: &str) -> Result<Arc<dyn KeyWrapper>> {
        match Kid::parse(kid) {
            parsed @ (Kid::Local(_) | Kid::KeyVault { .. } | Kid::Pkcs11 { .. }) => {
                self.service_key(&parsed.key()).await
            }
            _ => Err(Error::NoKeyForKid {
                kids: vec![format!("{kid} (not a CMK this cmke can use for a record)")],
            }
            .into()),
        }
    }
}

/// `cmke rewrap URL` after a CMK rotation: re-wraps every record of the store whose CMK
/// slot is not under its key's current version, each through the CMK its own slots name
/// (and the operator allows). Objects are not touched. Every record is tried; the first
/// failure is returned after the rest, each failure said on stderr.
pub async fn rewrap_store(sources: &KeySources, location: &str) -> Result<ExitCode> {
    let store = sources.store_at(location, false)?;
    let pool = sources.pool();
    let (mut rewrapped, mut current, mut first_failure) = (0_usize, 0_usize, None);
    for name in store.names().await? {
        // One bad branch key (a refused directory) is reported; the others go on.
        let versions = match store.versions(&name).await {
            Ok(versions) => versions,
            Err(e) => {
                eprintln!(
                    "cmke: {BRANCH_KID_PREFIX}{name}: {}",
                    escape::text(&e.to_string())
                );
                first_failure.get_or_insert(e);
                continue;
            }
        };
        for version in versions {
            let kid = format!("{BRANCH_KID_PREFIX}{name}/{version}");
            let outcome = async {
                let record = store.read_record(&name, &version).await?;
                let (header, _) = Header::parse_prefix(&record.bytes)?;
                let envelope = pool.envelope_for(&header).await?;
                BranchWrapper::rewrap_record(store.as_ref(), &name, &version, &envelope).await
            }
            .await;
            match outcome {
                Ok(Some(cmk_kid)) => {
                    rewrapped += 1;
                    println!("{kid}: record re-wrapped under {}", escape::text(&cmk_kid));
                }
                Ok(None) => current += 1,
                Err(e) => {
                    eprintln!("cmke: {kid}: {}", escape::text(&e.to_string()));
                    first_failure.get_or_insert(e);
                }
            }
        }
    }
    eprintln!(
        "cmke: {}: {rewrapped} records re-wrapped, {current} already current",
        escape::text(location)
    );
    match first_failure {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}

pub async fn branch_command(sources: &KeySources, command: BranchCommand) -> Result<ExitCode> {
    match command {
        BranchCommand::Create {
            name,
            cmk,
            also_cmks,
        } => {
            let cmk = operator_cmk(sources, &cmk).await?;
            let store = sources.branch_store(true)?;
            let mut wrapper = BranchWrapper::new(store, &name, cmk)?.provider(sources.provider);
            for also in &also_cmks {
                wrapper = wrapper.also_seal_records_with(operator_cmk(sources, also).await?);
            }
            let wrapper = wrapper.create_first_version().await?;
            println!("{}", wrapper.current_kid().await?);
        }
        BranchCommand::Rotate {
            name,
            cmk,
            also_cmks,
        } => {
            let wrapper = match cmk {
                Some(cmk) => {
                    let mut wrapper = BranchWrapper::new(
                        sources.branch_store(false)?,
                        &name,
                        operator_cmk(sources, &cmk).await?,
                    )?
                    .provider(sources.provider);
                    for also in &also_cmks {
                        wrapper =
                            wrapper.also_seal_records_with(operator_cmk(sources, also).await?);
                    }
                    Arc::new(wrapper)
                }
                None => sources.branch_key(&name).await?,
            };
            println!("{}", wrapper.rotate().await?);
        }
        BranchCommand::List { json } => {
            let store = sources.branch_store(false)?;
            let listings = BranchWrapper::list(store.as_ref()).await?;
            if json {
                let value: Vec<serde_json::Value> = listings
                    .iter()
                    .map(|branch| {
                        serde_json::json!({
                            "name": branch.name.as_str(),
                            "current_kid": branch.current.as_ref()
                                .map(|v| format!("{BRANCH_KID_PREFIX}{}/{v}", branch.name)),
                            "versions": branch.versions.iter().map(|(version, cmk_kids)| {
                                serde_json::json!({
                                    "kid": format!("{BRANCH_KID_PREFIX}{}/{version}", branch.name),
                                    "cmk_kids": cmk_kids,
                                })
                            }).collect::<Vec<_>>(),
                            "problems": branch.problems,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).map_err(|e| Error::Backend {
                        backend: "json",
                        message: e.to_string(),
                    })?
                );
            } else {
                for branch in &listings {
                    let current = branch.current.as_ref().map(ToString::to_string);
                    println!(
                        "{}  current {}  ({} versions)",
                        branch.name,
                        current.as_deref().unwrap_or("(none)"),
                        branch.versions.len()
                    );
                    for (version, cmk_kids) in &branch.versions {
                        let mark = if Some(version) == branch.current.as_ref() {
                            "*"
                        } else {
                            " "
                        };
                        println!(
                            "  {mark} {version}  record under {}",
                            escape::text(&cmk_kids.join(", "))
                        );
                    }
                    for problem in &branch.problems {
                        println!("  ! {}", escape::text(problem));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A CMK the operator named with `--cmk`: any key but a branch key (a record is wrapped by
/// a customer-managed key, never by another branch key).
async fn operator_cmk(sources: &KeySources, key: &str) -> Result<Arc<dyn KeyWrapper>> {
    if branch_name_in(key).is_some() {
        return Err(Error::PolicyRefused(format!(
            "--cmk {key}: a branch key's records are wrapped by a customer-managed key, never \
             by another branch key"
        ))
        .into());
    }
    sources.service_key(key).await
}
