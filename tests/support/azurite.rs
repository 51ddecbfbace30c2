//! Azurite, the Azure Storage emulator, for the blob store's tests: one per test process,
//! over HTTPS with a certificate made here and trusted through `SSL_CERT_FILE` (by this
//! process and the `cmke` it runs), and with `--oauth basic`, so that every request needs
//! an Entra ID bearer token of the right audience and issuer.
//!
//! The test command (`.ci/test-all.sh`) installs the npm package `azurite` into
//! `target/azurite` when it is missing; these tests fail, rather than skip, without it.

use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use base64ct::{Base64UrlUnpadded, Encoding};

/// The emulator's one account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The tenant the tokens say issued them.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

pub struct Azurite {
    port: u16,
    /// Removed by the shell that runs the emulator, once it has stopped.
    _dir: PathBuf,
    /// Closing it (when the test process ends) stops the emulator.
    _lifeline: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static AZURITE: OnceLock<Azurite> = OnceLock::new();

/// `azurite-blob`: `AZURITE_BLOB`, else where the test command installs it, else `PATH`.
fn azurite_blob() -> PathBuf {
    if let Some(path) = std::env::var_os("AZURITE_BLOB") {
        return PathBuf::from(path);
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/azurite/node_modules/.bin/azurite-blob");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("azurite-blob")
}

/// The emulator of this test process, started on first use.
pub fn azurite() -> &'static Azurite {
    AZURITE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("cert");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
        // Read when an HTTP client is made, here and in child processes.
        std::env::set_var("SSL_CERT_FILE", &cert);
        // The shell stops the emulator, and removes its directory, when its standard
        // input closes: when this process ends, however it ends.
        let log = dir.path().join("azurite.log");
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(
                r#"dir=$1; shift; "$@" >"$dir/azurite.log" 2>&1 & pid=$!
                   cat >/dev/null; kill "$pid" 2>/dev/null; wait; rm -rf "$dir""#,
            )
            .arg("azurite")
            .arg(dir.path())
            .arg(azurite_blob())
            .args(["--blobHost", "127.0.0.1", "--blobPort", "0"])
            .args(["--oauth", "basic", "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--location")
            .arg(dir.path().join("data"))
            // The SDK speaks a newer API version than the emulator knows; the calls the
            // store makes (get, conditional put, list) are the same in both.
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--silent"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("bash");
        let lifeline = child.stdin.take().expect("stdin");
        let started = std::time::Instant::now();
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(address) = text.split("listens on https://127.0.0.1:").nth(1) {
                let digits: String = address.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse::<u16>().expect("port");
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60)
                    && !text.contains("rror")
                    && !text.contains("not found"),
                "Azurite did not start ({}): run `bash .ci/test-all.sh` (it installs it) or \
                 `npm install --prefix target/azurite azurite@3`; its output:\n{text}",
                azurite_blob().display()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        Azurite {
            port,
            _dir: dir.keep(),
            _lifeline: Mutex::new(lifeline),
            _child: Mutex::new(child),
        }
    })
}

impl Azurite {
    /// `https://127.0.0.1:{port}/devstoreaccount1/{container}`.
    pub fn container_url(&self, container: &str) -> String {
        format!("https://127.0.0.1:{}/{ACCOUNT}/{container}", self.port)
    }

    /// Creates the container `name`; returns its URL.
    pub async fn new_container(&self, name: &str) -> String {
        let url = self.container_url(name);
        let client = azure_storage_blob::BlobContainerClient::new(
            url.parse().expect("url"),
            Some(StorageToken::new()),
            None,
        )
        .expect("client");
        client.create(None).await.expect("create container");
        url
    }
}

/// A token Azurite takes (`--oauth basic` checks the audience, the issuer and the times,
/// not the signature): what Entra ID would hand out for `https://storage.azure.com`.
pub fn token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "aud": "https://storage.azure.com",
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "tid": TENANT,
        "oid": "0b8c5f54-0b0d-4c7b-9d4c-7c3f3c0f9a11",
        "iat": now - 300,
        "nbf": now - 300,
        "exp": now + 3600,
    });
    format!(
        "{}.{}.{}",
        Base64UrlUnpadded::encode_string(header.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(claims.to_string().as_bytes()),
        Base64UrlUnpadded::encode_string(b"not checked by the emulator"),
    )
}

/// A credential that hands out [`token`] for the storage scope, and counts the requests.
#[derive(Debug)]
pub struct StorageToken {
    pub requests: Mutex<Vec<String>>,
}

impl StorageToken {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            requests: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for StorageToken {
    async fn get_token(
        &self,
        scopes: &[&str],
        _: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(scopes.iter().map(|s| (*s).to_owned()));
        Ok(AccessToken::new(
            token(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}
