//! The trait every key-encryption-key backend implements, and the types its methods take.

use crate::policy::ProtectionLevel;
use async_trait::async_trait;

use crate::data_key::DataKey;
use crate::error::Result;
use crate::format::KeySlot;

/// What a wrapper made of a slot.
#[must_use]
pub enum Unwrapped {
    /// The wrapper holds the slot's key and recovered the data key.
    Key(DataKey),
    /// The slot's kid is not one of this wrapper's keys: ask another wrapper.
    NotMine,
}

/// What confirming a new slot makes of unwrapping it again: `Ok` only when it gave back
/// `data_key`; a slot that does not decrypt, or decrypts to another key, is a backend
/// failure of the re-wrap, and a key problem is reported as itself.
fn confirm_unwrapped(
    slot: &KeySlot,
    data_key: &DataKey,
    unwrapped: Result<Unwrapped>,
) -> Result<()> {
    let failed = || crate::Error::Backend {
        backend: "rewrap",
        message: format!("the new slot under {} does not open", slot.kid()),
    };
    match unwrapped {
        Ok(Unwrapped::Key(back)) if back.same_as(data_key) => Ok(()),
        Ok(_) | Err(crate::Error::DecryptionFailed) => Err(failed()),
        Err(other) => Err(other),
    }
}

/// What a slot belongs to besides its kid: the object whose data key it wraps.
///
/// An RSA slot does not depend on it. A branch slot is bound to its object: its wrapping key is derived from the branch key and the object's
/// message id (docs/FORMAT.md, "Branch keys"); every [`KeyWrapper`] call carries it.
///
/// A slot of another format may wrap the data key behind a fixed prefix (Azure Storage's
/// client-side encryption v2 wraps `"2.0"` padded to 8 bytes, then the key): an RSA
/// [`KeyWrapper`] encrypts [`SlotContext::wrap_input`] and reads back through
/// [`SlotContext::unwrap_output`], so the prefix is written and checked for it. This
/// crate's own slots have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotContext<'a> {
    message_id: &'a [u8; 32],
    key_prefix: &'a [u8],
}

impl<'a> SlotContext<'a> {
    /// The context of the object whose preamble carries `message_id`.
    #[must_use]
    pub fn new(message_id: &'a [u8; 32]) -> Self {
        Self {
            message_id,
            key_prefix: &[],
        }
    }

    /// The same context for a slot that wraps `prefix ‖ data key` (another format's slot).
    #[must_use]
    pub fn with_key_prefix(self, prefix: &'a [u8]) -> Self {
        Self {
            key_prefix: prefix,
            ..self
        }
    }

    /// The prefix wrapped before the data key (empty for this crate's slots).
    #[must_use]
    pub fn key_prefix(&self) -> &'a [u8] {
        self.key_prefix
    }

    /// What an RSA wrapper encrypts for `data_key`: the prefix, then the key (in a buffer
    /// wiped on drop).
    #[must_use]
    pub fn wrap_input(&self, data_key: &DataKey) -> zeroize::Zeroizing<Vec<u8>> {
        let mut input = zeroize::Zeroizing::new(Vec::with_capacity(
            self.key_prefix.len() + crate::data_key::DATA_KEY_LEN,
        ));
        input.extend_from_slice(self.key_prefix);
        input.extend_from_slice(data_key.expose_secret());
        input
    }

    /// The data key in what an RSA wrapper decrypted: `None` unless it is the prefix, then
    /// exactly one data key.
    #[must_use]
    pub fn unwrap_output(&self, recovered: &[u8]) -> Option<DataKey> {
        let key = recovered.strip_prefix(self.key_prefix)?;
        DataKey::from_slice(key)
    }

    /// The object's message id (random, from its preamble).
    #[must_use]
    pub fn message_id(&self) -> &'a [u8; 32] {
        self.message_id
    }
}

/// What a key is, for the re-wrap rules and for telling its kids from others' without a
/// call: [`KeyWrapper::key_facts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyFacts<'a> {
    /// How the key is protected.
    pub protection: ProtectionLevel,
    /// The vault or keyring that holds the key, for the same-vault rotation rule (for
    /// example a keyring directory or a vault host).
    pub domain: &'a str,
    /// The key without its version, as [`Kid::key`](crate::kid::Kid::key) writes it
    /// (`local:orders`, `https://{vault}/keys/orders`, `pkcs11:token=…;object=…`,
    /// `branch:orders`): a kid of any version of it is this key's. `None` when only
    /// [`KeyWrapper::unwrap_key`] can tell.
    pub key: Option<&'a str>,
}

impl<'a> KeyFacts<'a> {
    /// A key of `protection` held in `domain`, whose kids only an unwrap can recognize.
    #[must_use]
    pub fn new(protection: ProtectionLevel, domain: &'a str) -> Self {
        Self {
            protection,
            domain,
            key: None,
        }
    }

    /// The same, with every version's kid recognized from the key's name alone.
    #[must_use]
    pub fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }

    /// Whether `kid` names a version of this key, decided from the kid alone:
    /// `Some(true)` or `Some(false)`, or `None` when only an unwrap can tell. A re-wrap uses
    /// it to settle what the kids alone settle (an object already under the current
    /// version, a move the policy refuses) before any key-service call.
    #[must_use]
    pub fn recognizes(&self, kid: &str) -> Option<bool> {
        self.key
            .map(|key| crate::kid::Kid::parse(kid).is_version_of(key))
    }
}

/// A key-encryption key (all its versions) that wraps and unwraps data keys.
///
/// Implementations: [`software::SoftwareWrapper`](crate::software::SoftwareWrapper) here; Key Vault and PKCS#11 behind their
/// features; [`branch::BranchWrapper`](crate::branch::BranchWrapper) over any of them. The trait is object safe, so an
/// [`Envelope`](crate::Envelope) holds `Arc<dyn KeyWrapper>`s of any mix of backends.
///
/// Four methods are required and one has a default, as in age's `Recipient`/`Identity`:
/// a decorator (a metrics counter, a rate limit, a log line) forwards the four and works
/// around every backend, branch keys included, since every call carries the object's
/// [`SlotContext`]. Backends whose slots are not bound to their object (RSA) ignore it.
///
/// `unwrap_key` separates "not my key" ([`Unwrapped::NotMine`], so the next wrapper is asked)
/// from "my key, but it failed" (an error: a failed decryption, a disabled or deleted key).
///
/// ```
/// use cmk_envelope::format::KeySlot;
/// use cmk_envelope::{async_trait, DataKey, KeyFacts, KeyWrapper, Result, SlotContext, Unwrapped};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Counts the unwraps that reach the key service.
/// struct Counted<W> {
///     inner: W,
///     unwraps: AtomicU64,
/// }
///
/// #[async_trait]
/// impl<W: KeyWrapper> KeyWrapper for Counted<W> {
///     async fn current_kid(&self) -> Result<String> {
///         self.inner.current_kid().await
///     }
///     async fn wrap_key(&self, key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot> {
///         self.inner.wrap_key(key, context).await
///     }
///     async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped> {
///         self.unwraps.fetch_add(1, Ordering::Relaxed);
///         self.inner.unwrap_key(slot, context).await
///     }
///     fn key_facts(&self) -> KeyFacts<'_> {
///         self.inner.key_facts()
///     }
/// }
/// ```
#[async_trait]
pub trait KeyWrapper: Send + Sync {
    /// The kid (with version) that [`KeyWrapper::wrap_key`] wraps new data keys under now.
    ///
    /// # Errors
    /// As the backend reports: key not found, disabled, access denied, I/O.
    async fn current_kid(&self) -> Result<String>;

    /// Wraps a data key under the current version for the object of `context`, returning
    /// the slot to store.
    ///
    /// # Errors
    /// As the backend reports; [`Error::PolicyRefused`](crate::Error::PolicyRefused) when the
    /// key breaks the policy.
    async fn wrap_key(&self, data_key: &DataKey, context: SlotContext<'_>) -> Result<KeySlot>;

    /// Recovers the data key of a slot of the object of `context`, if the slot's kid is one
    /// of this wrapper's keys.
    ///
    /// # Errors
    /// [`Error::DecryptionFailed`](crate::Error::DecryptionFailed) when the wrapped bytes do not
    /// decrypt (tampering or the wrong key); [`Error::KeyNotFound`](crate::Error::KeyNotFound),
    /// [`Error::KeyDisabled`](crate::Error::KeyDisabled),
    /// [`Error::AccessDenied`](crate::Error::AccessDenied) when the key cannot be used.
    async fn unwrap_key(&self, slot: &KeySlot, context: SlotContext<'_>) -> Result<Unwrapped>;

    /// Confirms that `slot`, just made by [`KeyWrapper::wrap_key`] from `data_key`, opens with
    /// this key again, before a re-wrapped header replaces the old one.
    ///
    /// The default unwraps the slot and compares the data keys. A backend whose unwrap is a
    /// remote call may instead prove once per key version that the public key it wraps with
    /// belongs to the private key that unwraps (Key Vault does).
    ///
    /// # Errors
    /// [`Error::Backend`](crate::Error::Backend) when the slot does not give `data_key`
    /// back; the unwrap's own error when the key cannot be used.
    async fn confirm_wrap(
        &self,
        slot: &KeySlot,
        data_key: &DataKey,
        context: SlotContext<'_>,
    ) -> Result<()> {
        confirm_unwrapped(slot, data_key, self.unwrap_key(slot, context).await)
    }

    /// What the key is: its protection, its vault or keyring, and which kids are its own.
    fn key_facts(&self) -> KeyFacts<'_>;
}
