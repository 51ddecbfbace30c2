//! `cmke encrypt`, `decrypt` and `inspect`: one object at a time.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use cmk_envelope::format::Header;
use cmk_envelope::stream::{into_cmk_error, read_header_bytes};
use cmk_envelope::{Envelope, Error};

use crate::cli::args::{DecryptArgs, EncryptArgs, InspectArgs};
use crate::cli::escape;
use crate::cli::failure::{Result, UsageError};
use crate::cli::io::{io_error, open_input, write_output, Output};
use crate::keys::sources::KeySources;

/// Output files hold ciphertext or plaintext: readable by the owner only.
const OUTPUT_MODE: u32 = 0o600;

/// `cmke encrypt`.
pub async fn encrypt(sources: &KeySources, args: EncryptArgs) -> Result<ExitCode> {
    let provider = sources.provider;
    let EncryptArgs {
        key,
        also_keys,
        aad,
        segment_size,
        output,
        input,
    } = args;
    let wrapper = sources.named_key(&key).await?;
    let mut builder = Envelope::builder().seal_with(wrapper);
    for also in &also_keys {
        builder = builder.also_seal_with(sources.named_key(also).await?);
    }
    let envelope = builder
        .provider(provider)
        .segment_size(segment_size)
        .build()?;
    if let Some(url) = blob_url(output.as_deref())? {
        #[cfg(feature = "azure-blob")]
        super::blob::encrypt(sources, &envelope, &input, aad.as_bytes(), url).await?;
        #[cfg(not(feature = "azure-blob"))]
        let _ = url;
        return Ok(ExitCode::SUCCESS);
    }
    let source = open_input(&input, true)?;
    let out = Output::create(output.as_deref(), OUTPUT_MODE)?;
    let mut writer = envelope.seal_writer(out, aad.as_bytes()).await?;
    writer.copy_from(source).map_err(into_cmk_error)?;
    writer.finish().map_err(into_cmk_error)?.commit()?;
    Ok(ExitCode::SUCCESS)
}

/// `cmke decrypt`.
pub async fn decrypt(sources: &KeySources, args: DecryptArgs) -> Result<ExitCode> {
    let DecryptArgs {
        aad,
        range,
        output,
        input,
    } = args;
    if let Some(url) = blob_url(Some(&input))? {
        #[cfg(feature = "azure-blob")]
        {
            let info = super::blob::decrypt(
                sources,
                url,
                aad.as_bytes(),
                range,
                output.as_deref(),
                OUTPUT_MODE,
            )
            .await?;
            note_if_stale(&info, &input);
        }
        #[cfg(not(feature = "azure-blob"))]
        let _ = (url, range);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(range) = range {
        if input == Path::new("-") {
            return Err(UsageError::new(
                "--range reads only the segments it needs: give a file, not stdin".to_owned(),
            )
            .into());
        }
        let mut file = std::fs::File::open(&input).map_err(|e| io_error(&input, e))?;
        let header = read_header_bytes(&mut file)?;
        let envelope = sources
            .pool_noting_stale()
            .envelope_for(&Header::parse_detached(&header)?)
            .await?;
        let opened = envelope.open_range(file, aad.as_bytes(), range).await?;
        write_output(output.as_deref(), opened.plaintext(), OUTPUT_MODE)?;
        note_if_stale(opened.info(), &input);
        return Ok(ExitCode::SUCCESS);
    }
    // The header first, to learn which keys (keyring or vault) the slots name; then
    // the whole envelope, header included, through the stream reader.
    let mut source = open_input(&input, true)?;
    let header = read_header_bytes(&mut source)?;
    let envelope = sources
        .pool_noting_stale()
        .envelope_for(&Header::parse_detached(&header)?)
        .await?;
    let source = std::io::Cursor::new(header).chain(source);
    let mut reader = envelope.open_reader(source, aad.as_bytes()).await?;
    let mut out = Output::create(output.as_deref(), OUTPUT_MODE)?;
    reader.copy_to(&mut out)?;
    out.commit()?;
    note_if_stale(reader.info(), &input);
    Ok(ExitCode::SUCCESS)
}

/// `cmke inspect`.
pub async fn inspect(sources: &KeySources, args: InspectArgs) -> Result<ExitCode> {
    let InspectArgs { input } = args;
    if let Some(url) = blob_url(Some(&input))? {
        #[cfg(feature = "azure-blob")]
        println!("{}", to_json(&super::blob::inspect(sources, url).await?)?);
        #[cfg(not(feature = "azure-blob"))]
        let _ = (url, sources);
        return Ok(ExitCode::SUCCESS);
    }
    // A file: only its header is read. A pipe: the rest is counted, not kept.
    let info = if input == Path::new("-") {
        cmk_envelope::inspect::inspect_stream(std::io::stdin().lock())?
    } else {
        let file = std::fs::File::open(&input).map_err(|e| io_error(&input, e))?;
        cmk_envelope::inspect::inspect_reader(file)?
    };
    let json = to_json(&info)?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    Ok(
        serde_json::to_string_pretty(value).map_err(|e| Error::Backend {
            backend: "json",
            message: e.to_string(),
        })?,
    )
}

/// A blob URL given where a file may be: `Some(url)`; a usage error when this cmke was
/// built without feature `azure-blob`.
fn blob_url(path: Option<&Path>) -> Result<Option<&str>> {
    let Some(url) = path
        .and_then(Path::to_str)
        .filter(|text| text.starts_with("https://"))
    else {
        return Ok(None);
    };
    if cfg!(feature = "azure-blob") {
        Ok(Some(url))
    } else {
        Err(UsageError::new(format!(
            "{url} is a blob URL, and this cmke was built without feature `azure-blob`"
        ))
        .into())
    }
}

/// Tells the operator when an object is under an old version of its key (any backend: the
/// library's open says so).
fn note_if_stale(info: &cmk_envelope::OpenInfo, input: &Path) {
    if !info.is_stale() {
        return;
    }
    let shown = escape::path(input);
    let to = info.rewrapped().map_or_else(
        || "its current version".to_owned(),
        |r| escape::text(r.to_kid()).into_owned(),
    );
    eprintln!(
        "cmke: note: {shown} is wrapped under an old key version ({}); \
         `cmke rewrap {shown}` moves it to {to}",
        escape::text(info.kid()),
    );
}
