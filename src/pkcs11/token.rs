//! The PKCS#11 module and token: loading, finding the token by label, logging in, the
//! key-version objects, and what the module's return codes mean for the caller.
//!
//! Everything here blocks; it runs on the session pool's threads or a setup thread.

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::backend::BACKEND;
use crate::error::{Error, Result};
use crate::format::WrapAlgorithm;

/// A token found in a loaded module.
pub(crate) struct Token {
    pkcs11: Pkcs11,
    slot: Slot,
}

impl Token {
    /// Loads `module` (once per process: a second load shares the first's state) and finds
    /// the token labelled `label`. The module is code that runs with the PIN: it is loaded
    /// only from the descriptor whose path and file were checked (`/proc/self/fd/N`), never
    /// by its path again, so a file swapped in after the check is not what runs.
    pub(crate) fn open(module: &Path, label: &str, token_uri: &str) -> Result<Self> {
        use crate::trust::{TrustedFile, TrustedKind};
        let checked = TrustedFile::open(module, TrustedKind::Module, "PKCS#11 module").map_err(
            |e| match e {
                Error::Io { source, .. } => Error::Backend {
                    backend: BACKEND,
                    message: format!(
                        "cannot load the PKCS#11 module {}: {source}",
                        module.display()
                    ),
                },
                other => other,
            },
        )?;
        let pkcs11 = Pkcs11::new(checked.descriptor_path()?).map_err(|e| Error::Backend {
            backend: BACKEND,
            message: format!("cannot load the PKCS#11 module {}: {e}", module.display()),
        })?;
        // The mapping outlives the descriptor.
        drop(checked);
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(fail(e, token_uri, "initialising the module")),
        }
        let slots = pkcs11
            .get_slots_with_token()
            .map_err(|e| fail(e, token_uri, "listing the tokens"))?;
        // A slot whose token cannot be read (another process initialising a token there,
        // a damaged token) is not the one asked for as far as anyone can tell: it must not
        // stop the search, but it is the reason given when no other slot matches.
        let mut unreadable = None;
        for slot in slots {
            let info = match pkcs11.get_token_info(slot) {
                Ok(info) => info,
                Err(e) => {
                    unreadable.get_or_insert(e);
                    continue;
                }
            };
            if info.label().trim_end() == label {
                let mechanisms = pkcs11
                    .get_mechanism_list(slot)
                    .map_err(|e| fail(e, token_uri, "listing the token's mechanisms"))?;
                if !mechanisms.contains(&MechanismType::RSA_PKCS_OAEP) {
                    return Err(Error::Backend {
                        backend: BACKEND,
                        message: format!("token {token_uri} has no CKM_RSA_PKCS_OAEP mechanism"),
                    });
                }
                return Ok(Self { pkcs11, slot });
            }
        }
        match unreadable {
            Some(e) => Err(fail(e, token_uri, "reading token information")),
            None => Err(Error::KeyNotFound {
                kid: token_uri.to_owned(),
                detail: "no token with this label in any slot of the module".to_owned(),
            }),
        }
    }

    /// Opens `count` sessions (read-write when `rw`), the first one logged in as the user;
    /// the login holds for every session of this process on the token.
    pub(crate) fn sessions(
        &self,
        count: usize,
        rw: bool,
        pin: &AuthPin,
        token_uri: &str,
    ) -> Result<Vec<Session>> {
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let session = if rw {
                self.pkcs11.open_rw_session(self.slot)
            } else {
                self.pkcs11.open_ro_session(self.slot)
            }
            .map_err(|e| fail(e, token_uri, "opening a session"))?;
            if sessions.is_empty() {
                match session.login(UserType::User, Some(pin)) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                    Err(e) => return Err(fail(e, token_uri, "logging in with the user PIN")),
                }
            }
            sessions.push(session);
        }
        Ok(sessions)
    }
}

/// What the token says about one key version (a private key object).
pub(crate) struct VersionFacts {
    pub(crate) id: Vec<u8>,
    pub(crate) handle: ObjectHandle,
    pub(crate) modulus: Vec<u8>,
    pub(crate) exponent: Vec<u8>,
    pub(crate) sensitive: bool,
    pub(crate) extractable: bool,
    pub(crate) decrypt: bool,
}

impl VersionFacts {
    /// The modulus size in bits, leading zero bytes ignored.
    pub(crate) fn bits(&self) -> usize {
        let significant = self.modulus.iter().skip_while(|b| **b == 0).count();
        significant.saturating_mul(8)
    }
}

fn private_keys(label: &str, id: Option<&[u8]>) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    template
}

/// Every version (private key with this label) and its id.
pub(crate) fn list_versions(
    session: &Session,
    label: &str,
    key_uri: &str,
) -> Result<Vec<(Vec<u8>, ObjectHandle)>> {
    let handles = session
        .find_objects(&private_keys(label, None))
        .map_err(|e| fail(e, key_uri, "finding the key"))?;
    let mut versions = Vec::with_capacity(handles.len());
    for handle in handles {
        let attributes = session
            .get_attributes(handle, &[AttributeType::Id])
            .map_err(|e| fail(e, key_uri, "reading CKA_ID"))?;
        let id = attributes
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default();
        versions.push((id, handle));
    }
    versions.sort_by(|a, b| version_order(&a.0, &b.0));
    Ok(versions)
}

/// Version ids order by length, then bytes: `00000002` after `00000001`.
pub(crate) fn version_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The private key with this label and id, if there is exactly one.
pub(crate) fn find_version(
    session: &Session,
    label: &str,
    id: &[u8],
    kid: &str,
) -> Result<ObjectHandle> {
    let handles = session
        .find_objects(&private_keys(label, Some(id)))
        .map_err(|e| fail(e, kid, "finding the key"))?;
    match handles.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::KeyNotFound {
            kid: kid.to_owned(),
            detail: "finding the key: no private key with this label and id in the token"
                .to_owned(),
        }),
        _ => Err(Error::InvalidKey(format!(
            "{kid}: {} private keys share this label and id",
            handles.len()
        ))),
    }
}

/// Reads the public half and the protection attributes of a version.
pub(crate) fn read_version(
    session: &Session,
    id: Vec<u8>,
    handle: ObjectHandle,
    kid: &str,
) -> Result<VersionFacts> {
    let attributes = session
        .get_attributes(
            handle,
            &[
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Decrypt,
            ],
        )
        .map_err(|e| fail(e, kid, "reading the key's attributes"))?;
    let mut facts = VersionFacts {
        id,
        handle,
        modulus: Vec::new(),
        exponent: Vec::new(),
        // Unknown counts as the unsafe answer, so a token that hides these is refused.
        sensitive: false,
        extractable: true,
        decrypt: false,
    };
    for attribute in attributes {
        match attribute {
            Attribute::Modulus(n) => facts.modulus = n,
            Attribute::PublicExponent(e) => facts.exponent = e,
            Attribute::Sensitive(s) => facts.sensitive = s,
            Attribute::Extractable(x) => facts.extractable = x,
            Attribute::Decrypt(d) => facts.decrypt = d,
            _ => {}
        }
    }
    if facts.modulus.is_empty() || facts.exponent.is_empty() {
        return Err(Error::InvalidKey(format!(
            "{kid}: the token does not show the key's modulus and exponent"
        )));
    }
    Ok(facts)
}

/// Generates an RSA key pair in the token: the private key sensitive and never extractable,
/// allowed to decrypt and unwrap only; the public key allowed to encrypt and wrap.
pub(crate) fn generate_version(
    session: &Session,
    label: &str,
    id: &[u8],
    bits: usize,
    kid: &str,
) -> Result<()> {
    let bits = u64::try_from(bits)
        .map_err(|_| Error::InvalidArgument(format!("{bits} bits")))?
        .into();
    let common = [
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let mut public = common.to_vec();
    public.extend([
        Attribute::ModulusBits(bits),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        Attribute::Encrypt(true),
        Attribute::Wrap(true),
        Attribute::Verify(false),
    ]);
    let mut private = common.to_vec();
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Decrypt(true),
        Attribute::Unwrap(true),
        Attribute::Sign(false),
    ]);
    session
        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
        .map_err(|e| fail(e, kid, "generating the key pair"))?;
    Ok(())
}

/// The OAEP mechanism for a slot's algorithm: MGF1 with the same hash, empty label. Only
/// RSA algorithms reach here: [`super::Pkcs11Wrapper`] turns other slots away first.
pub(crate) fn oaep(algorithm: WrapAlgorithm) -> Mechanism<'static> {
    let (hash, mgf) = match algorithm {
        WrapAlgorithm::RsaOaepSha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
        _ => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
    };
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(hash, mgf, PkcsOaepSource::empty()))
}

/// How a failed `C_Decrypt` reads.
pub(crate) enum DecryptFailure {
    /// The token does not take these OAEP parameters.
    Unsupported(RvError),
    /// Anything else: see [`fail`].
    Other(Error),
}

/// Maps a failed `C_Decrypt` of a wrapped key: bad ciphertext is the opaque
/// [`Error::DecryptionFailed`], as for every backend.
pub(crate) fn decrypt_failure(error: CkError, kid: &str) -> DecryptFailure {
    match error {
        CkError::Pkcs11(
            rv @ (RvError::MechanismInvalid | RvError::MechanismParamInvalid | RvError::ArgumentsBad),
            _,
        ) => DecryptFailure::Unsupported(rv),
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid
            | RvError::EncryptedDataLenRange
            | RvError::DataInvalid
            | RvError::DataLenRange
            // SoftHSM2 reports an OAEP decoding failure as a general error.
            | RvError::GeneralError,
            _,
        ) => DecryptFailure::Other(Error::DecryptionFailed),
        other => DecryptFailure::Other(fail(other, kid, "unwrapping (C_Decrypt)")),
    }
}

/// Maps a PKCS#11 failure to what the caller must do.
pub(crate) fn fail(error: CkError, kid: &str, doing: &str) -> Error {
    let rv = match &error {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    };
    match rv {
        Some(
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinExpired
            | RvError::PinLocked
            | RvError::UserPinNotInitialized
            | RvError::UserNotLoggedIn
            | RvError::UserAnotherAlreadyLoggedIn
            | RvError::KeyFunctionNotPermitted,
        ) => Error::AccessDenied {
            kid: kid.to_owned(),
            detail: format!("{doing}: the token said {error}"),
        },
        Some(
            RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized,
        ) => Error::KeyNotFound {
            kid: kid.to_owned(),
            detail: format!("{doing}: the token said {error}"),
        },
        _ => Error::Backend {
            backend: BACKEND,
            message: format!("{kid}: {doing}: {error}"),
        },
    }
}
