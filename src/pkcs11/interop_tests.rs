//! OAEP interop between the software providers and a PKCS#11 token (SoftHSM2): the same RSA
//! key, imported into the token, must unwrap in the token what software wrapped, and the
//! reverse, byte for byte.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use pkcs8::der::Decode;

use super::{OaepHash, PinSource, Pkcs11Config, Pkcs11Wrapper};
use crate::crypto::Provider;
use crate::format::{KeySlot, WrapAlgorithm};
use crate::wrap::{KeyWrapper, Unwrapped};

#[path = "../../tests/support/softhsm.rs"]
mod softhsm;

const LABEL: &str = "imported";
const ID: [u8; 4] = [0, 0, 0, 1];

/// Imports an RSA private key (PKCS#8 DER) and its public key into the token, the private
/// key sensitive and not extractable, as a key brought in from outside would be.
fn import(session: &Session, pkcs8_der: &[u8]) -> (ObjectHandle, ObjectHandle) {
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der).expect("pkcs8");
    let rsa = pkcs1::RsaPrivateKey::from_der(info.private_key).expect("pkcs1");
    let bytes = |u: pkcs1::UintRef<'_>| u.as_bytes().to_vec();
    let common = [
        Attribute::Token(true),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Label(LABEL.as_bytes().to_vec()),
        Attribute::Id(ID.to_vec()),
        Attribute::Modulus(bytes(rsa.modulus)),
        Attribute::PublicExponent(bytes(rsa.public_exponent)),
    ];
    let mut private = common.to_vec();
    private.extend([
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Decrypt(true),
        Attribute::PrivateExponent(bytes(rsa.private_exponent)),
        Attribute::Prime1(bytes(rsa.prime1)),
        Attribute::Prime2(bytes(rsa.prime2)),
        Attribute::Exponent1(bytes(rsa.exponent1)),
        Attribute::Exponent2(bytes(rsa.exponent2)),
        Attribute::Coefficient(bytes(rsa.coefficient)),
    ]);
    let mut public = common.to_vec();
    public.extend([
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::Encrypt(true),
    ]);
    (
        session.create_object(&private).expect("import private key"),
        session.create_object(&public).expect("import public key"),
    )
}

fn oaep_sha1() -> Mechanism<'static> {
    super::token::oaep(WrapAlgorithm::RsaOaepSha1)
}

#[test]
fn software_and_token_oaep_sha1_agree_both_ways() {
    for provider in Provider::all() {
        let ops = provider.ops();
        let label = softhsm::new_token(&format!("interop-{}", provider.name()));
        let slot = softhsm::pkcs11()
            .get_slots_with_token()
            .expect("slots")
            .into_iter()
            .find(|s| {
                softhsm::pkcs11()
                    .get_token_info(*s)
                    .is_ok_and(|i| i.label().trim_end() == label)
            })
            .expect("token");
        let session = softhsm::pkcs11().open_rw_session(slot).expect("session");
        session
            .login(UserType::User, Some(&AuthPin::from(softhsm::USER_PIN)))
            .or_else(|e| match e {
                cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::UserAlreadyLoggedIn,
                    _,
                ) => Ok(()),
                e => Err(e),
            })
            .expect("login");

        let pkcs8 = ops.generate_rsa_pkcs8(2048).expect("generate");
        let private = ops.rsa_private_from_pkcs8(&pkcs8).expect("private");
        let public = private.public_key().expect("public");
        let (in_token_private, in_token_public) = import(&session, &pkcs8);

        // Software wraps, the token unwraps.
        let data_key = [0x5a; 32];
        let wrapped = public
            .encrypt_oaep(WrapAlgorithm::RsaOaepSha1, &data_key)
            .expect("software wrap");
        let unwrapped = session
            .decrypt(&oaep_sha1(), in_token_private, &wrapped)
            .expect("token unwrap");
        assert_eq!(unwrapped, data_key, "{}: software → token", provider.name());

        // The token wraps, software unwraps.
        let wrapped = session
            .encrypt(&oaep_sha1(), in_token_public, &data_key)
            .expect("token wrap");
        let unwrapped = private
            .decrypt_oaep(WrapAlgorithm::RsaOaepSha1, &wrapped)
            .expect("software unwrap");
        assert_eq!(
            unwrapped.as_slice(),
            data_key,
            "{}: token → software",
            provider.name()
        );

        // And through the wrapper: a SHA-1 slot the software provider wrote opens.
        let config = Pkcs11Config::new(softhsm::module(), &label, LABEL)
            .pin(PinSource::Env(softhsm::PIN_VAR.to_owned()))
            .oaep_hash(OaepHash::Sha1)
            .provider(provider);
        let wrapped = public
            .encrypt_oaep(WrapAlgorithm::RsaOaepSha1, &data_key)
            .expect("software wrap");
        let recovered = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
                .block_on(async move {
                    let wrapper = Arc::new(Pkcs11Wrapper::connect(config).await.expect("connect"));
                    let kid = wrapper.current_kid().await.expect("kid");
                    let slot =
                        KeySlot::new(kid, WrapAlgorithm::RsaOaepSha1, wrapped).expect("slot");
                    match wrapper
                        .unwrap_key(&slot, crate::SlotContext::new(&[0; 32]))
                        .await
                        .expect("unwrap")
                    {
                        Unwrapped::Key(key) => *key.expose_secret(),
                        Unwrapped::NotMine => panic!("the wrapper's own kid"),
                    }
                })
        })
        .join()
        .expect("thread");
        assert_eq!(recovered, data_key);
    }
}
