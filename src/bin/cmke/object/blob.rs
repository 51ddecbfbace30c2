//! `cmke encrypt -o URL`, `decrypt URL` and `inspect URL`: one object in Azure Blob
//! Storage, through `cmk_envelope::blob` and the operator's `--azure-credential`.

use std::io::Write;
use std::path::Path;

use cmk_envelope::blob::UploadOptions;
use cmk_envelope::format::Header;
use cmk_envelope::{Envelope, Error};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::cli::failure::{Result, UsageError};
use crate::cli::io::{io_error, write_output, Output};
use crate::keys::sources::KeySources;

/// A blob URL names a blob, not only a container.
fn container_and_name(
    sources: &KeySources,
    url: &str,
) -> Result<(cmk_envelope::blob::BlobContainer, String)> {
    let (container, name) = crate::keys::vault::blob_container(url, sources.azure_credential)?;
    if name.is_empty() {
        return Err(UsageError::new(format!(
            "{url} names a container; name a blob in it (…/CONTAINER/NAME)"
        ))
        .into());
    }
    Ok((container, name))
}

/// Seals `input` (a file or `-`) into blob `url`; an existing blob is not replaced.
pub async fn encrypt(
    sources: &KeySources,
    envelope: &Envelope,
    input: &Path,
    aad: &[u8],
    url: &str,
) -> Result<()> {
    let (container, name) = container_and_name(sources, url)?;
    let source: Box<dyn AsyncRead + Unpin + Send> = if input == Path::new("-") {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(input)
                .await
                .map_err(|e| io_error(input, e))?,
        )
    };
    container
        .upload(envelope, &name, source, aad, UploadOptions::default())
        .await?;
    Ok(())
}

/// Opens blob `url` (a range of it, with `range`) into `output` (a file or stdout).
pub async fn decrypt(
    sources: &KeySources,
    url: &str,
    aad: &[u8],
    range: Option<std::ops::Range<u64>>,
    output: Option<&Path>,
    mode: u32,
) -> Result<cmk_envelope::OpenInfo> {
    let (container, name) = container_and_name(sources, url)?;
    let header = container.read_header(&name).await?;
    let envelope = sources
        .pool_noting_stale()
        .envelope_for(&Header::parse_detached(&header)?)
        .await?;
    if let Some(range) = range {
        let opened = container
            .download_range(&envelope, &name, aad, range)
            .await?;
        write_output(output, opened.plaintext(), mode)?;
        return Ok(opened.info().clone());
    }
    let mut reader = container.download(&envelope, &name, aad).await?;
    let mut out = Output::create(output, mode)?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).await.map_err(Error::from)?;
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n]).map_err(Error::from)?;
    }
    out.commit()?;
    Ok(reader.info().clone())
}

/// Describes blob `url` from its header and length.
pub async fn inspect(sources: &KeySources, url: &str) -> Result<cmk_envelope::blob::BlobInfo> {
    let (container, name) = container_and_name(sources, url)?;
    Ok(container.inspect(&name).await?)
}
