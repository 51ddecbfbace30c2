//! How to reach one key in one token: module, token, key, PIN source and limits.

use std::path::PathBuf;
use std::time::Duration;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::kid::Pkcs11Uri;
use crate::policy::KeyRules;

/// Where the user PIN comes from. Never from a command-line argument (other users can read
/// those), and never logged: `Debug` shows the source, not the PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// An environment variable.
    Env(String),
    /// A file (its first line, mode 0600). Refused when it or a directory above it is
    /// writable by group or others or owned by another user (root excepted), when others
    /// can read it, or when it has more than one link: see [`trust`](crate::trust).
    File(PathBuf),
}

/// A PIN file holds one line.
const PIN_FILE_LIMIT: usize = 4096;

impl PinSource {
    pub(super) fn read(&self) -> Result<AuthPin> {
        let pin = match self {
            PinSource::Env(name) => Zeroizing::new(std::env::var(name).map_err(|_| {
                Error::InvalidArgument(format!(
                    "the PKCS#11 user PIN variable {name} is not set (or not UTF-8)"
                ))
            })?),
            PinSource::File(path) => {
                use crate::trust::{TrustedFile, TrustedKind};
                let text = TrustedFile::open(path, TrustedKind::Secret, "PIN file")?
                    .read_text(PIN_FILE_LIMIT)?;
                Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
            }
        };
        Ok(AuthPin::from(pin.as_str()))
    }
}

/// Which OAEP hash new slots use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OaepHash {
    /// SHA-256 if the token decrypts it (checked on connect with one trial unwrap), else
    /// SHA-1.
    #[default]
    Auto,
    /// SHA-256, or fail to connect when the token lacks it.
    Sha256,
    /// SHA-1 (Key Vault's `RSA-OAEP`): every PKCS#11 token has it, SoftHSM2 2.6 only it.
    Sha1,
}

/// How to reach one key in one token.
///
/// ```
/// use cmk_envelope::pkcs11::{PinSource, Pkcs11Config};
/// let config = Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so", "prod-hsm", "orders")
///     .pin(PinSource::Env("CMKE_PKCS11_PIN".into()))
///     .sessions(4);
/// ```
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    pub(super) module: PathBuf,
    pub(super) token: String,
    pub(super) key: String,
    pub(super) key_id: Option<Vec<u8>>,
    pub(super) pin: PinSource,
    pub(super) sessions: usize,
    pub(super) oaep: OaepHash,
    pub(super) key_rules: KeyRules,
    pub(super) provider: Provider,
    pub(super) refresh_interval: Duration,
    pub(super) max_key_ops: Option<crate::wrap::KeyOpsLimit>,
}

impl Pkcs11Config {
    /// The key labelled `key` in the token labelled `token` of the PKCS#11 `module`; the
    /// PIN from `CMKE_PKCS11_PIN` unless [`Pkcs11Config::pin`] says otherwise.
    pub fn new(module: impl Into<PathBuf>, token: &str, key: &str) -> Self {
        Self {
            module: module.into(),
            token: token.to_owned(),
            key: key.to_owned(),
            key_id: None,
            pin: PinSource::Env("CMKE_PKCS11_PIN".to_owned()),
            sessions: 4,
            oaep: OaepHash::Auto,
            key_rules: KeyRules::default(),
            provider: Provider::default(),
            refresh_interval: Duration::from_secs(300),
            max_key_ops: None,
        }
    }

    /// Shares `limit` (operations per second) with every wrapper and task holding a clone
    /// of it: each private-key operation in the token (`C_Decrypt`) waits for its turn on
    /// its session's worker thread. For bulk jobs on an HSM that production also uses.
    #[must_use]
    pub fn max_key_ops(mut self, limit: crate::wrap::KeyOpsLimit) -> Self {
        self.max_key_ops = Some(limit);
        self
    }

    /// The key named by a `pkcs11:token=…;object=…[;id=…]` URI in `module`; an `id` pins
    /// that version.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the URI is malformed or lacks `token` or `object`.
    pub fn from_uri(module: impl Into<PathBuf>, uri: &str) -> Result<Self> {
        let parsed = Pkcs11Uri::parse(uri)?;
        let (Some(token), Some(object)) = (&parsed.token, &parsed.object) else {
            return Err(Error::InvalidArgument(format!(
                "{} names no key: it needs token= and object=",
                parsed
            )));
        };
        let mut config = Self::new(module, token, object);
        config.key_id = parsed.id;
        Ok(config)
    }

    /// Pins one version by its `CKA_ID` instead of following the newest.
    #[must_use]
    pub fn key_id(mut self, id: Vec<u8>) -> Self {
        self.key_id = Some(id);
        self
    }

    /// Where the user PIN comes from.
    #[must_use]
    pub fn pin(mut self, source: PinSource) -> Self {
        self.pin = source;
        self
    }

    /// Sessions (worker threads), and so unwraps in the token at once; default 4, at least 1.
    #[must_use]
    pub fn sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions.max(1);
        self
    }

    /// The OAEP hash of new slots (default [`OaepHash::Auto`]).
    #[must_use]
    pub fn oaep_hash(mut self, hash: OaepHash) -> Self {
        self.oaep = hash;
        self
    }

    /// The key rules (default: RSA-2048 only).
    #[must_use]
    pub fn key_rules(mut self, key_rules: KeyRules) -> Self {
        self.key_rules = key_rules;
        self
    }

    /// The crypto provider for local wraps.
    #[must_use]
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// How long the current version stands before the token is asked again (default five
    /// minutes): how soon a rotation by another process is followed.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    pub(super) fn token_uri(&self) -> String {
        Pkcs11Uri {
            token: Some(self.token.clone()),
            ..Pkcs11Uri::default()
        }
        .to_uri()
    }

    pub(super) fn key_uri(&self) -> Pkcs11Uri {
        Pkcs11Uri {
            token: Some(self.token.clone()),
            object: Some(self.key.clone()),
            id: None,
        }
    }

    pub(super) fn kid(&self, id: &[u8]) -> String {
        Pkcs11Uri {
            id: Some(id.to_vec()),
            ..self.key_uri()
        }
        .to_uri()
    }
}
