//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cmke",
    version,
    about = "Envelope encryption under customer-managed keys (CMKE v1)",
    after_help = "Exit codes: 0 ok, 1 usage or I/O, 2 malformed input or decryption failure, \
                  3 key or permission problem.\n\nExample:\n  cmke --keyring ./keys key create orders\n  \
                  cmke --keyring ./keys encrypt --key orders --aad tenant=42 -o a.cmke a.txt\n  \
                  cmke --keyring ./keys decrypt --aad tenant=42 a.cmke"
)]
pub struct Cli {
    /// Software keyring directory.
    #[arg(
        long,
        global = true,
        env = "CMKE_KEYRING",
        default_value = "cmke-keyring"
    )]
    pub keyring: PathBuf,

    /// Crypto provider.
    #[arg(long, global = true, value_enum, default_value_t = ProviderChoice::Default)]
    pub provider: ProviderChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ProviderChoice {
    /// aws-lc when compiled in, else rustcrypto.
    Default,
    /// aws-lc-rs.
    AwsLc,
    /// RustCrypto.
    Rustcrypto,
}

#[derive(Subcommand)]
pub enum Command {
    /// Manage keys in the software keyring.
    #[command(subcommand)]
    Key(KeyCommand),

    /// Encrypt a file (or stdin) under a fresh data key wrapped by KEY's current version.
    #[command(
        after_help = "Example:\n  cmke encrypt --key orders --aad tenant=42 -o report.cmke report.pdf\n  \
                            tar c dir | cmke encrypt --key orders > dir.tar.cmke"
    )]
    Encrypt {
        /// Key name in the keyring.
        #[arg(long)]
        key: String,
        /// Associated data: authenticated, not stored; needed again to decrypt.
        #[arg(long, default_value = "")]
        aad: String,
        /// Plaintext bytes per segment (64 ..= 67108864).
        #[arg(long, default_value_t = 65536)]
        segment_size: u32,
        /// Output file (default stdout). Written atomically.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Input file, or - for stdin.
        #[arg(default_value = "-")]
        input: PathBuf,
    },

    /// Decrypt an envelope. Nothing is written unless every segment verifies.
    #[command(after_help = "Example:\n  cmke decrypt --aad tenant=42 -o report.pdf report.cmke")]
    Decrypt {
        /// Associated data given at encryption.
        #[arg(long, default_value = "")]
        aad: String,
        /// Output file (default stdout). Written atomically.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Input file, or - for stdin.
        #[arg(default_value = "-")]
        input: PathBuf,
    },

    /// Describe an envelope or header as JSON, without any key.
    #[command(after_help = "Example:\n  cmke inspect report.cmke | jq '.slots[].kid'")]
    Inspect {
        /// Input file, or - for stdin.
        #[arg(default_value = "-")]
        input: PathBuf,
    },

    /// Re-wrap files in place to the current key version (or to --to KEY): only the header
    /// changes; each file is replaced atomically.
    #[command(after_help = "Example:\n  cmke key rotate orders\n  cmke rewrap data/*.cmke")]
    Rewrap {
        /// Move to this key's current version instead of the current version of the key that
        /// wrapped each file.
        #[arg(long)]
        to: Option<String>,
        /// Envelope files (attached or detached headers).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key (RSA-2048) and its first version.
    #[command(after_help = "Example:\n  cmke --keyring ./keys key create orders")]
    Create {
        /// Key name: 1 to 127 of [A-Za-z0-9-].
        name: String,
        /// Key size: 2048, or 3072 / 4096 (an opt-in beyond Azure's CMK size).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// Add a new version and make it current; old versions stay.
    #[command(after_help = "Example:\n  cmke key rotate orders && cmke rewrap data/*.cmke")]
    Rotate {
        /// Key name.
        name: String,
    },
    /// List keys, their current kid and versions.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Import a PKCS#8 PEM RSA private key as the new current version of NAME.
    #[command(
        after_help = "Example:\n  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k.pem\n  \
                            cmke key import orders k.pem"
    )]
    Import {
        /// Key name (created if new).
        name: String,
        /// PEM file (-----BEGIN PRIVATE KEY-----), or - for stdin.
        file: PathBuf,
        /// Accept RSA-3072 and RSA-4096 as well as 2048.
        #[arg(long)]
        allow_large: bool,
    },
}
