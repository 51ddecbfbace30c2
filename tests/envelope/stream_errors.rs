//! The stream adapters speak `std::io` (and tokio's `AsyncRead`), so their failures travel
//! inside an `io::Error`. `?` into the crate's `Error` must give them back as themselves:
//! tampering is `DecryptionFailed` on every path, never a retryable I/O error.

use crate::support;
use std::io::{Cursor, Read};

use cmk_envelope::crypto::Provider;
use cmk_envelope::{Envelope, Error};
use support::block_on;

/// Three segments of 64 KiB and a bit, with one body byte flipped in the last one.
fn tampered(envelope: &Envelope) -> Vec<u8> {
    let plaintext = vec![7u8; 3 * 65_536 + 100];
    let mut sealed = block_on(envelope.seal(&plaintext, b"")).expect("seal");
    let last = sealed.len() - 40;
    sealed[last] ^= 0x01;
    sealed
}

fn read_to_end(envelope: &Envelope, sealed: Vec<u8>) -> Result<Vec<u8>, Error> {
    let mut reader = block_on(envelope.open_reader(Cursor::new(sealed), b""))?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

fn copy_to(envelope: &Envelope, sealed: Vec<u8>) -> Result<u64, Error> {
    let mut reader = block_on(envelope.open_reader(Cursor::new(sealed), b""))?;
    Ok(reader.copy_to(std::io::sink())?)
}

#[test]
fn tampering_read_through_every_std_io_path_is_decryption_failed_with_question_mark() {
    let keyring = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keyring.key, Provider::default(), 65_536);
    let sealed = tampered(&envelope);
    assert!(matches!(
        read_to_end(&envelope, sealed.clone()),
        Err(Error::DecryptionFailed)
    ));
    assert!(matches!(
        copy_to(&envelope, sealed.clone()),
        Err(Error::DecryptionFailed)
    ));
    // Cut short after the first segment: the missing end is a failed decryption too.
    let cut = sealed[..sealed.len() - 2 * 65_536].to_vec();
    assert!(matches!(
        read_to_end(&envelope, cut),
        Err(Error::DecryptionFailed)
    ));
}

#[test]
fn a_plain_io_failure_stays_an_io_error() {
    let error: Error = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe closed").into();
    assert!(
        matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe),
        "{error:?}"
    );
}

#[cfg(feature = "tokio")]
#[test]
fn tampering_read_through_the_async_reader_is_decryption_failed_with_question_mark() {
    use tokio::io::AsyncReadExt;

    let keyring = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keyring.key, Provider::default(), 65_536);
    let sealed = tampered(&envelope);
    let opened: Result<Vec<u8>, Error> = block_on(async {
        let mut reader = envelope.open_async_reader(Cursor::new(sealed), b"").await?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await?;
        Ok(out)
    });
    assert!(matches!(opened, Err(Error::DecryptionFailed)), "{opened:?}");
}

/// `?` from the crate's results inside a function that returns `io::Result`.
fn open_in_io_code(envelope: &Envelope, sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    let opened = block_on(envelope.open(sealed, b""))?;
    Ok(opened.plaintext().to_vec())
}

#[test]
fn question_mark_in_io_code_gives_meaningful_kinds_and_keeps_the_crate_error() {
    let keyring = support::temp_keyring(Provider::default());
    let envelope = support::envelope_for(&keyring.key, Provider::default(), 65_536);
    let sealed = block_on(envelope.seal(b"row", b"")).expect("seal");
    assert_eq!(open_in_io_code(&envelope, &sealed).expect("opens"), b"row");

    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let error = open_in_io_code(&envelope, &tampered).expect_err("tampered");
    // The same kind as the stream readers give.
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    // `source()` is the crate's error, and its message the crate's.
    use std::error::Error as _;
    assert!(error.source().is_some_and(|inner| matches!(
        inner.downcast_ref::<Error>(),
        Some(Error::DecryptionFailed)
    )));
    assert_eq!(error.to_string(), Error::DecryptionFailed.to_string());
    assert!(matches!(Error::from(error), Error::DecryptionFailed));

    for (crate_error, kind) in [
        (
            Error::AccessDenied {
                kid: "k".into(),
                detail: String::new(),
            },
            std::io::ErrorKind::PermissionDenied,
        ),
        (
            Error::KeyNotFound {
                kid: "k".into(),
                detail: String::new(),
            },
            std::io::ErrorKind::NotFound,
        ),
        (
            Error::Throttled {
                kid: "k".into(),
                detail: String::new(),
                retry_after: None,
            },
            std::io::ErrorKind::ResourceBusy,
        ),
        (
            Error::InvalidArgument("x".into()),
            std::io::ErrorKind::InvalidInput,
        ),
    ] {
        let io = std::io::Error::from(crate_error);
        assert_eq!(io.kind(), kind);
        let inner = std::error::Error::source(&io).expect("the crate's error inside");
        assert!(inner.is::<Error>());
    }
    // An I/O error without a path comes back as itself.
    let plain = std::io::Error::from(Error::from(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "cut",
    )));
    assert_eq!(plain.kind(), std::io::ErrorKind::UnexpectedEof);
    assert!(std::error::Error::source(&plain).is_none());
}
