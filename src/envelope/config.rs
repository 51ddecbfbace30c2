//! An [`Envelope`] and its builder: the keys it seals and opens with, and its settings.

use std::sync::Arc;

use crate::crypto::Provider;
use crate::error::{Error, Result};
use crate::format::limits::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE};
use crate::policy::RewrapPolicy;
use crate::wrap::{KeyResolver, KeyWrapper};

/// Seals and opens CMKE envelopes.
///
/// An `Envelope` holds the wrapper that new data keys are wrapped under (optional: a reader
/// needs none) and every wrapper it may open with. Build one per service
/// and clone it freely: it is `Send + Sync`, and a clone costs a few reference counts and
/// shares the same key wrappers (their caches and connections included).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cmk_envelope::Error> {
/// use std::sync::Arc;
/// use cmk_envelope::{software::Keyring, Envelope};
///
/// let dir = tempfile::tempdir()?;
/// let keyring = Keyring::create(dir.path())?;
/// keyring.create_key("orders")?;
/// let envelope = Envelope::builder()
///     .seal_with(Arc::new(keyring.key("orders")?))
///     .build()?;
///
/// let sealed = envelope.seal(b"order #1", b"tenant=42").await?;
/// let opened = envelope.open(&sealed, b"tenant=42").await?;
/// assert_eq!(opened.plaintext(), b"order #1");
/// assert!(envelope.open(&sealed, b"tenant=43").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Envelope {
    pub(super) sealer: Option<Arc<dyn KeyWrapper>>,
    /// More slots for every new object, under other keys (other vaults, regions).
    pub(super) extra_sealers: Vec<Arc<dyn KeyWrapper>>,
    pub(super) resolver: KeyResolver,
    pub(super) provider: Provider,
    pub(super) rewrap_policy: RewrapPolicy,
    pub(super) segment_size: u32,
    pub(super) lazy_rewrap: bool,
    pub(crate) max_threads: usize,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("provider", &self.provider)
            .field("segment_size", &self.segment_size)
            .field("wrappers", &self.resolver)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Envelope`].
#[must_use]
pub struct EnvelopeBuilder {
    pub(super) sealer: Option<Arc<dyn KeyWrapper>>,
    pub(super) extra_sealers: Vec<Arc<dyn KeyWrapper>>,
    pub(super) failover_cooldown: std::time::Duration,
    pub(super) failover_state: Option<crate::wrap::FailoverState>,
    pub(super) slot_order: crate::wrap::SlotOrder,
    pub(super) openers: Vec<Arc<dyn KeyWrapper>>,
    pub(super) provider: Provider,
    pub(super) rewrap_policy: RewrapPolicy,
    pub(super) segment_size: u32,
    pub(super) lazy_rewrap: bool,
    pub(super) max_threads: usize,
    pub(super) allowlist: Option<crate::policy::KidAllowlist>,
}

impl EnvelopeBuilder {
    /// New data keys are wrapped by this wrapper, which also opens.
    pub fn seal_with(mut self, wrapper: Arc<dyn KeyWrapper>) -> Self {
        self.sealer = Some(wrapper);
        self
    }

    /// Every new object also gets a slot under `wrapper` (after the `seal_with` slot, in the
    /// order added): the same data key wrapped by another key, for example a CMK in a vault
    /// of another region. Opening tries the slots in order and fails over to the next when
    /// a key service fails transiently ([`EnvelopeBuilder::failover_cooldown`]). The
    /// wrapper also opens. At most 7 (8 slots in all).
    pub fn also_seal_with(mut self, wrapper: Arc<dyn KeyWrapper>) -> Self {
        self.extra_sealers.push(wrapper);
        self
    }

    /// How long a key service that failed transiently (throttled, unavailable, timed out)
    /// is passed over when an object has a slot under another one (default 30 s): a dead
    /// vault costs one failed call per cool-down, not one per object. An object whose only
    /// slots are under that service still asks it. `Duration::ZERO`: never passed over.
    pub fn failover_cooldown(mut self, cooldown: std::time::Duration) -> Self {
        self.failover_cooldown = cooldown;
        self
    }

    /// The order in which opening tries an object's slots: as written in its header (the
    /// default: the writer's first key first), or in the order of this envelope's own keys
    /// ([`SlotOrder::Preferred`](crate::wrap::SlotOrder::Preferred): `seal_with`, then
    /// `also_seal_with`, then `open_with`, as added), so that a reader in another region
    /// asks its own vault first.
    ///
    /// ```
    /// # async fn demo(west: std::sync::Arc<dyn cmk_envelope::KeyWrapper>, east: std::sync::Arc<dyn cmk_envelope::KeyWrapper>) -> cmk_envelope::Result<()> {
    /// use cmk_envelope::{wrap::SlotOrder, Envelope};
    /// // Objects written in the east with slots [east, west]; this reader runs in the west.
    /// let reader = Envelope::builder()
    ///     .open_with(west)
    ///     .open_with(east)
    ///     .slot_order(SlotOrder::Preferred)
    ///     .build()?;
    /// # let _ = reader; Ok(()) }
    /// ```
    pub fn slot_order(mut self, order: crate::wrap::SlotOrder) -> Self {
        self.slot_order = order;
        self
    }

    /// Shares which key services failed, for the cool-down, with other envelopes given the
    /// same `state` (by default each envelope, with its clones, has its own).
    pub fn failover_state(mut self, state: crate::wrap::FailoverState) -> Self {
        self.failover_state = Some(state);
        self
    }

    /// Adds a wrapper to open with (asked after the sealing wrapper, in the order added).
    pub fn open_with(mut self, wrapper: Arc<dyn KeyWrapper>) -> Self {
        self.openers.push(wrapper);
        self
    }

    /// Adds several wrappers to open with, in order: for example
    /// [`Keyring::openers`](crate::software::Keyring::openers), every key of a software
    /// keyring.
    pub fn open_with_all(
        mut self,
        wrappers: impl IntoIterator<Item = Arc<dyn KeyWrapper>>,
    ) -> Self {
        self.openers.extend(wrappers);
        self
    }

    /// Uses this crypto provider (default: aws-lc when compiled in).
    pub fn provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }

    /// Where [`Envelope::rewrap`] and lazy re-wrap may move data keys (default:
    /// [`RewrapPolicy::default`], Azure's CMK model). Which keys may wrap at all is set on
    /// each backend ([`KeyRules`](crate::policy::KeyRules)).
    pub fn rewrap_policy(mut self, policy: RewrapPolicy) -> Self {
        self.rewrap_policy = policy;
        self
    }

    /// Plaintext bytes per segment of new envelopes: 64 ..= 2^26, default 65536.
    pub fn segment_size(mut self, segment_size: u32) -> Self {
        self.segment_size = segment_size;
        self
    }

    /// Whether opening an object whose slot is under an old key version hands back a header
    /// re-wrapped to the current version (default: on; it costs one wrap, which is a local
    /// public-key operation for the software keyring).
    pub fn lazy_rewrap(mut self, on: bool) -> Self {
        self.lazy_rewrap = on;
        self
    }

    /// Most threads one seal or open may use for the segments of a large object (default:
    /// every thread of rayon's global pool, one per core). `1` keeps all work on the calling
    /// thread. Objects under 4 MiB always use one thread.
    pub fn max_threads(mut self, threads: usize) -> Self {
        self.max_threads = threads.max(1);
        self
    }

    /// Offers a slot to the wrappers only when `allowlist` allows its kid: a file naming a
    /// vault or PKCS#11 token the caller did not allow makes no wrapper contact it, and
    /// opens (if at all) through its other slots; with none left it fails as
    /// [`Error::NoKeyForKid`]. Use it when a wrapper could reach services a file names.
    pub fn kid_allowlist(mut self, allowlist: crate::policy::KidAllowlist) -> Self {
        self.allowlist = Some(allowlist);
        self
    }

    /// Builds the envelope.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a segment size out of range or when no wrapper was
    /// given.
    pub fn build(self) -> Result<Envelope> {
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&self.segment_size) {
            return Err(Error::InvalidArgument(format!(
                "segment size {} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE}",
                self.segment_size
            )));
        }
        if self.extra_sealers.len() >= usize::from(crate::format::limits::MAX_SLOTS) {
            return Err(Error::InvalidArgument(format!(
                "{} keys to seal with: an object has at most {} slots",
                self.extra_sealers.len() + 1,
                crate::format::limits::MAX_SLOTS
            )));
        }
        let mut resolver = KeyResolver::new();
        resolver.set_failover_cooldown(self.failover_cooldown);
        resolver.set_slot_order(self.slot_order);
        if let Some(state) = self.failover_state {
            resolver.set_failover_state(state);
        }
        if let Some(sealer) = &self.sealer {
            resolver.add(Arc::clone(sealer));
        }
        for extra in &self.extra_sealers {
            resolver.add(Arc::clone(extra));
        }
        for opener in self.openers {
            resolver.add(opener);
        }
        if let Some(allowlist) = self.allowlist {
            resolver.restrict_to(allowlist);
        }
        if resolver.is_empty() {
            return Err(Error::InvalidArgument(
                "an envelope needs a key wrapper (seal_with or open_with)".to_owned(),
            ));
        }
        Ok(Envelope {
            sealer: self.sealer,
            extra_sealers: self.extra_sealers,
            resolver,
            provider: self.provider,
            rewrap_policy: self.rewrap_policy,
            segment_size: self.segment_size,
            lazy_rewrap: self.lazy_rewrap,
            max_threads: self.max_threads,
        })
    }
}
