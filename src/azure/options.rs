//! How a [`KeyVaultWrapper`](super::KeyVaultWrapper) checks, wraps and talks to the vault.

use std::time::Duration;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions};

use crate::crypto::Provider;
use crate::policy::KeyRules;

/// How a [`KeyVaultWrapper`](super::KeyVaultWrapper) checks, wraps and talks to the vault.
///
/// ```
/// # use std::time::Duration;
/// use cmk_envelope::azure::KeyVaultOptions;
/// let options = KeyVaultOptions::default()
///     .refresh_interval(Duration::from_secs(60))
///     .wrap_remotely(true);
/// ```
#[derive(Debug, Clone)]
pub struct KeyVaultOptions {
    pub(super) refresh_interval: Duration,
    pub(super) wrap_remotely: bool,
    pub(super) require_purge_protection: bool,
    pub(super) key_rules: KeyRules,
    pub(super) provider: Provider,
    pub(super) try_timeout: Duration,
    pub(super) client_options: ClientOptions,
    pub(super) max_key_ops: Option<crate::wrap::KeyOpsLimit>,
}

impl Default for KeyVaultOptions {
    fn default() -> Self {
        // Bounded: a vault that stays unavailable fails the call within about half a
        // minute, rather than after the SDK's longer default.
        let client_options = ClientOptions {
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(200),
                max_retries: 4,
                max_total_elapsed: azure_core::time::Duration::seconds(30),
                max_delay: azure_core::time::Duration::seconds(8),
            }),
            ..ClientOptions::default()
        };
        Self {
            refresh_interval: Duration::from_secs(300),
            wrap_remotely: false,
            require_purge_protection: true,
            key_rules: KeyRules::default(),
            provider: Provider::default(),
            try_timeout: Duration::from_secs(10),
            client_options,
            max_key_ops: None,
        }
    }
}

impl KeyVaultOptions {
    /// How long a successful key check stands before `get key` runs again (default five
    /// minutes). A disabled or deleted key stops *new* wraps within this time; unwrapping
    /// always asks the vault. While the vault fails transiently (429, 5xx, timeouts), the
    /// version checked last keeps wrapping for up to twice this time since its check, the
    /// vault asked again at most every 5 s: seals go on through a short outage.
    #[must_use]
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Wraps with the vault's `wrapKey` (one round trip per object, and each wrap appears in
    /// the vault's audit log) instead of locally with the public key.
    #[must_use]
    pub fn wrap_remotely(mut self, remote: bool) -> Self {
        self.wrap_remotely = remote;
        self
    }

    /// Accepts a vault without purge protection. Azure requires purge protection for
    /// customer-managed keys, because a purged key makes every object under it unreadable
    /// for good; a warning is logged (`tracing`) at each check that relies on this.
    #[must_use]
    pub fn dangerously_allow_without_purge_protection(mut self, allow: bool) -> Self {
        self.require_purge_protection = !allow;
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

    /// How long one try of a request may take before it is abandoned and retried (default
    /// ten seconds; a Key Vault operation normally answers in tens of milliseconds). With
    /// the default retries, a vault that accepts connections and never answers fails a call
    /// within about a minute.
    #[must_use]
    pub fn try_timeout(mut self, limit: Duration) -> Self {
        self.try_timeout = limit;
        self
    }

    /// The Azure SDK's client options: retries, extra policies, and the HTTP transport.
    /// They replace the defaults, this crate's bounded retries included.
    #[must_use]
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self
    }

    /// Shares `limit` (operations per second) with every wrapper and task holding a clone
    /// of it: each request to the vault, retries included, waits for its turn, and a 429
    /// answer pauses them all until its `Retry-After`. For bulk jobs on a vault that
    /// production also uses: the vault's throughput is one budget (about 4,000 RSA-2048
    /// operations per 10 s for software-protected keys, less for HSM keys).
    #[must_use]
    pub fn max_key_ops(mut self, limit: crate::wrap::KeyOpsLimit) -> Self {
        self.max_key_ops = Some(limit);
        self
    }

    /// Sends requests through `transport` (a proxy, a test double), keeping every other
    /// client option, the bounded retries included.
    #[must_use]
    pub fn transport(mut self, transport: azure_core::http::Transport) -> Self {
        self.client_options.transport = Some(transport);
        self
    }
}
