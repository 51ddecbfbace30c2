//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cmke",
    version,
    about = "Envelope encryption under customer-managed keys (CMKE v1)",
    after_help = "Exit codes: 0 ok, 1 usage or I/O, 2 malformed input or decryption failure, \
                  3 key or permission problem (do not retry: fix the key, the access or the login), \
                  4 transient: the key service throttled, timed out or could not be reached after \
                  the retries (retry later). For many files: the worst of them, where 4 counts only \
                  when every failure was transient.\n\n\
                  Keys: a keyring key name (orders, or local:orders), a Key Vault key URL \
                  (https://{vault}.vault.azure.net/keys/{name}) or a PKCS#11 key \
                  ('pkcs11:token={label};object={label}').\n\n\
                  Defaults for the global options can live in ~/.config/cmke/cmke.toml \
                  ($XDG_CONFIG_HOME/cmke/cmke.toml), or --config FILE / CMKE_CONFIG; never in the \
                  working directory. Flags and environment variables win over it. The default \
                  keyring is ~/.local/share/cmke/keyring ($XDG_DATA_HOME/cmke/keyring).\n\n\
                  Key services: cmke contacts only the keys named with --key/--to and the \
                  vaults and tokens allowed with --allow-vault, --allow-pkcs11-token (or vaults \
                  and pkcs11_tokens in the configuration). An envelope naming any other vault \
                  or token is treated as having no key (exit 3), with no call and no login.\n\n\
                  Example:\n  cmke --keyring ./keys key create orders\n  \
                  cmke --keyring ./keys encrypt --key orders --aad tenant=42 -o a.cmke a.txt\n  \
                  cmke --keyring ./keys decrypt --aad tenant=42 a.cmke\n  \
                  cmke --keyring ./keys key rotate orders && cmke --keyring ./keys rewrap data/"
)]
pub struct Cli {
    /// Configuration file [default: $XDG_CONFIG_HOME/cmke/cmke.toml, else
    /// ~/.config/cmke/cmke.toml, when it exists; never ./cmke.toml].
    #[arg(long, global = true, env = "CMKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// At the end, print on stderr the key-service calls by backend, key, operation and
    /// outcome, the data-key cache's events and the objects sealed and opened (one JSON
    /// object with `inventory --json`).
    #[arg(long, global = true)]
    pub stats: bool,

    /// Software keyring directory [default: $XDG_DATA_HOME/cmke/keyring, else
    /// ~/.local/share/cmke/keyring].
    #[arg(long, global = true, env = "CMKE_KEYRING")]
    pub keyring: Option<PathBuf>,

    /// A Key Vault or Managed HSM (https://{name}.vault.azure.net) whose keys envelopes may
    /// name; repeat for more. Its keys are used with your credential.
    #[arg(long, global = true, value_name = "URL")]
    pub allow_vault: Vec<String>,

    /// A PKCS#11 token (by label) whose keys envelopes may name; repeat for more. cmke logs
    /// in to it with your PIN.
    #[arg(long, global = true, value_name = "LABEL")]
    pub allow_pkcs11_token: Vec<String>,

    /// Crypto provider [default: default].
    #[arg(long, global = true, value_enum)]
    pub provider: Option<ProviderChoice>,

    /// How to get an Entra ID token for Key Vault keys (key URLs in --key and --to, and
    /// the vault keys an envelope names) [default: dev].
    #[arg(long, global = true, value_enum, env = "CMKE_AZURE_CREDENTIAL")]
    pub azure_credential: Option<AzureCredential>,

    /// The PKCS#11 module (.so) for pkcs11: keys. The user PIN is read from the file named
    /// by CMKE_PKCS11_PIN_FILE, else from CMKE_PKCS11_PIN; never from an argument.
    #[arg(long, global = true, env = "CMKE_PKCS11_MODULE")]
    pub pkcs11_module: Option<PathBuf>,

    /// At most N key-service operations per second for the whole run, across all jobs
    /// (Key Vault requests, retries included; PKCS#11 decryptions). A vault's throughput is
    /// shared with the applications that use it: a bulk rewrap or verify should leave them
    /// room. When the service throttles anyway, the whole run pauses together. [default: no
    /// limit]
    #[arg(long, global = true, value_name = "N", env = "CMKE_MAX_KEY_OPS")]
    pub max_key_ops: Option<std::num::NonZeroU32>,

    /// Objects with slots under several keys (`encrypt --also-key`): try the slots under
    /// these keys first, in the order given (for example your region's vault key), then
    /// the rest as written. Repeatable; the key's service must still be one this run may
    /// use [default: as written in each object].
    #[arg(long, global = true, value_name = "KEY")]
    pub prefer_key: Vec<String>,

    /// How long a key service that failed transiently (429, 5xx, timeout) is passed over
    /// for objects that have a slot under another key, in seconds (0: never passed over).
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        default_value_t = 30,
        env = "CMKE_FAILOVER_COOLDOWN"
    )]
    pub failover_cooldown: u64,

    /// The branch key store: a directory (DIR/{name}/{version}.cmke and DIR/{name}/current)
    /// or the https:// URL of an Azure Blob Storage container,
    /// ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX] (requests carry a token of
    /// --azure-credential). Needed for branch:NAME keys and for
    /// envelopes with branch slots [default: none, or branch_store in cmke.toml].
    #[arg(long, global = true, value_name = "DIR|URL", env = "CMKE_BRANCH_STORE")]
    pub branch_store: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderChoice {
    /// aws-lc when compiled in, else rustcrypto.
    Default,
    /// aws-lc-rs.
    AwsLc,
    /// RustCrypto.
    Rustcrypto,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureCredential {
    /// The developer's `az login` or `azd auth login`.
    Dev,
    /// The managed identity of the machine (user-assigned when AZURE_CLIENT_ID is set).
    Managed,
    /// Kubernetes workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID,
    /// AZURE_FEDERATED_TOKEN_FILE).
    Workload,
    /// A service principal with a client secret: AZURE_TENANT_ID, AZURE_CLIENT_ID, and the
    /// secret in AZURE_CLIENT_SECRET or in the file named by AZURE_CLIENT_SECRET_FILE
    /// (readable by you only). Never a flag.
    ClientSecret,
    /// A service principal with a certificate: AZURE_TENANT_ID, AZURE_CLIENT_ID,
    /// AZURE_CLIENT_CERTIFICATE_PATH (PKCS#12 with the private key, readable by you only),
    /// and its password, if any, in AZURE_CLIENT_CERTIFICATE_PASSWORD or the file named by
    /// AZURE_CLIENT_CERTIFICATE_PASSWORD_FILE.
    ClientCertificate,
    /// An Azure Pipelines service connection (workload identity federation):
    /// AZURESUBSCRIPTION_TENANT_ID, AZURESUBSCRIPTION_CLIENT_ID,
    /// AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, SYSTEM_ACCESSTOKEN and SYSTEM_OIDCREQUESTURI,
    /// as a pipeline task sets them.
    AzurePipelines,
}

#[derive(Subcommand)]
pub enum Command {
    /// Manage keys: in the software keyring, or (with a pkcs11: URI) in a PKCS#11 token.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
                      cmke key create orders\n  \
                      cmke key rotate orders && cmke rewrap data/\n  \
                      cmke key list\n  \
                      cmke key create 'pkcs11:token=prod-hsm;object=orders'"
    )]
    Key(KeyCommand),

    /// Manage branch keys: 32-byte keys kept in a store (--branch-store), each version's
    /// record wrapped by a CMK. Objects sealed under branch:NAME need one CMK unwrap per
    /// branch version per process (kept 5 minutes), not one per object.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
                      cmke --branch-store ./branches branch create orders --cmk orders-cmk\n  \
                      cmke --branch-store ./branches encrypt --key branch:orders -o a.cmke a.txt\n  \
                      cmke --branch-store ./branches branch rotate orders\n  \
                      cmke key rotate orders-cmk && cmke rewrap ./branches   # records only\n  \
                      cmke --branch-store ./branches branch list\n  \
                      cmke --azure-credential managed \\\n    \
                        --branch-store https://contoso.blob.core.windows.net/branch-keys branch list"
    )]
    Branch(BranchCommand),

    /// Encrypt a file (or stdin) under a fresh data key wrapped by KEY's current version,
    /// streaming in constant memory. With -o, the file appears only when complete.
    #[command(
        after_help = "Example:\n  cmke encrypt --key orders --aad tenant=42 -o report.cmke report.pdf\n  \
                            tar c dir | cmke encrypt --key orders > dir.tar.cmke"
    )]
    Encrypt(EncryptArgs),

    /// Decrypt an envelope, streaming in constant memory. With -o, the file appears only if
    /// every segment verifies; on stdout, each segment is written once verified, and a
    /// failure later (exit code 2) means the output is incomplete.
    #[command(
        after_help = "Example:\n  cmke decrypt --aad tenant=42 -o report.pdf report.cmke\n  \
                            cmke decrypt --range 1048576..1049600 big.cmke   # bytes [1 MiB, 1 MiB + 1 KiB)"
    )]
    Decrypt(DecryptArgs),

    /// Describe an envelope or header as JSON, without any key.
    #[command(after_help = "Example:\n  cmke inspect report.cmke | jq '.slots[].kid'")]
    Inspect(InspectArgs),

    /// Re-wrap envelopes in place, files or whole trees, to the current version of the key
    /// that wrapped each (or to --to KEY). Only headers change; each file is replaced
    /// atomically (temporary file, fsync, body compared with the original, rename), so an
    /// interrupted run leaves every file whole, and running it again finishes the job:
    /// files already current are skipped. Files that are not CMKE are left alone.
    #[command(after_help = "Examples:\n  \
                            cmke key rotate orders\n  \
                            cmke inventory data/                 # what is under which version\n  \
                            cmke rewrap --dry-run data/          # what would change\n  \
                            cmke rewrap data/                    # move everything to the current versions\n  \
                            cmke rewrap --to 'https://contoso.vault.azure.net/keys/orders' --jobs 16 data/\n  \
                            cmke rewrap --detached headers/      # header files kept beside their bodies\n\n\
                            Each file is read through one open file, and replaced only if its path still \
                            names that same unchanged file (else: changed during rewrap, left alone). \
                            Owner, group and mode are kept; set-ID files are refused, and so are files \
                            with several hard links unless --break-hard-links.\n\n\
                            Exit code: 0 when every file is current afterwards; else the worst failure \
                            (2 a corrupt or undecryptable file, 3 a key problem, 1 I/O, refused or \
                            changed during rewrap; 4 when every failure was transient).")]
    Rewrap(RewrapArgs),

    /// Count objects and bytes per key and key version, reading only headers. Marks objects
    /// not under their key's current version, files that are not CMKE, and corrupt headers.
    /// Objects under branch keys are counted per branch version; a branch store's records
    /// per CMK version (a blob container URL, or a directory store walked like any tree).
    #[command(after_help = "Examples:\n  \
                            cmke inventory data/\n  \
                            cmke inventory --json data/ archive/ | jq '.stale | length'\n  \
                            cmke inventory --stale data/ | xargs cmke rewrap   # list the stale files\n  \
                            cmke inventory branches/            # records per CMK version\n  \
                            cmke inventory https://acct.blob.core.windows.net/branches --azure-credential cli\n\n\
                            --stale lists files only; a store's records under an old CMK version are \
                            in the table and the JSON (`cmke rewrap STORE` re-wraps them).\n\
                            Exit code: 0, or 2 when a file has a corrupt header or a record cannot be read.")]
    Inventory(InventoryArgs),

    /// Open every envelope and discard the plaintext: proves each one still decrypts (keys
    /// reachable, nothing tampered with), for audits.
    #[command(after_help = "Examples:\n  \
                            cmke verify data/\n  \
                            cmke verify --aad tenant=42 a.cmke b.cmke\n\n\
                            cmke verify --detached --body-ext body headers/   # split.cmkh + split.body\n\n\
                            Prints one line per file (ok, or why not); symlinks named on the command \
                            line are followed, those inside a tree are listed and skipped. Exit code: \
                            0 when all open and at least one was verified; else the worst failure \
                            (2 tampered, corrupt or a header without its body, 3 a key problem, 1 I/O \
                            or nothing verified; 4 when every failure was transient).")]
    Verify(VerifyArgs),

    /// Print a shell completion script.
    #[command(after_help = "Examples:\n  \
                            cmke completions bash > /etc/bash_completion.d/cmke\n  \
                            cmke completions zsh > \"${fpath[1]}/_cmke\"\n  \
                            cmke completions fish > ~/.config/fish/completions/cmke.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What every command over many files takes.
#[derive(clap::Args)]
pub struct ManyFiles {
    /// Files at once [default: four per core, at least 8; or `jobs` in cmke.toml].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Memory for all jobs together, e.g. 512MiB [default: 256MiB; or `max_memory` in
    /// cmke.toml]. A file whose segments do not fit waits for room; one that could never
    /// fit fails alone.
    #[arg(long, value_parser = crate::cli::size::parse_size)]
    pub max_memory: Option<u64>,
    /// No line per file: only failures and the summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Only this shard of a blob container's listing, I/N with I from 0: a stable split by
    /// name hash, so N machines share one container with no coordinator.
    #[arg(long, value_name = "I/N", value_parser = crate::cli::shard::parse_shard)]
    pub shard: Option<crate::cli::shard::Shard>,
    /// Envelope files, directories to walk, or blob containers (an https URL:
    /// ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

fn parse_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?}: expected A..B, e.g. 0..4096"))?;
    let a: u64 = a
        .parse()
        .map_err(|_| format!("{a:?} is not a byte offset"))?;
    let b: u64 = b
        .parse()
        .map_err(|_| format!("{b:?} is not a byte offset"))?;
    if a > b {
        return Err(format!("{text}: the start is after the end"));
    }
    Ok(a..b)
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key (RSA-2048) and its first version.
    #[command(after_help = "Example:\n  cmke --keyring ./keys key create orders\n  \
                      export CMKE_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so CMKE_PKCS11_PIN_FILE=./pin\n  \
                      cmke key create 'pkcs11:token=prod-hsm;object=orders'   # in the token, id 00000001")]
    Create {
        /// Key name (1 to 127 of [A-Za-z0-9-]) in the keyring, or a pkcs11: URI
        /// (token and object) to generate the key pair inside a PKCS#11 token.
        name: String,
        /// Key size: 2048, or 3072 / 4096 (an opt-in beyond Azure's CMK size).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// Add a new version and make it current; old versions stay.
    #[command(
        after_help = "Example:\n  cmke key rotate orders && cmke rewrap data/*.cmke\n  \
                      cmke key rotate 'pkcs11:token=prod-hsm;object=orders'   # a new key pair, the next id"
    )]
    Rotate {
        /// Key name, or a pkcs11: URI (token and object).
        name: String,
    },
    /// List keys, their current kid and versions.
    #[command(
        after_help = "Example:\n  cmke key list\n  cmke key list --json | jq '.[].current_kid'"
    )]
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

#[derive(Subcommand)]
pub enum BranchCommand {
    /// Create a branch key: its first version, with the record wrapped by CMK's current
    /// version.
    #[command(after_help = "Example:\n  \
                      cmke --branch-store ./branches branch create orders --cmk orders-cmk\n  \
                      cmke --branch-store ./branches branch create orders \\\n    \
                      --cmk https://contoso.vault.azure.net/keys/orders-cmk")]
    Create {
        /// Branch key name (1 to 127 of [A-Za-z0-9-]).
        name: String,
        /// The CMK that wraps the records: a keyring key name, a Key Vault key URL or a
        /// pkcs11: URI.
        #[arg(long)]
        cmk: String,
        /// One more CMK every record is also sealed under (repeatable), for example a key
        /// in a vault of another region: records open with it when the first's service
        /// fails.
        #[arg(long = "also-cmk", value_name = "KEY")]
        also_cmks: Vec<String>,
    },
    /// Add a new version and make it current; old versions stay. The new record is
    /// wrapped by the current version of the CMK of the current record (or --cmk). When
    /// another machine rotates at the same moment, one of the two fails with a conflict
    /// (exit 1) and nothing is lost.
    #[command(after_help = "Example:\n  cmke --branch-store ./branches branch rotate orders")]
    Rotate {
        /// Branch key name.
        name: String,
        /// Wrap the new record with this CMK instead (same vault or keyring).
        #[arg(long)]
        cmk: Option<String>,
        /// One more CMK the new record is also sealed under (repeatable; needs --cmk).
        #[arg(long = "also-cmk", value_name = "KEY", requires = "cmk")]
        also_cmks: Vec<String>,
    },
    /// List branch keys: current version, versions, and the CMK version of each record.
    #[command(after_help = "Example:\n  cmke --branch-store ./branches branch list --json")]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

// The arguments of `cmke encrypt` (its help is on the variant).
#[derive(clap::Args)]
pub struct EncryptArgs {
    /// Key name in the keyring, a Key Vault key URL
    /// (https://{vault}.vault.azure.net/keys/{name}), or a PKCS#11 key
    /// ('pkcs11:token={label};object={label}', module and PIN from CMKE_PKCS11_MODULE and
    /// CMKE_PKCS11_PIN or CMKE_PKCS11_PIN_FILE).
    #[arg(long)]
    pub key: String,
    /// One more key to seal under (repeatable, at most 7): the object gets a slot under
    /// each, for example a CMK in a vault of another region, and opens with any of them;
    /// when the first key's service fails transiently, opening fails over to the next.
    #[arg(long = "also-key", value_name = "KEY")]
    pub also_keys: Vec<String>,
    /// Associated data: authenticated, not stored; needed again to decrypt.
    #[arg(long, default_value = "")]
    pub aad: String,
    /// Plaintext bytes per segment (64 ..= 67108864).
    #[arg(long, default_value_t = 65536)]
    pub segment_size: u32,
    /// Output file (default stdout). A file is written atomically; a device or FIFO
    /// (`/dev/null`) is written in place.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Input file, or - for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
}

// The arguments of `cmke decrypt` (its help is on the variant).
#[derive(clap::Args)]
pub struct DecryptArgs {
    /// Associated data given at encryption.
    #[arg(long, default_value = "")]
    pub aad: String,
    /// Only plaintext bytes A..B (end exclusive), reading just the segments that hold
    /// them. Needs a file.
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    pub range: Option<std::ops::Range<u64>>,
    /// Output file (default stdout). A file is written atomically; a device or FIFO
    /// (`/dev/null`) is written in place.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Input file, or - for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
}

// The arguments of `cmke inspect` (its help is on the variant).
#[derive(clap::Args)]
pub struct InspectArgs {
    /// Input file, or - for stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
}

// The arguments of `cmke rewrap` (its help is on the variant).
#[derive(clap::Args)]
pub struct RewrapArgs {
    /// Move to this key's current version (a keyring key name, a Key Vault key URL or a
    /// pkcs11: URI) instead of the current version of the key that wrapped each file.
    #[arg(long)]
    pub to: Option<String>,
    /// Report what would be re-wrapped, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only header files (detached headers kept beside their bodies) are rewritten;
    /// attached envelopes are skipped.
    #[arg(long)]
    pub detached: bool,
    /// Re-wrap files with more than one hard link too: this name gets a new file, and
    /// the other links keep the old one (under the old key version). Without it such
    /// files are refused.
    #[arg(long)]
    pub break_hard_links: bool,
    #[command(flatten)]
    pub many: ManyFiles,
}

// The arguments of `cmke inventory` (its help is on the variant).
#[derive(clap::Args)]
pub struct InventoryArgs {
    /// JSON: per key and version, with the stale, foreign and corrupt files listed.
    #[arg(long, conflicts_with = "stale")]
    pub json: bool,
    /// Print only the paths of objects not under their key's current version.
    #[arg(long)]
    pub stale: bool,
    /// Only this shard of a blob container's listing (I/N, I from 0), as for rewrap.
    #[arg(long, value_name = "I/N", value_parser = crate::cli::shard::parse_shard)]
    pub shard: Option<crate::cli::shard::Shard>,
    /// Files or directories to walk, blob containers of envelopes (an https URL:
    /// ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]), or the branch store named by
    /// --branch-store.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

// The arguments of `cmke verify` (its help is on the variant).
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Associated data given at encryption (the same for every file).
    #[arg(long, default_value = "")]
    pub aad: String,
    /// Header files are kept apart from their bodies: each is verified with its body,
    /// the file beside it with the same stem and extension --body-ext. Without it, a
    /// header file alone is a failure (it proves nothing).
    #[arg(long)]
    pub detached: bool,
    /// With --detached: the extension of body files (`split.cmkh` → `split.body` with
    /// `--body-ext body`); none by default (`split.cmkh` → `split`).
    #[arg(long, default_value = "", requires = "detached")]
    pub body_ext: String,
    #[command(flatten)]
    pub many: ManyFiles,
}
