//! Unwrapping in a PKCS#11 token (SoftHSM2) through the session pool, as ratios measured in
//! the same run:
//! - `raw/C_Decrypt` is one OAEP unwrap called directly on one session: the primitive;
//! - `pool/64 unwraps, N sessions` is 64 unwraps launched together from async tasks through
//!   a `Pkcs11Wrapper` with N sessions. Divided by 64 × raw it is the pool's cost per unwrap
//!   (≈ 1.0 with one session); the 1-session time over the N-session time is how far
//!   concurrent unwraps scale (bounded by the machine's cores: SoftHSM2 computes in the
//!   calling thread).
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`); `python3 benches/ratios.py` prints the
//! ratios.

#[path = "../tests/support/softhsm.rs"]
mod softhsm;

use std::sync::Arc;

use cmk_envelope::format::KeySlot;
use cmk_envelope::pkcs11::{PinSource, Pkcs11Config, Pkcs11Wrapper};
use cmk_envelope::{DataKey, KeyWrapper, SlotContext, Unwrapped};
use criterion::{criterion_group, criterion_main, Criterion};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

const UNWRAPS: usize = 64;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let token = softhsm::new_token("bench");
    let config = Pkcs11Config::new(softhsm::module(), &token, "orders")
        .pin(PinSource::Env(softhsm::PIN_VAR.to_owned()));
    rt.block_on(Pkcs11Wrapper::create_key(&config, 2048))
        .expect("create key");
    let one = rt
        .block_on(Pkcs11Wrapper::connect(config.clone().sessions(1)))
        .expect("connect");
    let slot: KeySlot = rt
        .block_on(one.wrap_key(&DataKey::from_bytes([7; 32]), SlotContext::new(&[0; 32])))
        .expect("wrap");

    // The primitive: C_Decrypt on one logged-in session, in this thread.
    let pkcs11 = softhsm::pkcs11();
    let hsm_slot = pkcs11
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == token)
        })
        .expect("token");
    let session = pkcs11.open_ro_session(hsm_slot).expect("session");
    let _ = session.login(UserType::User, Some(&AuthPin::from(softhsm::USER_PIN)));
    let private = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"orders".to_vec()),
        ])
        .expect("find")[0];
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ));
    let mut group = c.benchmark_group("raw");
    group.sample_size(20);
    group.bench_function("C_Decrypt", |b| {
        b.iter(|| {
            session
                .decrypt(&oaep, private, slot.wrapped())
                .expect("decrypt")
        })
    });
    group.finish();

    let mut group = c.benchmark_group("pool");
    group.sample_size(10);
    for sessions in [1usize, 2, 4] {
        let wrapper = Arc::new(
            rt.block_on(Pkcs11Wrapper::connect(config.clone().sessions(sessions)))
                .expect("connect"),
        );
        group.bench_function(format!("{UNWRAPS} unwraps, {sessions} sessions"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tasks: Vec<_> = (0..UNWRAPS)
                        .map(|_| {
                            let (wrapper, slot) = (Arc::clone(&wrapper), slot.clone());
                            tokio::spawn(async move {
                                wrapper.unwrap_key(&slot, SlotContext::new(&[0; 32])).await
                            })
                        })
                        .collect();
                    for task in tasks {
                        match task.await.expect("task").expect("unwrap") {
                            Unwrapped::Key(key) => assert_eq!(key.expose_secret(), &[7; 32]),
                            Unwrapped::NotMine => panic!("not mine"),
                        }
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
