//! Branch keys against the RSA path, 1 KiB objects, in one run: seal and open with a warm
//! branch key (its record unwrapped once, then cached), seal and open under an RSA-2048
//! keyring key (one RSA operation each), and raw AES-256-GCM of 1 KiB.
//!
//! A wrapper that does no cryptography gives the envelope's own part of a seal, and the
//! primitives a branch slot adds (HKDF, AES key schedule, a random draw) are timed alone.
//!
//! The operations are awaited inside one runtime call per batch of iterations (criterion's
//! `to_async`), as a service awaits them inside its tasks; a `block_on` per object would add
//! the runtime's own entry cost to every figure.
//!
//! The figures to read are ratios of the same run (`python3 benches/ratios.py`): branch
//! open / RSA open and branch seal / RSA seal throughput (targets: >= 50 and >= 5), and each
//! branch operation against raw AES-GCM, which says where the rest of the time goes (the
//! key schedule, the branch slot's own HKDF and AES-GCM, the header).

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
use cmk_envelope::format::{KeySlot, WrapAlgorithm};
use cmk_envelope::software::Keyring;
use cmk_envelope::{
    DataKey, Envelope, KeyFacts, KeyWrapper, ProtectionLevel, Result, SlotContext, Unwrapped,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const SIZE: usize = 1024;

struct Len32;
impl aws_lc_rs::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// A reference, never a key: its slot is 256 zero bytes, so sealing with it costs what
/// the envelope itself costs (data key, key schedule, header, body) and nothing for the
/// wrap. Both paths pay that much; the rest of each is its wrap.
struct NoWrap;

#[cmk_envelope::async_trait]
impl KeyWrapper for NoWrap {
    async fn current_kid(&self) -> Result<String> {
        Ok("local:reference/00000000000000000000000000000000".to_owned())
    }
    async fn wrap_key(&self, _: &DataKey, _: SlotContext<'_>) -> Result<KeySlot> {
        Ok(KeySlot::new(
            self.current_kid().await?,
            WrapAlgorithm::RsaOaepSha256,
            vec![0; 256],
        )?)
    }
    async fn unwrap_key(&self, _: &KeySlot, _: SlotContext<'_>) -> Result<Unwrapped> {
        Ok(Unwrapped::NotMine)
    }
    fn key_facts(&self) -> KeyFacts<'_> {
        KeyFacts::new(ProtectionLevel::Software, "reference")
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::create(dir.path().join("keys")).expect("keyring");
    keyring.create_key("cmk").expect("key");
    let cmk: Arc<dyn KeyWrapper> = Arc::new(keyring.key("cmk").expect("key"));
    let store = Arc::new(DirectoryStore::create(dir.path().join("branches")).expect("store"));
    let branch = rt
        .block_on(BranchWrapper::create(store, "bench", cmk.clone()))
        .expect("branch");
    let rsa = Envelope::builder()
        .seal_with(cmk)
        .build()
        .expect("envelope");
    let branched = Envelope::builder()
        .seal_with(Arc::new(branch))
        .build()
        .expect("envelope");
    let plaintext = vec![0x5a; SIZE];
    let rsa_sealed = rt.block_on(rsa.seal(&plaintext, b"")).expect("seal");
    let branch_sealed = rt.block_on(branched.seal(&plaintext, b"")).expect("seal");

    let mut group = c.benchmark_group("branch");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).expect("key"));
    group.bench_function("aes_gcm_raw_1KiB", |b| {
        let mut buf = plaintext.clone();
        b.iter(|| {
            key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                black_box(&mut buf),
            )
            .map(|t| t.as_ref()[0])
        })
    });
    // The primitives a branch slot adds to a seal, each on its own: the slot key's HKDF,
    // an AES-256-GCM key schedule, and the slot's 12 random nonce bytes.
    group.bench_function("part_hkdf_sha256_32B", |b| {
        let mut okm = [0u8; 32];
        b.iter(|| {
            let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, black_box(&[3; 32]))
                .extract(black_box(&[5; 32]));
            prk.expand(&[b"CMKE v1 branch wrap".as_slice()], Len32)
                .and_then(|okm_out| okm_out.fill(&mut okm))
                .map(|()| okm[0])
        })
    });
    group.bench_function("part_aes_gcm_key_setup", |b| {
        b.iter(|| {
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, black_box(&[7; 32])).expect("key"))
        })
    });
    group.bench_function("part_random_12B", |b| {
        let mut nonce = [0u8; 12];
        b.iter(|| aws_lc_rs::rand::fill(black_box(&mut nonce)))
    });
    let reference = Envelope::builder()
        .seal_with(Arc::new(NoWrap))
        .build()
        .expect("envelope");
    group.bench_function("envelope_only_seal_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| reference.seal(black_box(&plaintext), b""))
    });
    group.bench_function("branch_seal_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| branched.seal(black_box(&plaintext), b""))
    });
    group.bench_function("branch_open_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| branched.open(black_box(&branch_sealed), b""))
    });
    group.bench_function("rsa_seal_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| rsa.seal(black_box(&plaintext), b""))
    });
    group.sample_size(20);
    group.bench_function("rsa_open_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| rsa.open(black_box(&rsa_sealed), b""))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
