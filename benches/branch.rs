//! Branch keys against the RSA path, 1 KiB objects, in one run: seal and open with a warm
//! branch key (its record unwrapped once, then cached), seal and open under an RSA-2048
//! keyring key (one RSA operation each), and raw AES-256-GCM of 1 KiB.
//!
//! The figures to read are ratios of the same run (`python3 benches/ratios.py`): branch
//! open / RSA open and branch seal / RSA seal throughput (targets: >= 50 and >= 5), and each
//! branch operation against raw AES-GCM, which says where the rest of the time goes (the
//! key schedule, the branch slot's own HKDF and AES-GCM, the header).

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use cmk_envelope::branch::{BranchWrapper, DirectoryStore};
use cmk_envelope::software::Keyring;
use cmk_envelope::{Envelope, KeyWrapper};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const SIZE: usize = 1024;

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
    group.bench_function("branch_seal_1KiB", |b| {
        b.iter(|| rt.block_on(branched.seal(black_box(&plaintext), b"")))
    });
    group.bench_function("branch_open_1KiB", |b| {
        b.iter(|| rt.block_on(branched.open(black_box(&branch_sealed), b"")))
    });
    group.bench_function("rsa_seal_1KiB", |b| {
        b.iter(|| rt.block_on(rsa.seal(black_box(&plaintext), b"")))
    });
    group.sample_size(20);
    group.bench_function("rsa_open_1KiB", |b| {
        b.iter(|| rt.block_on(rsa.open(black_box(&rsa_sealed), b"")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
