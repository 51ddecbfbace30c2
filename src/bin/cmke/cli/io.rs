//! Inputs and outputs: `-` is stdin/stdout; output files appear atomically or not at all;
//! devices and FIFOs are written in place.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, IsTerminal, Read, Stdout, Write};
use std::path::Path;

use cmk_envelope::Error;
use cmk_envelope::Result;

pub use crate::cli::io_error::io_error;
use cmk_envelope::trust::AtomicFile;
use indicatif::{ProgressBar, ProgressStyle};

/// Output buffers are no larger than a default segment, so a whole segment goes straight
/// through to the file or pipe and only small writes are gathered.
const OUTPUT_BUFFER: usize = 64 << 10;

/// Inputs larger than this get a progress bar when stderr is a terminal.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;

fn is_stdio(path: &Path) -> bool {
    path == Path::new("-")
}

/// A device, FIFO or socket (following symlinks); directories are left to fail on rename.
fn is_existing_non_regular_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    open_input(path, false)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// A buffered reader over the file or stdin, with a progress bar on a terminal for large
/// files.
pub fn open_input(path: &Path, progress: bool) -> Result<Box<dyn Read + Send>> {
    if is_stdio(path) {
        return Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            std::io::stdin(),
        )));
    }
    // Unbuffered: the callers read in blocks of a segment or more, and a buffer would only
    // add a copy.
    let reader = File::open(path).map_err(|e| io_error(path, e))?;
    let len = reader.metadata().map(|m| m.len()).unwrap_or(0);
    if progress && len >= PROGRESS_MIN_BYTES && std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        return Ok(Box::new(bar.wrap_read(reader)));
    }
    Ok(Box::new(reader))
}

/// Where output goes: stdout or a device as it is produced, or a file that appears only on
/// commit.
pub enum Output {
    Stdout(BufWriter<Stdout>),
    Device(BufWriter<File>),
    File(BufWriter<AtomicFile>),
}

impl Output {
    pub fn create(path: Option<&Path>, mode: u32) -> Result<Self> {
        match path {
            Some(p) if is_stdio(p) => Ok(Output::Stdout(BufWriter::with_capacity(
                OUTPUT_BUFFER,
                std::io::stdout(),
            ))),
            // Renaming a temporary file over `/dev/null` or a FIFO would replace the device
            // itself (as root, for every program on the machine), so these are written in
            // place, like stdout.
            Some(p) if is_existing_non_regular_file(p) => {
                let device = OpenOptions::new()
                    .write(true)
                    .open(p)
                    .map_err(|e| io_error(p, e))?;
                Ok(Output::Device(BufWriter::with_capacity(
                    OUTPUT_BUFFER,
                    device,
                )))
            }
            Some(p) => Ok(Output::File(BufWriter::with_capacity(
                OUTPUT_BUFFER,
                AtomicFile::create(p, mode)?,
            ))),
            None => Ok(Output::Stdout(BufWriter::with_capacity(
                OUTPUT_BUFFER,
                std::io::stdout(),
            ))),
        }
    }

    /// Flushes, and for a file makes it appear at its path.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::Stdout(mut out) => Ok(out.flush()?),
            Output::Device(mut out) => Ok(out.flush()?),
            Output::File(out) => out
                .into_inner()
                .map_err(|e| Error::from(e.into_error()))?
                .commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::Device(w) => w.write(buf),
            Output::File(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::Device(w) => w.flush(),
            Output::File(w) => w.flush(),
        }
    }
}

/// Writes the whole output at once: to stdout, or atomically to a file.
pub fn write_output(path: Option<&Path>, bytes: &[u8], mode: u32) -> Result<()> {
    let mut out = Output::create(path, mode)?;
    out.write_all(bytes)?;
    out.commit()
}
