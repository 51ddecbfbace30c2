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
        aad,
        segment_size,
        output,
        input,
    } = args;
    let wrapper = sources.named_key(&key).await?;
    let envelope = Envelope::builder()
        .seal_with(wrapper)
        .provider(provider)
        .segment_size(segment_size)
        .build()?;
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
pub async fn inspect(args: InspectArgs) -> Result<ExitCode> {
    let InspectArgs { input } = args;
    // A file: only its header is read. A pipe: the rest is counted, not kept.
    let info = if input == Path::new("-") {
        cmk_envelope::inspect::inspect_stream(std::io::stdin().lock())?
    } else {
        let file = std::fs::File::open(&input).map_err(|e| io_error(&input, e))?;
        cmk_envelope::inspect::inspect_reader(file)?
    };
    let json = serde_json::to_string_pretty(&info).map_err(|e| Error::Backend {
        backend: "json",
        message: e.to_string(),
    })?;
    println!("{json}");
    Ok(ExitCode::SUCCESS)
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
